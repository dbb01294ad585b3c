package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// --pprof serves Go's profiler on --listen, and only when given: without
// it /debug/pprof/ is a 404, on the server's bare listener as on the
// agent's, where the dashboard answers the other paths. Every
// long-running command has the flag, and its help says it is not for
// production exposure.
func TestPprofFlag(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"web.yaml": unitWeb})
	repo.Commit("first")
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"server", []string{"server", "--lease-ttl", "2s"}, http.StatusNotFound},
		{"server --pprof", []string{"server", "--lease-ttl", "2s", "--pprof"}, http.StatusOK},
		{"agent", []string{"agent", "--repo", repo.FileURL(), "--interval", "1h", "--lease-ttl", "2s", "--cache-dir", t.TempDir()}, http.StatusNotFound},
		{"agent --pprof", []string{"agent", "--repo", repo.FileURL(), "--interval", "1h", "--lease-ttl", "2s", "--cache-dir", t.TempDir(), "--pprof"}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := freePort(t)
			p := startKaylee(t, env, append(tt.args, "--listen", addr)...)
			waitFor(t, 30*time.Second, tt.name+" /healthz answers", func() bool {
				p.running(t)
				code, _ := get(addr, "/healthz")
				return code == http.StatusOK
			})
			for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1"} {
				if code, body := get(addr, path); code != tt.want {
					t.Errorf("GET %s: %d, want %d\n%.300s", path, code, tt.want, body)
				}
			}
		})
	}
	for _, cmd := range []string{"agent", "server", "dev", "sync"} {
		r := kaylee(t, nil, cmd, "--help")
		if r.code != 0 || !strings.Contains(r.stdout, "--pprof") || !strings.Contains(r.stdout, "not for production exposure") {
			t.Errorf("kaylee %s --help: exit %d, lacks --pprof and its warning:\n%s", cmd, r.code, r.stdout)
		}
	}
}
