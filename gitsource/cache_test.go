package gitsource

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
)

// Sources in one process sharing a cache directory take turns (no two
// hold the cache at once): while commits land, every fetch succeeds and
// returns a revision of the branch with that revision's files, never
// going back, and at the end all see the last commit.
func TestFetchConcurrentSources(t *testing.T) {
	r := gittest.NewRepo(t)
	r.Write(map[string]string{"n.yaml": "n: 0\n"})
	var mu gosync.Mutex
	content := map[string]int{r.Commit("0"): 0} // revision → n
	cache := t.TempDir()
	const sources, commits = 8, 15

	type seen struct {
		rev string
		n   int
	}
	var stop atomic.Bool
	var holders, overlaps atomic.Int32
	held := func() func() {
		if holders.Add(1) > 1 {
			overlaps.Add(1)
		}
		time.Sleep(time.Millisecond)
		return func() { holders.Add(-1) }
	}
	var wg gosync.WaitGroup
	got := make([][]seen, sources)
	srcs := make([]*Source, sources)
	for i := range sources {
		s, err := New(Config{URL: r.FileURL(), CacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		s.held = held
		srcs[i] = s
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() || len(got[i]) < 3 { // at least 3 fetches, however slow
				snap, err := s.Fetch(context.Background())
				if err != nil {
					t.Errorf("source %d: %v", i, err)
					return
				}
				if len(snap.Files) != 1 {
					t.Errorf("source %d at %s: files %s", i, snap.Revision, fileNames(snap))
					return
				}
				n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(string(snap.Files[0].Data), "n:")))
				got[i] = append(got[i], seen{snap.Revision, n})
			}
		}()
	}
	var last string
	for c := 1; c <= commits; c++ {
		r.Write(map[string]string{"n.yaml": fmt.Sprintf("n: %d\n", c)})
		last = r.Commit(strconv.Itoa(c))
		mu.Lock()
		content[last] = c
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if n := overlaps.Load(); n > 0 {
		t.Errorf("%d times two Sources held the cache at once", n)
	}
	for i, s := range srcs {
		snap, err := s.Fetch(context.Background())
		if err != nil || snap.Revision != last {
			t.Errorf("source %d after the last commit: %+v, %v", i, snap, err)
		}
		prev := -1
		for _, g := range got[i] {
			n, ok := content[g.rev]
			if !ok || n != g.n || n < prev {
				t.Errorf("source %d: revision %s with n: %d (want %d, known %v) after n: %d", i, g.rev, g.n, n, ok, prev)
				break
			}
			prev = n
		}
	}
}

// TestLockHolderProcess is the other process of TestFetchWaitsForCacheLock:
// it holds the lock on the file KAYLEE_TEST_HOLD_LOCK names until its
// stdin closes.
func TestLockHolderProcess(t *testing.T) {
	file := os.Getenv("KAYLEE_TEST_HOLD_LOCK")
	if file == "" {
		return // run as a test of its own: only TestFetchWaitsForCacheLock's child does the work
	}
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// While another process holds the cache lock, Fetch waits: until its
// context ends (and then says who holds what), or until the lock is
// released (and then fetches).
func TestFetchWaitsForCacheLock(t *testing.T) {
	r := gittest.NewRepo(t)
	r.Write(map[string]string{"a.yaml": "name: a\n"})
	rev := r.Commit("one")
	s, err := New(Config{URL: r.FileURL(), CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(s.lockPath()), 0o755); err != nil {
		t.Fatal(err)
	}
	holder := exec.Command(os.Args[0], "-test.run=^TestLockHolderProcess$", "-test.count=1")
	holder.Env = append(os.Environ(), "KAYLEE_TEST_HOLD_LOCK="+s.lockPath())
	holder.Stderr = os.Stderr
	release, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { release.Close(); _ = holder.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "locked\n" {
		t.Fatalf("lock holder said %q, %v", line, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = s.Fetch(ctx)
	want := "another process holds the cache lock " + s.lockPath() + ": context deadline exceeded"
	if err == nil || err.Error() != want || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fetch with the lock held: %v, want %q", err, want)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("gave up after %v, before the deadline", d)
	}

	type result struct {
		snap *Snapshot
		err  error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		snap, err := s.Fetch(ctx)
		done <- result{snap, err}
	}()
	select {
	case res := <-done:
		t.Fatalf("Fetch did not wait for the lock: %+v, %v", res.snap, res.err)
	case <-time.After(300 * time.Millisecond):
	}
	release.Close()
	res := <-done
	if res.err != nil || res.snap.Revision != rev {
		t.Fatalf("after the lock was released: %+v, %v", res.snap, res.err)
	}
}

// A cache repository damaged the way a crash or a full disk leaves it is
// fetched afresh, by a new Source at the same revision and by the same
// Source when the ref moved.
func TestFetchRecoversDamagedCache(t *testing.T) {
	var damages []gittest.Damage
	for _, d := range gittest.Damages() {
		if d.Name != "empty HEAD and config" {
			damages = append(damages, d)
		}
	}
	for _, d := range damages {
		for _, moved := range []bool{false, true} {
			name := d.Name + ", same revision"
			if moved {
				name = d.Name + ", ref moved"
			}
			t.Run(name, func(t *testing.T) {
				r := gittest.NewRepo(t)
				r.Write(map[string]string{"units/a.yaml": "name: a\n"})
				rev := r.Commit("one")
				cache := t.TempDir()
				s, err := New(Config{URL: r.FileURL(), Path: "units", CacheDir: cache})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.Fetch(context.Background()); err != nil {
					t.Fatal(err)
				}
				d.Do(t, s.dir)
				want := "units/a.yaml"
				if moved {
					r.Write(map[string]string{"units/b.yaml": "name: b\n"})
					rev = r.Commit("two")
					want = "units/a.yaml,units/b.yaml"
				} else if s, err = New(Config{URL: r.FileURL(), Path: "units", CacheDir: cache}); err != nil {
					t.Fatal(err)
				}
				snap, err := s.Fetch(context.Background())
				if err != nil {
					t.Fatalf("damaged cache: %v", err)
				}
				if snap.Revision != rev || fileNames(snap) != want || string(snap.Files[0].Data) != "name: a\n" {
					t.Fatalf("damaged cache: %s %s %q, want %s %s", snap.Revision, fileNames(snap), snap.Files[0].Data, rev, want)
				}
				entries, _ := os.ReadDir(filepath.Dir(s.dir))
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				if base := filepath.Base(s.dir); strings.Join(names, " ") != base+" "+base+".lock" {
					t.Errorf("cache holds %v, want the repository and its lock", names)
				}
				// The cache is usable again.
				again, _ := New(Config{URL: r.FileURL(), Path: "units", CacheDir: cache})
				if snap, err := again.Fetch(context.Background()); err != nil || snap.Revision != rev {
					t.Fatalf("after recovery: %+v, %v", snap, err)
				}
			})
		}
	}
}

// A remote that fails (the fetch, after the listing worked, or the whole
// server) is an error, and the cache is kept as it was.
func TestFetchTransportErrorKeepsCache(t *testing.T) {
	r := gittest.NewRepo(t)
	r.Write(map[string]string{"a.yaml": "name: a\n"})
	rev := r.Commit("one")
	backend, err := url.Parse(r.ServeHTTP("", ""))
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: backend.Scheme, Host: backend.Host})
	var failFetch atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if failFetch.Load() && strings.HasSuffix(req.URL.Path, "/git-upload-pack") {
			http.Error(w, "disk on fire", http.StatusInternalServerError)
			return
		}
		proxy.ServeHTTP(w, req)
	}))
	defer srv.Close()
	s, err := New(Config{URL: srv.URL + backend.Path, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if snap, err := s.Fetch(context.Background()); err != nil || snap.Revision != rev {
		t.Fatalf("%+v, %v", snap, err)
	}
	before := treeOf(t, filepath.Dir(s.dir))

	r.Write(map[string]string{"b.yaml": "name: b\n"})
	rev = r.Commit("two")
	failFetch.Store(true)
	_, err = s.Fetch(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "fetching main from "+srv.URL) {
		t.Fatalf("fetch failing: %v", err)
	}
	if after := treeOf(t, filepath.Dir(s.dir)); after != before {
		t.Fatalf("the cache changed:\n%s\nwas\n%s", after, before)
	}

	failFetch.Store(false)
	if snap, err := s.Fetch(context.Background()); err != nil || snap.Revision != rev {
		t.Fatalf("remote back: %+v, %v", snap, err)
	}
	after := treeOf(t, filepath.Dir(s.dir))
	srv.Close()
	if _, err := s.Fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "listing refs of") {
		t.Fatalf("server down: %v", err)
	}
	if now := treeOf(t, filepath.Dir(s.dir)); now != after {
		t.Fatalf("the cache changed:\n%s\nwas\n%s", now, after)
	}
}

// treeOf lists the files under dir with their sizes.
func treeOf(t *testing.T, dir string) string {
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %d\n", strings.TrimPrefix(p, dir), info.Size())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
