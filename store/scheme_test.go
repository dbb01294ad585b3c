package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// A dial with the wrong scheme for its etcd says so: https:// against a
// plain etcd, http:// against a TLS one. The right scheme with a bad CA,
// or no etcd at all, is no scheme error.
func TestDialWrongScheme(t *testing.T) {
	plain, secure := etcdtest.New(t), etcdtest.NewTLS(t)
	plainHTTPS := strings.Replace(plain.ClientURL(), "http://", "https://", 1)
	secureHTTP := strings.Replace(secure.ClientURL(), "https://", "http://", 1)
	ctx := context.Background()
	tests := []struct {
		name      string
		cfg       DialConfig
		want      string // the error; empty: the dial works
		serverTLS bool
		scheme    bool // a *SchemeError
	}{
		{"https to plain", DialConfig{Endpoints: []string{plainHTTPS}}, "etcd at " + plainHTTPS + " answers plain HTTP: use http://", false, true},
		{"http to TLS", DialConfig{Endpoints: []string{secureHTTP}}, "etcd at " + secureHTTP + " speaks TLS: use https://", true, true},
		{"http to TLS, CA given", DialConfig{Endpoints: []string{secureHTTP}, CAFile: secure.CAFile()}, "etcd at " + secureHTTP + " speaks TLS: use https://", true, true},
		{"https to TLS without its CA", DialConfig{Endpoints: []string{secure.ClientURL()}}, "does not answer", false, false},
		{"nothing there", DialConfig{Endpoints: []string{"https://127.0.0.1:1"}}, "does not answer", false, false},
		{"https to TLS", DialConfig{Endpoints: []string{secure.ClientURL()}, CAFile: secure.CAFile()}, "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.DialTimeout = time.Second
			c, err := Dial(ctx, tt.cfg)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				c.Close()
				return
			}
			var se *SchemeError
			if err == nil || errors.As(err, &se) != tt.scheme || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v; want a scheme error %v containing %q", err, tt.scheme, tt.want)
			}
			if se == nil {
				return
			}
			if err.Error() != tt.want || se.ServerTLS != tt.serverTLS || se.Err == nil || !strings.Contains(se.Err.Error(), "does not answer") {
				t.Fatalf("scheme error %q (server TLS %v, cause %v); want %q", err, se.ServerTLS, se.Err, tt.want)
			}
		})
	}
}
