package gitsource

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
)

// packs counts the packs of the cache in dir.
func packs(t *testing.T, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "objects", "pack", "*.pack"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

// Each push adds a pack to the cache, and each Fetch reads every pack's
// index: Tidy merges them into one past MaxPacks, and the cache still
// serves the snapshot, the next push and the history check.
func TestTidyMergesPacks(t *testing.T) {
	r := gittest.NewRepo(t)
	r.Write(map[string]string{"units/a.yaml": "name: a\n", "units/b.yaml": "name: b\n"})
	first := r.Commit("0")
	s, err := New(Config{URL: r.ServeHTTP("", ""), Path: "units", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 1; i <= MaxPacks+2; i++ {
		if _, err := s.Fetch(ctx); err != nil {
			t.Fatal(err)
		}
		r.Write(map[string]string{"units/a.yaml": fmt.Sprintf("name: a\nreplicas: %d\n", i)})
		r.Commit(fmt.Sprint(i))
	}
	before, err := s.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := packs(t, s.dir); n <= MaxPacks {
		t.Fatalf("%d packs after %d fetches, want more than %d", n, MaxPacks+3, MaxPacks)
	}
	if err := s.Tidy(ctx); err != nil {
		t.Fatal(err)
	}
	if n := packs(t, s.dir); n != 1 {
		t.Fatalf("%d packs after Tidy, want 1", n)
	}
	// A Source that has not fetched reads the merged cache afresh: the
	// revision is there, with its files.
	fresh, err := New(Config{URL: s.cfg.URL, Path: "units", CacheDir: filepath.Dir(filepath.Dir(s.dir))})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := fresh.Fetch(ctx)
	if err != nil || snap.Revision != before.Revision || len(snap.Files) != 2 || !strings.Contains(string(snap.Files[0].Data), fmt.Sprintf("replicas: %d", MaxPacks+2)) {
		t.Fatalf("fetch from the merged cache: %+v, %v", snap, err)
	}
	r.Write(map[string]string{"units/b.yaml": "name: b\nreplicas: 9\n"})
	next := r.Commit("next")
	if snap, err := s.Fetch(ctx); err != nil || snap.Revision != next {
		t.Fatalf("the next push after Tidy: %+v, %v", snap, err)
	}
	if ok, err := s.Descends(ctx, next, first); !ok || err != nil {
		t.Fatalf("Descends(next, first) after Tidy: %v, %v", ok, err)
	}
	if n := packs(t, s.dir); n > 3 {
		t.Fatalf("%d packs", n)
	}
	if err := os.RemoveAll(s.dir); err != nil {
		t.Fatal(err)
	}
	if err := s.Tidy(ctx); err != nil {
		t.Fatalf("Tidy of a missing cache: %v", err)
	}
}
