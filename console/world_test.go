package console

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/fleet"
	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
	"github.com/kaylee-gitops/kaylee/sync"
	"github.com/kaylee-gitops/kaylee/view"
)

const token = "s3cret-token"

// world is a console on real parts: an embedded etcd, fleet's own engine
// and agents on three simulated machines, the scheduler leading, and a git
// repository synced as source "team-a".
type world struct {
	t     *testing.T
	store *store.Store
	fleet *fleetsim.Cluster
	repo  *gittest.Repo
	src   *gitsource.Source
	srv   *httptest.Server
}

func newWorld(t *testing.T) *world {
	t.Helper()
	e := etcdtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	md := []map[string]string{{"az": "a"}, {"az": "b"}, {"az": "c"}}
	c, err := fleetsim.Start(ctx, fleetsim.Config{Endpoints: e.Endpoints(), Machines: fleetsim.Machines(3, md...),
		TTL: 4 * time.Second, EngineInterval: time.Second, StartDelay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s := store.New(e.Client(t), store.DefaultPrefix)
	rec, err := fleet.NewReconciler(c.API(), s, fleet.Options{MinReady: 500 * time.Millisecond, Poll: 300 * time.Millisecond,
		Resync: 5 * time.Second, StopTimeout: 10 * time.Second, RolloutTimeout: time.Minute, ID: "sched-1",
		// A replica no machine fits fails its rollout after 6s, not the
		// default 30s (TestDashboardShowsRollbackSuspensionAndWholeMessages
		// waits for one); one fleet could place is never unschedulable.
		Unschedulable: 6 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	lctx, lcancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Lead(lctx, store.SchedulerElection, "sched-1", 3*time.Second, slog.New(slog.DiscardHandler), rec.Run)
	}()
	t.Cleanup(func() { lcancel(); <-done })

	mux := http.NewServeMux()
	New(Config{Store: s, Machines: c.API(), Token: []byte(token), Refresh: time.Second}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	repo := gittest.NewRepo(t)
	src, err := gitsource.New(gitsource.Config{URL: repo.FileURL(), Path: "units", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, store: s, fleet: c, repo: repo, src: src, srv: srv}
}

// commit commits files and syncs them as source team-a, as a sync loop
// would (with its attempt and events).
func (w *world) commit(files map[string]string) string {
	w.t.Helper()
	w.repo.Write(files)
	rev := w.repo.Commit("change")
	loop := &sync.Loop{Fetcher: w.src, Store: w.store, Options: sync.Options{Source: "team-a", URL: w.repo.FileURL(), Path: "units"}, ID: "sync-1"}
	if _, err := loop.Once(context.Background(), store.Fence{}); err != nil {
		w.t.Fatalf("sync: %v", err)
	}
	return rev
}

// get GETs path and decodes the JSON answer into v; it returns the status.
func (w *world) get(path string, v any) int {
	w.t.Helper()
	return w.do("GET", path, "", v)
}

func (w *world) do(method, path, tok string, v any) int {
	w.t.Helper()
	req, err := http.NewRequest(method, w.srv.URL+path, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		w.t.Errorf("%s %s: Content-Type %q, want JSON", method, path, ct)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			w.t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
	return r.StatusCode
}

func (w *world) waitPhase(name, phase string, timeout time.Duration) view.Unit {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v, err := view.UnitOf(context.Background(), w.store, name)
		if err == nil && v.Phase == phase {
			return v
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%s not %s after %s: %+v %v", name, phase, timeout, v.Status, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
