package main

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// Every long-running role serves /healthz, /readyz and /metrics on
// --listen: kaylee server (the scheduler alone) and the sync loop of
// kaylee sync, as kaylee agent does. Each reports the roles it runs and
// no other: a sync loop says nothing of the scheduler, so that it cannot
// make an alert on the scheduler's leadership fire.
func TestRolesServeHTTP(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	startFleet(t, e, 1)
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"web.yaml": unitWeb})
	repo.Commit("first")
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}

	// The sync loop stores the unit web, which the server then rolls out.
	tests := []struct {
		name       string
		args       []string
		want, lack []string // in /metrics once ready
	}{
		{"sync loop", []string{"sync", "--repo", repo.FileURL(), "--source", "demo", "--interval", "1s", "--lease-ttl", "2s", "--cache-dir", t.TempDir()},
			[]string{`kaylee_leader{role="sync",source="demo"} 1`, `kaylee_sync_failing{source="demo"} 0`, `kaylee_sync_total{result="ok",source="demo"}`, "process_resident_memory_bytes"},
			[]string{`role="scheduler"`, "kaylee_units_phase{", "kaylee_fleet_operations_total{"}},
		{"server", []string{"server", "--min-ready", "300ms", "--lease-ttl", "2s"},
			[]string{`kaylee_leader{role="scheduler",source=""} 1`, `kaylee_units_phase{phase="running"} 1`, `kaylee_fleet_operations_total{op="create",result="ok"}`, "process_resident_memory_bytes"},
			[]string{`role="sync"`, "kaylee_sync_total"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := freePort(t)
			p := startKaylee(t, env, append(tt.args, "--listen", addr)...)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("kaylee %s's log:\n%s", tt.args[0], p.errb.String())
				}
			})
			waitFor(t, 60*time.Second, tt.name+" /readyz answers 200", func() bool {
				p.running(t)
				code, _ := get(addr, "/readyz")
				return code == http.StatusOK
			})
			if code, body := get(addr, "/healthz"); code != http.StatusOK || body != "ok\n" {
				t.Errorf("GET /healthz: %d %q, want 200 ok", code, body)
			}
			if code, body := get(addr, "/readyz"); code != http.StatusOK || body != "ready\n" {
				t.Errorf("GET /readyz: %d %q, want 200 ready", code, body)
			}
			var m string
			waitFor(t, 60*time.Second, tt.name+" /metrics has "+strings.Join(tt.want, ", "), func() bool {
				_, m = get(addr, "/metrics")
				for _, w := range tt.want {
					if !strings.Contains(m, w) {
						return false
					}
				}
				return true
			})
			for _, l := range tt.lack {
				if strings.Contains(m, l) {
					t.Errorf("/metrics of kaylee %s has %s, a role it does not run:\n%s", tt.args[0], l, grepLine(m, l))
				}
			}
			// Neither serves the dashboard, the API or webhooks.
			for _, path := range []string{"/", "/api/v1/units", "/hooks/git"} {
				if code, _ := get(addr, path); code != http.StatusNotFound {
					t.Errorf("GET %s: %d, want 404", path, code)
				}
			}
		})
	}

	// A sync loop whose repository cannot be read is alive but not ready,
	// and says why.
	t.Run("sync loop not ready", func(t *testing.T) {
		addr := freePort(t)
		p := startKaylee(t, env, "sync", "--repo", repo.FileURL()+".gone", "--source", "gone", "--interval", "1s", "--lease-ttl", "2s",
			"--cache-dir", t.TempDir(), "--listen", addr)
		waitFor(t, 30*time.Second, "/healthz answers", func() bool {
			p.running(t)
			code, _ := get(addr, "/healthz")
			return code == http.StatusOK
		})
		waitFor(t, 30*time.Second, "the sync loop leads source gone", func() bool {
			_, m := get(addr, "/metrics")
			return strings.Contains(m, `kaylee_sync_failing{source="gone"} 1`)
		})
		if code, body := get(addr, "/readyz"); code != http.StatusServiceUnavailable || body != "not ready: source gone not synced yet\n" {
			t.Errorf("GET /readyz: %d %q, want 503 naming the source", code, body)
		}
	})
}

// The default --listen of each long-running role is its own, so that an
// agent, a server and a sync loop run on one host side by side.
func TestListenDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"agent", "--help"}, agentListen},
		{[]string{"server", "--help"}, serverListen},
		{[]string{"sync", "--help"}, syncListen},
	}
	if agentListen == serverListen || agentListen == syncListen || serverListen == syncListen {
		t.Fatalf("the roles share a default --listen: %s, %s, %s", agentListen, serverListen, syncListen)
	}
	flag := regexp.MustCompile(`--listen string\s.*\(default "([^"]*)"\)`)
	for _, tt := range tests {
		t.Run(tt.args[0], func(t *testing.T) {
			r := kaylee(t, nil, tt.args...)
			m := flag.FindStringSubmatch(r.stdout)
			if r.code != 0 || m == nil || m[1] != tt.want {
				t.Fatalf("kaylee %s: exit %d, --listen default %q, want %q:\n%s%s", strings.Join(tt.args, " "), r.code, m, tt.want, r.stdout, r.err)
			}
		})
	}
}

// running fails the test at once if the command has exited.
func (p *proc) running(t *testing.T) {
	t.Helper()
	select {
	case code := <-p.done:
		p.done <- code // for Stop
		t.Fatalf("kaylee %s exited with status %d:\n%s", strings.Join(p.args, " "), code, p.errb.String())
	default:
	}
}
