package gitsource

import (
	"context"
	"net/http"
	"strings"
	gosync "sync"
	"testing"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
)

// A fetch lists the remote's refs once: the pack of a new commit is asked
// for on the listing's own session, not after a second listing (go-git's
// fetch lists them again: a second GET of info/refs over smart HTTP, a
// second git-upload-pack, a second connection, over SSH). An unmoved ref
// costs the listing alone.
func TestFetchListsRefsOnce(t *testing.T) {
	r := gittest.NewRepo(t)
	r.Write(map[string]string{"units/a.yaml": "name: a\n", "units/b.yaml": "name: b\n"})
	r.Commit("one")
	var mu gosync.Mutex
	var requests []string
	url := r.ServeHTTPHook("", "", func(req *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		requests = append(requests, req.Method+" "+req.URL.Path[strings.LastIndex(req.URL.Path, "/")+1:])
	})
	key := gittest.NewKey(t)
	srv := r.ServeSSH(key.Public)
	sshAuth, err := Auth(srv.URL, AuthConfig{SSHKeyFile: key.File, KnownHostsFile: srv.KnownHosts})
	if err != nil {
		t.Fatal(err)
	}
	httpSrc, err := New(Config{URL: url, Path: "units", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	sshSrc, err := New(Config{URL: srv.URL, Path: "units", CacheDir: t.TempDir(), Auth: sshAuth})
	if err != nil {
		t.Fatal(err)
	}
	step := func(what, rev string, wantHTTP string, wantSSH int) {
		t.Helper()
		mu.Lock()
		requests = nil
		mu.Unlock()
		execs := srv.Execs()
		for _, s := range []*Source{httpSrc, sshSrc} {
			snap, err := s.Fetch(context.Background())
			if err != nil || rev != "" && snap.Revision != rev {
				t.Fatalf("%s over %s: %+v, %v; want %s", what, s.URL(), snap, err, rev)
			}
		}
		mu.Lock()
		got := strings.Join(requests, ", ")
		mu.Unlock()
		if got != wantHTTP {
			t.Errorf("%s over smart HTTP: requests %q, want %q", what, got, wantHTTP)
		}
		if n := srv.Execs() - execs; n != wantSSH {
			t.Errorf("%s over SSH: %d git-upload-pack sessions, want %d", what, n, wantSSH)
		}
	}
	step("the first fetch", "", "GET refs, POST git-upload-pack", 1)
	r.Write(map[string]string{"units/a.yaml": "name: a\nreplicas: 2\n"})
	step("a fetch of a new commit", r.Commit("two"), "GET refs, POST git-upload-pack", 1)
	step("a fetch of an unmoved ref", "", "GET refs", 1)
}
