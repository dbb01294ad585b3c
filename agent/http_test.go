package agent

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/config"
	"github.com/kaylee-gitops/kaylee/console"
	"github.com/kaylee-gitops/kaylee/store"
)

// fakeReader is the store as readiness reads it.
type fakeReader struct {
	leader  string
	records map[string]*store.SyncRecord
	err     error
}

func (f fakeReader) LeaderID(context.Context, store.Election) (string, error) { return f.leader, f.err }
func (f fakeReader) ListSyncRecords(context.Context) (map[string]*store.SyncRecord, error) {
	return f.records, f.err
}

func src(name string, suspended bool) Source {
	s := Source{Config: config.Source{Suspend: suspended}}
	s.Options.Source = name
	return s
}

// /readyz: ready once the scheduler (when run) has a leader and every
// source not suspended has a revision; otherwise 503 with every reason.
func TestReadiness(t *testing.T) {
	synced := map[string]*store.SyncRecord{"units": {Revision: "abc"}}
	tests := []struct {
		name      string
		reader    fakeReader
		scheduler bool
		sources   []Source
		wantCode  int
		wantBody  string
	}{
		{"server, leader elected", fakeReader{leader: "me"}, true, nil, 200, "ready\n"},
		{"server, no leader", fakeReader{}, true, nil, 503, "not ready: no scheduler leader elected yet\n"},
		{"sync, source synced", fakeReader{records: synced}, false, []Source{src("units", false)}, 200, "ready\n"},
		{"sync, source never synced", fakeReader{}, false, []Source{src("units", false)}, 503, "not ready: source units not synced yet\n"},
		{"sync, record without revision", fakeReader{records: map[string]*store.SyncRecord{"units": {}}}, false, []Source{src("units", false)}, 503,
			"not ready: source units not synced yet\n"},
		{"sync, suspended source not waited for", fakeReader{}, false, []Source{src("units", true)}, 200, "ready\n"},
		{"agent, both missing", fakeReader{}, true, []Source{src("a", false), src("b", false)}, 503,
			"not ready: no scheduler leader elected yet; source a not synced yet; source b not synced yet\n"},
		{"sync ignores the scheduler's leader", fakeReader{records: synced}, false, []Source{src("units", false)}, 200, "ready\n"},
		{"etcd down", fakeReader{err: errors.New("context deadline exceeded")}, true, nil, 503, "not ready: etcd: context deadline exceeded\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			readiness{store: tt.reader, scheduler: tt.scheduler, sources: tt.sources}.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			if rec.Code != tt.wantCode || rec.Body.String() != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body.String(), tt.wantCode, tt.wantBody)
			}
		})
	}
}

// fakeConsole stands for the console's routes.
type fakeConsole struct{}

func (fakeConsole) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("dashboard")) })
}

func named(s string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(s)) })
}

// Which routes the main listener has for each role's configuration.
func TestMainRoutes(t *testing.T) {
	tests := []struct {
		name    string
		hooks   bool
		console bool
		want    map[string]int // "METHOD path" → status
	}{
		{"server and sync loop: health, readiness, metrics", false, false,
			map[string]int{"GET /healthz": 200, "GET /readyz": 200, "GET /metrics": 200, "POST /hooks/git": 404, "GET /": 404}},
		{"agent: and webhooks and the console", true, true,
			map[string]int{"GET /healthz": 200, "GET /readyz": 200, "GET /metrics": 200, "POST /hooks/git": 200, "GET /": 200}},
		{"agent with --console-listen: the console elsewhere", true, false,
			map[string]int{"POST /hooks/git": 200, "GET /": 404}},
		{"dev without a repository: the console, no webhooks", false, true,
			map[string]int{"POST /hooks/git": 404, "GET /": 200}},
		{"no profiler unless asked, console or not", true, true,
			map[string]int{"GET /debug/pprof/": 404, "GET /debug/pprof/heap": 404, "GET /debug/pprof/cmdline": 404}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := routes{ready: named("ready"), metrics: named("metrics")}
			if tt.hooks {
				r.hooks = named("hooks")
			}
			if tt.console {
				r.console = fakeConsole{}
			}
			mux := r.mux()
			for route, want := range tt.want {
				method, path, _ := strings.Cut(route, " ")
				rec := httptest.NewRecorder()
				mux.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
				if rec.Code != want {
					t.Errorf("%s: %d, want %d", route, rec.Code, want)
				}
			}
		})
	}
}

// With HTTP.Pprof, the main listener serves Go's profiler beside the
// console; without, /debug/pprof/ is the console's 404.
func TestPprofRoutes(t *testing.T) {
	for _, on := range []bool{false, true} {
		c := Config{HTTP: HTTP{Listen: ":0", Webhooks: true, Console: &console.Config{}, Pprof: on}, Store: store.New(nil, "/t")}
		mux := mainRoutes(c, newConsole(c), newMetrics()).mux()
		want := map[string]int{"/debug/pprof/": 404, "/debug/pprof/heap": 404, "/debug/pprof/goroutine?debug=1": 404, "/debug/pprof/cmdline": 404}
		if on {
			want = map[string]int{"/debug/pprof/": 200, "/debug/pprof/heap": 200, "/debug/pprof/goroutine?debug=1": 200, "/debug/pprof/cmdline": 200}
		}
		for path, code := range want {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", path, nil)
			req.Host = "127.0.0.1" // a loopback Host, as the console asks; no port is bound
			mux.ServeHTTP(rec, req)
			if rec.Code != code {
				t.Errorf("Pprof %v: GET %s: %d, want %d", on, path, rec.Code, code)
			}
		}
	}
}

// mainRoutes follows the Config: webhooks when asked, the console on the
// main listener only when it has no listener of its own, readiness
// waiting for the scheduler only when this process runs one.
func TestMainRoutesFromConfig(t *testing.T) {
	tests := []struct {
		name          string
		http          HTTP
		scheduler     bool
		wantHooks     bool
		wantConsole   bool
		wantScheduler bool
	}{
		{"server", HTTP{Listen: ":0"}, true, false, false, true},
		{"sync loop", HTTP{Listen: ":0"}, false, false, false, false},
		{"agent", HTTP{Listen: ":0", Webhooks: true, Console: &console.Config{}}, true, true, true, true},
		{"agent, console apart", HTTP{Listen: ":0", Webhooks: true, Console: &console.Config{}, ConsoleListen: ":1"}, true, true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{HTTP: tt.http, Store: store.New(nil, "/t")}
			if tt.scheduler {
				c.Scheduler = &Scheduler{}
			}
			con := newConsole(c)
			r := mainRoutes(c, con, newMetrics())
			if got := r.hooks != nil; got != tt.wantHooks {
				t.Errorf("webhooks %v, want %v", got, tt.wantHooks)
			}
			if got := r.console != nil; got != tt.wantConsole {
				t.Errorf("console %v, want %v", got, tt.wantConsole)
			}
			if got := r.ready.(readiness).scheduler; got != tt.wantScheduler {
				t.Errorf("readiness waits for the scheduler: %v, want %v", got, tt.wantScheduler)
			}
		})
	}
}

// Listeners counts the console's only when it is apart.
func TestListeners(t *testing.T) {
	tests := []struct {
		http HTTP
		want int
	}{
		{HTTP{}, 0},
		{HTTP{Listen: "127.0.0.1:1"}, 1},
		{HTTP{Listen: "127.0.0.1:1", Console: &console.Config{}}, 1},
		{HTTP{Listen: "127.0.0.1:1", Console: &console.Config{}, ConsoleListen: "127.0.0.1:2"}, 2},
		{HTTP{Console: &console.Config{}, ConsoleListen: "127.0.0.1:2"}, 1},
		{HTTP{Listen: "127.0.0.1:1", ConsoleListen: "127.0.0.1:2"}, 1}, // no console: its address is unused
	}
	for _, tt := range tests {
		if got := tt.http.Listeners(); got != tt.want {
			t.Errorf("%+v: %d listeners, want %d", tt.http, got, tt.want)
		}
	}
}

// A listener that cannot open names itself, not a flag.
func TestListenError(t *testing.T) {
	_, err := serve(context.Background(), ListenConsole, "256.0.0.1:1", http.NotFoundHandler(), Limits{MaxConns: 1}, nil)
	var le *ListenError
	if !errors.As(err, &le) || le.Listener != ListenConsole || le.Addr != "256.0.0.1:1" {
		t.Fatalf("err %v, want a ListenError of the console", err)
	}
	if strings.Contains(err.Error(), "--") {
		t.Errorf("%q names a flag", err)
	}
}

// Run refuses a Config it cannot run before it opens anything.
func TestConfigCheck(t *testing.T) {
	s := store.New(nil, "/t")
	ok := Config{Store: s, LeaseTTL: 10 * time.Second}
	noFetcher := ok
	noFetcher.Sources = []Source{src("units", false)}
	noAPI := ok
	noAPI.Scheduler = &Scheduler{}
	shortLease := ok
	shortLease.LeaseTTL = time.Millisecond
	tests := []struct {
		name string
		c    Config
		want string
	}{
		{"server without a store", Config{LeaseTTL: time.Second}, "agent: no store"},
		{"lease too short", shortLease, "agent: lease TTL 1ms: use at least 1s"},
		{"scheduler without fleet", noAPI, "agent: a scheduler without fleet's API"},
		{"source without fetcher", noFetcher, `agent: source "units": no name or no fetcher`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Run(context.Background(), tt.c)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Run: %v, want %q", err, tt.want)
			}
		})
	}
	if err := ok.check(); err != nil {
		t.Errorf("a sync loop with no source: %v", err)
	}
}
