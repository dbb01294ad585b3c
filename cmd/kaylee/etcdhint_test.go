package main

import (
	"strings"
	"testing"

	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// The wrong scheme for an etcd gets a hint naming the flags to change.
func TestEtcdSchemeHint(t *testing.T) {
	t.Parallel()
	plain, secure := etcdtest.New(t), etcdtest.NewTLS(t)
	plainHTTPS := strings.Replace(plain.ClientURL(), "http://", "https://", 1)
	secureHTTP := strings.Replace(secure.ClientURL(), "https://", "http://", 1)
	tests := []struct {
		env  map[string]string
		args []string
		code int
		want string
	}{
		{map[string]string{"KAYLEE_ETCD_ENDPOINTS": plainHTTPS}, []string{"ls"}, 1,
			"kaylee: etcd at " + plainHTTPS + " answers plain HTTP: use http:// in --etcd-endpoints\n"},
		{nil, []string{"status", "--etcd-endpoints", secureHTTP}, 1,
			"kaylee: etcd at " + secureHTTP + " speaks TLS: use https:// in --etcd-endpoints, and --etcd-ca FILE (the CA that signed its certificate)\n"},
		{nil, []string{"ls", "--etcd-endpoints", secureHTTP, "--etcd-ca", secure.CAFile()}, 1,
			"kaylee: etcd at " + secureHTTP + " speaks TLS: use https:// in --etcd-endpoints\n"},
		{nil, []string{"ls", "--etcd-endpoints", secure.ClientURL(), "--etcd-ca", secure.CAFile()}, 0, ""},
	}
	for _, tt := range tests {
		r := kaylee(t, tt.env, tt.args...)
		if r.code != tt.code || r.err != tt.want {
			t.Errorf("kaylee %q (env %v): exit %d, stderr %q\nwant exit %d, stderr %q", tt.args, tt.env, r.code, r.err, tt.code, tt.want)
		}
	}
}
