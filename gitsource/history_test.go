package gitsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
)

// Descends answers from a shallow cache by fetching as much history as
// it needs (more than one deepening here: 100 commits lie between A and
// B), for branches and moved tags, over file:// and smart HTTP; a
// revision that is not an ancestor (moved back, amended, unrelated, or a
// hash that never existed) is a no.
func TestDescends(t *testing.T) {
	r := gittest.NewRepo(t)
	r.Write(map[string]string{"units/a.yaml": "name: a\n"})
	a := r.Commit("A")
	// The 100 commits between, in one git fast-import (three git
	// commands a commit took 12s of the test's 27s).
	now := time.Now().Unix()
	r.FastImport(func(w io.Writer) error {
		for i := range 100 {
			from := "" // each commit's parent is the one before, in fast-import
			if i == 0 {
				from = "from refs/heads/main^0\n" // A
			}
			body := fmt.Sprint(i)
			if _, err := fmt.Fprintf(w, "commit refs/heads/main\ncommitter t <t@e> %d +0000\ndata 11\nbetween %02d\n%sM 644 inline other/n.txt\ndata %d\n%s\n",
				now+int64(i), i, from, len(body), body); err != nil {
				return err
			}
		}
		return nil
	})
	r.Git("reset", "-q", "--hard", "main")
	if n := r.Git("rev-list", "--count", a+"..main"); n != "100" {
		t.Fatalf("%s commits after A, want 100", n)
	}
	r.Write(map[string]string{"units/a.yaml": "name: a\nreplicas: 2\n"})
	b := r.Commit("B")
	c := r.Commit("C")
	r.Git("checkout", "-q", "-b", "amended", b+"~1")
	amended := r.Commit("B'")
	r.Git("checkout", "-q", "--orphan", "unrelated")
	unrelated := r.Commit("U")
	r.Git("checkout", "-q", "main")
	httpURL := r.ServeHTTP("", "")
	names := map[string]string{"A": a, "B": b, "C": c, "B'": amended, "U": unrelated, "never": strings.Repeat("0", 39) + "1"}

	tests := []struct {
		at, base string // the ref points at; the base asked about
		tag      bool   // follow an annotated tag instead of a branch
		http     bool
		path     string
		want     bool
	}{
		{at: "C", base: "C", want: true},
		{at: "C", base: "B", want: true},
		{at: "C", base: "A", want: true},
		{at: "C", base: "A", http: true, want: true},
		{at: "C", base: "A", path: "units", want: true},
		{at: "A", base: "B", want: false},
		{at: "A", base: "B", http: true, want: false},
		{at: "B'", base: "B", want: false},
		{at: "B'", base: "A", want: true},
		{at: "U", base: "B", want: false},
		{at: "C", base: "never", want: false},
		{at: "C", base: "A", tag: true, want: true},
		{at: "A", base: "C", tag: true, want: false},
		{at: "A", base: "C", tag: true, http: true, want: false},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s from %s tag=%v http=%v path=%q", tt.at, tt.base, tt.tag, tt.http, tt.path)
		t.Run(name, func(t *testing.T) {
			ref := "follow"
			if tt.tag {
				ref = "v1"
				r.Git("tag", "-f", "-a", "-m", "release", ref, names[tt.at])
			} else {
				r.Git("branch", "-f", ref, names[tt.at])
			}
			url := r.FileURL()
			if tt.http {
				url = httpURL
			}
			s, err := New(Config{URL: url, Ref: ref, Path: tt.path, CacheDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			snap, err := s.Fetch(ctx)
			if err != nil || snap.Revision != names[tt.at] {
				t.Fatalf("fetch: %+v %v", snap, err)
			}
			got, err := s.Descends(ctx, snap.Revision, names[tt.base])
			if err != nil || got != tt.want {
				t.Fatalf("Descends(%s, %s) = %v, %v; want %v", tt.at, tt.base, got, err, tt.want)
			}
		})
	}
}

// When the history cannot be fetched, Descends fails closed: an error,
// never a yes. (B's own commit names its parent: A, X, B makes the
// question need more than the one commit fetched.)
func TestDescendsFailsClosed(t *testing.T) {
	r := gittest.NewRepo(t)
	a := r.Commit("A")
	r.Commit("X")
	r.Commit("B")
	var broken atomic.Bool
	url := r.ServeHTTPHook("", "", func(*http.Request) {
		if broken.Load() {
			panic(http.ErrAbortHandler)
		}
	})
	s, err := New(Config{URL: url, Ref: "main", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	snap, err := s.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	broken.Store(true)
	ok, err := s.Descends(ctx, snap.Revision, a)
	var he *HistoryError
	if ok || !errors.As(err, &he) || !strings.Contains(err.Error(), "cannot tell whether commit "+snap.Revision[:7]+" descends from "+a[:7]) {
		t.Fatalf("Descends with the server gone: %v, %v; want a HistoryError", ok, err)
	}
	if _, err := s.Descends(ctx, "main", a); err == nil {
		t.Fatal("Descends of a ref name, not a hash: no error")
	}
}
