package router

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/internal/testutil"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// backend is a replica: an HTTP server on 127.0.0.1 that answers its name.
type backend struct {
	name string
	port int
	srv  *http.Server
	hits atomic.Int64
}

func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, port: l.Addr().(*net.TCPAddr).Port}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		fmt.Fprint(w, b.name)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = b.srv.Serve(l) }()
	t.Cleanup(func() { _ = b.srv.Close() })
	return b
}

// stop stops the replica as a process does on SIGTERM: no new
// connection, the requests in flight finish.
func (b *backend) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.srv.Shutdown(ctx); err != nil {
		t.Errorf("stopping %s: %v", b.name, err)
	}
}

func (b *backend) instance(unit string) *store.Instance {
	return &store.Instance{Unit: unit, Instance: "k2:" + unit + ":0a1b2c3d:000000:" + b.name, MachineIP: "127.0.0.1",
		State: "active/running", Ports: []deploy.Port{{Name: "http", Port: b.port}}}
}

// rig is an etcd, a caddy run by Caddy, and a Router following the etcd.
type rig struct {
	etcd   *etcdtest.Server
	store  *store.Store
	router *Router
	addr   string // caddy's HTTP listener
	tls    string // caddy's HTTPS listener
	admin  *Admin
	client *http.Client
}

// shortDir is a directory for a unix socket, whose path must stay short.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "kr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func startRig(t *testing.T, certDir string) *rig {
	t.Helper()
	return startRigResync(t, certDir, time.Second)
}

// startRigResync is startRig with the router reading etcd every resync
// whatever its watch says.
func startRigResync(t *testing.T, certDir string, resync time.Duration) *rig {
	t.Helper()
	caddy := caddyPath(t)
	e := etcdtest.New(t)
	rg := &rig{etcd: e, store: store.New(e.Client(t), "/kaylee2"), addr: testutil.FreeAddr(t), tls: testutil.FreeAddr(t)}
	sock := filepath.Join(shortDir(t), "caddy.sock")
	rg.admin = NewAdmin(sock)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rg.router = New(Config{Store: rg.store, Admin: NewAdmin(sock), AdminSocket: sock, Listen: rg.addr, TLSListen: rg.tls, CertDir: certDir,
		Resync: resync, ReadTimeout: time.Second, Log: log})
	c := &Caddy{Path: caddy, AdminSocket: sock, Log: log, Output: caddyOutput(t)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := RunWithCaddy(ctx, c, rg.router); err != nil {
			t.Errorf("caddy: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	rg.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", rg.addr)
		},
	}}
	return rg
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func (rg *rig) putUnit(t *testing.T, name string, domains ...string) {
	t.Helper()
	sp := &deploy.Spec{Name: name, Replicas: 2, Apps: []deploy.App{{Image: "docker://nginx"}}, Domains: domains,
		Ports: []deploy.Port{{Name: "http", Port: 80}}}
	if _, err := rg.store.PutUnit(context.Background(), sp, store.Fence{}); err != nil {
		t.Fatal(err)
	}
}

func (rg *rig) instances(t *testing.T, puts []*store.Instance, deletes ...*store.Instance) {
	t.Helper()
	var keys []string
	for _, d := range deletes {
		keys = append(keys, d.Key())
	}
	if err := rg.store.ApplyInstances(context.Background(), puts, keys, store.Fence{}); err != nil {
		t.Fatal(err)
	}
}

// get asks caddy for http://host/ and returns the status and the body.
func (rg *rig) get(host string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+host+"/", nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := rg.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// answers is what host gets: "200 a", "404 no unit serves x".
func (rg *rig) answers(host string) string {
	code, body, err := rg.get(host)
	if err != nil {
		return err.Error()
	}
	return strconv.Itoa(code) + " " + strings.TrimSpace(body)
}

func waitUntil(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not after %s: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Each domain reaches its unit through a real caddy; exact names win over
// wildcards, a wildcard matches one label, an unknown host gets 404 and
// a unit without replica 503.
func TestRouterServesDomains(t *testing.T) {
	rg := startRig(t, "")
	web, api := startBackend(t, "web"), startBackend(t, "api")
	rg.putUnit(t, "web", "a.test", "www.a.test")
	rg.putUnit(t, "api", "*.a.test", "api.b.test")
	rg.putUnit(t, "idle", "idle.test")
	rg.instances(t, []*store.Instance{web.instance("web"), api.instance("api")})
	waitUntil(t, 10*time.Second, "a.test served", func() bool { return rg.answers("a.test") == "200 web" })
	for host, want := range map[string]string{
		"a.test":      "200 web",
		"www.a.test":  "200 web", // the exact name, not *.a.test
		"x.a.test":    "200 api",
		"api.b.test":  "200 api",
		"y.x.a.test":  "404 no unit serves y.x.a.test",
		"nobody.test": "404 no unit serves nobody.test",
		"idle.test":   "503 no replica of unit idle serves",
	} {
		if got := rg.answers(host); got != want {
			t.Errorf("%s: got %q, want %q", host, got, want)
		}
	}
	if st := rg.router.Status(); st.Routes != 5 || st.EtcdError != "" || st.CaddyError != "" || st.Revision == 0 {
		t.Errorf("status: %+v", st)
	}
}

// load sends GET requests to host at rate until stop, counting answers
// by body and failures (anything but 200).
type load struct {
	mu      sync.Mutex
	sent    int
	failed  []string
	bodies  map[string]int
	last    map[string]time.Time // when each body was last answered
	slowest time.Duration
}

func runLoad(rg *rig, host string, perSecond int, stop <-chan struct{}) (*load, *sync.WaitGroup) {
	l := &load{bodies: map[string]int{}, last: map[string]time.Time{}}
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(perSecond))
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				code, body, err := rg.get(host)
				l.note(start, code, body, err)
			}()
		}
	}()
	return l, &wg
}

func (l *load) note(start time.Time, code int, body string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent++
	l.slowest = max(l.slowest, time.Since(start))
	if err != nil || code != http.StatusOK {
		l.failed = append(l.failed, fmt.Sprintf("%s: %d %q %v", start.Format("15:04:05.000"), code, body, err))
		return
	}
	l.bodies[body]++
	l.last[body] = time.Now()
}

func (l *load) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("%d requests, %d failed, slowest %s, answered by %v", l.sent, len(l.failed), l.slowest.Round(time.Millisecond), l.bodies)
}

// drainBound is how soon after a replica leaves the registry caddy sends
// it no new request (about 10ms here; at most Debounce, 100ms, after a
// burst of changes).
const drainBound = 500 * time.Millisecond

// A replica that leaves the registry gets no more requests within
// drainBound (the router follows etcd's watch: its resync is 10s here),
// and no request fails meanwhile, nor when it stops after.
func TestRouterDrainsRemovedInstance(t *testing.T) {
	rg := startRigResync(t, "", 10*time.Second)
	a, b := startBackend(t, "a"), startBackend(t, "b")
	rg.putUnit(t, "web", "web.test")
	rg.instances(t, []*store.Instance{a.instance("web"), b.instance("web")})
	waitUntil(t, 10*time.Second, "both replicas answer", func() bool {
		rg.answers("web.test")
		return a.hits.Load() > 0 && b.hits.Load() > 0
	})
	stop := make(chan struct{})
	l, wg := runLoad(rg, "web.test", 100, stop)
	time.Sleep(500 * time.Millisecond)
	removed := time.Now()
	rg.instances(t, nil, a.instance("web"))
	time.Sleep(drainBound)
	hitsAfter := a.hits.Load()
	time.Sleep(time.Second)
	if n := a.hits.Load() - hitsAfter; n != 0 {
		t.Errorf("a left the registry %s ago and still got %d requests in the last second", time.Since(removed).Round(time.Millisecond), n)
	}
	applied := rg.router.Status().Applied.Sub(removed)
	l.mu.Lock()
	drained := l.last["a"].Sub(removed)
	l.mu.Unlock()
	a.stop(t)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("load: %s; caddy took the registry without a %s after the change, a's last answer came %s after it", l, applied.Round(time.Millisecond), drained.Round(time.Millisecond))
	if len(l.failed) > 0 || l.bodies["b"] == 0 {
		t.Fatalf("through the removal: %s\n%s", l, strings.Join(l.failed, "\n"))
	}
	switch {
	case applied < 0:
		t.Errorf("caddy has taken no configuration since a left the registry %s ago", time.Since(removed).Round(time.Millisecond))
	case drained > drainBound || applied > drainBound:
		t.Errorf("caddy took the registry without a %s after the change, a answered %s after it; want both within %s", applied, drained, drainBound)
	}
}

// A router that loses etcd keeps caddy serving the last configuration
// and says so; once etcd is back, a change applies again.
func TestRouterKeepsServingWithoutEtcd(t *testing.T) {
	rg := startRig(t, "")
	a, b := startBackend(t, "a"), startBackend(t, "b")
	rg.putUnit(t, "web", "web.test")
	rg.instances(t, []*store.Instance{a.instance("web")})
	waitUntil(t, 10*time.Second, "web.test served", func() bool { return rg.answers("web.test") == "200 a" })
	before := rg.router.Status()

	rg.etcd.Stop()
	waitUntil(t, 10*time.Second, "the status says etcd is lost", func() bool { return rg.router.Status().EtcdError != "" })
	st := rg.router.Status()
	if st.Revision != before.Revision || st.EtcdLostSince.IsZero() || st.Routes != 1 {
		t.Errorf("status without etcd: %+v (before: %+v)", st, before)
	}
	for range 20 {
		if got := rg.answers("web.test"); got != "200 a" {
			t.Fatalf("without etcd, web.test: %q", got)
		}
	}

	if err := rg.etcd.Restart(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "the status says etcd is back", func() bool { return rg.router.Status().EtcdError == "" })
	rg.instances(t, []*store.Instance{b.instance("web")}, a.instance("web"))
	waitUntil(t, 10*time.Second, "the change after etcd came back served", func() bool { return rg.answers("web.test") == "200 b" })
	if st := rg.router.Status(); st.Revision <= before.Revision || !st.EtcdLostSince.IsZero() {
		t.Errorf("status after etcd came back: %+v", st)
	}
}

// stopMargin is how long after an old replica leaves the registry the
// rollout test stops it: the router takes about 10ms to stop sending it
// requests (TestRouterDrainsRemovedInstance logs it); the scheduler's stop
// reaches a replica through fleet's engine and agent, later than that.
// With no margin at all, a request that Caddy retries (the replica
// refused it) when the new configuration replaces the old is cut: 1 in 6
// swaps here.
const stopMargin = 100 * time.Millisecond

// A rollout as the scheduler makes it, under 50 requests a second: a new
// replica enters the registry, then an old one leaves it and stops
// stopMargin later (it refuses connections from then on; its requests in
// flight finish), for both replicas, three times. No request fails.
func TestRouterRolloutUnderLoad(t *testing.T) {
	rg := startRig(t, "")
	old := []*backend{startBackend(t, "v1-0"), startBackend(t, "v1-1")}
	rg.putUnit(t, "web", "web.test")
	rg.instances(t, []*store.Instance{old[0].instance("web"), old[1].instance("web")})
	waitUntil(t, 10*time.Second, "web.test served", func() bool { return strings.HasPrefix(rg.answers("web.test"), "200 v1-") })
	stop := make(chan struct{})
	l, wg := runLoad(rg, "web.test", 50, stop)
	for round := range 3 {
		time.Sleep(time.Second)
		for i, o := range old {
			n := startBackend(t, fmt.Sprintf("v%d-%d", round+2, i))
			rg.instances(t, []*store.Instance{n.instance("web")})
			time.Sleep(500 * time.Millisecond)
			rg.instances(t, nil, o.instance("web"))
			time.Sleep(stopMargin)
			o.stop(t)
			old[i] = n
		}
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	t.Logf("rollout under load: %s", l)
	if len(l.failed) > 0 || l.sent < 300 {
		t.Fatalf("rollout under load: %s\n%s", l, strings.Join(l.failed, "\n"))
	}
	if l.bodies["v4-0"] == 0 || l.bodies["v4-1"] == 0 {
		t.Errorf("the last replicas got no request: %s", l)
	}
}

// caddyOutput keeps caddy's errors for the test's log.
func caddyOutput(t *testing.T) io.Writer {
	return testWriter{t}
}
