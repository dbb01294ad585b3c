package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	gosync "sync"
	"syscall"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// floodConn is one idle keep-alive connection of a flood: it makes one
// request and then stays open, saying nothing, until the server closes it.
type floodConn struct {
	answered time.Time // when its response came; zero if none
	closed   time.Time // when the server closed it after answering; zero if not
}

// floodConns are the connections of a flood.
type floodConns struct {
	mu    gosync.Mutex
	conns []*floodConn
}

// count is how many were answered, and how many of those the server
// closed within d of their answer.
func (f *floodConns) count(d time.Duration) (answered, closedWithin int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		if !c.answered.IsZero() {
			answered++
		}
		if !c.closed.IsZero() && c.closed.Sub(c.answered) < d {
			closedWithin++
		}
	}
	return answered, closedWithin
}

// flood opens n connections to addr, each making one request and then
// idling; it returns at once, the connections living until ctx ends.
func flood(ctx context.Context, addr string, n int) *floodConns {
	f := &floodConns{conns: make([]*floodConn, n)}
	mu := &f.mu
	conns := f.conns
	for i := range conns {
		fc := &floodConn{}
		conns[i] = fc
		go func() {
			c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			context.AfterFunc(ctx, func() { c.Close() })
			if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
				return
			}
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			fc.answered = time.Now()
			mu.Unlock()
			_, _ = br.ReadByte() // blocks until the server closes it (or ctx ends)
			if ctx.Err() == nil {
				mu.Lock()
				fc.closed = time.Now()
				mu.Unlock()
			}
		}()
	}
	return f
}

// A flood of idle keep-alive connections on --listen, more than the
// process has descriptors for, does not stop the agent (or kaylee dev,
// whose etcd is in the process): it accepts no more than
// --max-connections at once, closes the longest idle connection to admit
// another and idle ones after --idle-timeout, and its sync loop syncs a
// commit during the flood into etcd; a stream over --max-streams gets 503.
func TestConnectionFlood(t *testing.T) {
	// Not parallel: its bounds are in time (--idle-timeout, within 3s) and
	// it holds 700 connections: alone, the figures it logs are its own.
	const (
		nofile = 512 // the process's RLIMIT_NOFILE
		n      = 700 // connections in the flood
		idle   = time.Second
	)
	capFlags := []string{"--max-connections", "50", "--idle-timeout", idle.String(), "--max-streams", "2"}
	tests := []struct {
		name string
		// start returns the command line and the etcd it syncs into.
		start func(t *testing.T, repoURL, addr string) (args []string, env map[string]string, etcd func(t *testing.T) *store.Store)
	}{
		{"agent", func(t *testing.T, repoURL, addr string) ([]string, map[string]string, func(t *testing.T) *store.Store) {
			e := etcdtest.New(t)
			return []string{"agent", "--repo", repoURL, "--source", "units", "--cache-dir", t.TempDir(), "--interval", "1s",
					"--listen", addr, "--lease-ttl", "2s"}, map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()},
				func(t *testing.T) *store.Store { return store.New(e.Client(t), store.DefaultPrefix) }
		}},
		{"dev, with its etcd embedded", func(t *testing.T, repoURL, addr string) ([]string, map[string]string, func(t *testing.T) *store.Store) {
			etcdURL := "http://" + freePort(t)
			return []string{"dev", "--repo", repoURL, "--source", "units", "--cache-dir", t.TempDir(), "--interval", "1s",
					"--listen", addr, "--listen-client", etcdURL, "--data-dir", t.TempDir(), "--machines", "1", "--verbose"}, nil,
				func(t *testing.T) *store.Store { return dialStore(t, etcdURL) }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			floodOne(t, nofile, n, idle, capFlags, tt.start)
		})
	}
}

func floodOne(t *testing.T, nofile, n int, idle time.Duration, capFlags []string,
	start func(t *testing.T, repoURL, addr string) ([]string, map[string]string, func(t *testing.T) *store.Store)) {
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"web.yaml": unitWeb})
	repo.Commit("first")
	url := repo.ServeHTTP("", "")
	addr := freePort(t)
	args, env, etcd := start(t, url, addr)
	cmd := kayleeProcess(t, nofile, env, append(args, capFlags...)...)
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("kaylee's output (last 3000 bytes):\n%s", tail(logs.String(), 3000))
		}
	})
	waitFor(t, 60*time.Second, "kaylee ready", func() bool { code, _ := get(addr, "/readyz"); return code == 200 })
	s := etcd(t)
	t.Logf("HTTP limits: %s", grepLine(logs.String(), "HTTP listening"))

	// (c) Streams beyond --max-streams get 503 and a JSON error.
	var streams []*http.Response
	for i := range 3 {
		resp, err := http.Get("http://" + addr + "/api/v1/stream")
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, resp)
		want := http.StatusOK
		if i == 2 {
			want = http.StatusServiceUnavailable
		}
		if resp.StatusCode != want {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
			t.Errorf("stream %d: %d %s, want %d", i+1, resp.StatusCode, b, want)
		} else if i == 2 {
			b, _ := io.ReadAll(resp.Body)
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") || !bytes.Contains(b, []byte(`"error"`)) {
				t.Errorf("stream over the limit: %s %s", ct, b)
			}
		}
	}
	for _, r := range streams {
		r.Body.Close()
	}

	// The flood.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	began := time.Now()
	conns := flood(ctx, addr, n)
	time.Sleep(2 * time.Second) // every connection made

	// Another client is answered during the flood: idle connections make
	// room for it.
	hc := &http.Client{Timeout: 3 * time.Second}
	for i := range 5 {
		t0 := time.Now()
		resp, err := hc.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatalf("GET /healthz %d during the flood: %v", i+1, err)
		}
		resp.Body.Close()
		t.Logf("GET /healthz during the flood: %d in %s", resp.StatusCode, time.Since(t0).Round(time.Millisecond))
		hc.CloseIdleConnections()
	}

	// (a) The control loop: a commit is synced into etcd during the flood.
	repo.Write(map[string]string{"web.yaml": unitWeb2})
	repo.Commit("during the flood")
	synced := time.Now()
	waitFor(t, 30*time.Second, "the commit made during the flood synced into etcd", func() bool {
		u, err := s.GetUnit(context.Background(), "web")
		return err == nil && strings.Contains(string(u.Raw), "nginx:2")
	})
	t.Logf("the commit made during the flood was synced %s after it", time.Since(synced).Round(time.Millisecond))

	// (b) Idle connections are closed after --idle-timeout, so that every
	// connection of the flood is answered in turn.
	var answered, closedInTime int
	waitFor(t, 60*time.Second, "every connection of the flood answered", func() bool {
		answered, closedInTime = conns.count(idle + 3*time.Second)
		return answered == n
	})
	t.Logf("%d connections answered in %s; %d closed by the agent within %s of their answer", answered, time.Since(began).Round(time.Millisecond), closedInTime, idle+3*time.Second)
	if closedInTime < n-50 {
		t.Errorf("only %d of %d idle connections were closed within %s of their answer", closedInTime, n, idle+3*time.Second)
	}
	cancel()

	// A lone idle keep-alive connection (no flood) lasts --idle-timeout.
	lone := flood(context.Background(), addr, 1)
	waitFor(t, 10*time.Second, "the lone connection answered and closed", func() bool { _, c := lone.count(time.Hour); return c == 1 })
	lone.mu.Lock()
	lasted := lone.conns[0].closed.Sub(lone.conns[0].answered)
	lone.mu.Unlock()
	if lasted < idle-100*time.Millisecond || lasted > idle+2*time.Second {
		t.Errorf("a lone idle connection was closed %s after its answer, want about --idle-timeout %s", lasted, idle)
	}
	if l := grepLine(logs.String(), "HTTP listening"); !strings.Contains(l, "maxConnections=50") || !strings.Contains(l, "nofile=512") {
		t.Errorf("the log does not say the limits chosen: %q", l)
	}
	if strings.Contains(logs.String(), "too many open files") {
		t.Errorf("the agent ran out of descriptors: %s", grepLine(logs.String(), "too many open files"))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// grepLine is the first line of s holding sub.
func grepLine(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// The HTTP limits' flags are checked before anything starts.
func TestHTTPLimitFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--max-connections", "0"}, "--max-connections 0: use at least 1"},
		{[]string{"--max-streams", "-1"}, "--max-streams -1: use at least 1"},
		{[]string{"--idle-timeout", "0s"}, "--idle-timeout 0s: use a positive duration"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			for _, cmd := range []string{"agent", "dev"} {
				args := append([]string{cmd, "--repo", t.TempDir(), "--listen", "127.0.0.1:0"}, tt.args...)
				r := kayleeWithin(t, 10*time.Second, args...)
				if r.code != 1 || !strings.Contains(r.err, tt.want) {
					t.Errorf("kaylee %s: exit %d, stderr %q, want %q", strings.Join(args, " "), r.code, r.err, tt.want)
				}
			}
		})
	}
}
