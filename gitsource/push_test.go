package gitsource

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
)

// A push that changes one file of many costs what it changed: the fetch
// brings the new commit, its trees and the changed blob, not every file
// again (a fetch of depth 1 into the shallow cache made git's server send
// all 300 blobs at every push), and the snapshot takes the other files'
// data from the one before without reading their blobs. Each file names
// its blob as git does; the snapshot names its parent commit.
func TestFetchPushChangingOneFile(t *testing.T) {
	r := gittest.NewRepo(t)
	files := map[string]string{}
	for i := range 300 {
		files[fmt.Sprintf("units/u%03d.yaml", i)] = fmt.Sprintf("name: u%03d\napps:\n- image: docker://x:0\n", i)
	}
	r.Write(files)
	r.Commit("units")
	s, err := New(Config{URL: r.ServeHTTP("", ""), Path: "units", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	prev := first.Revision
	for round := 1; round <= 2; round++ {
		before := objectCount(t, s.dir)
		r.Write(map[string]string{"units/u007.yaml": fmt.Sprintf("name: u007\napps:\n- image: docker://x:%d\n", round)})
		rev := r.Commit(fmt.Sprint(round))
		snap, err := s.Fetch(context.Background())
		if err != nil || snap.Revision != rev || len(snap.Files) != 300 {
			t.Fatalf("round %d: %v, want %s with 300 files", round, err, rev)
		}
		if len(snap.Parents) != 1 || snap.Parents[0] != prev {
			t.Fatalf("round %d: parents %v, want [%s]", round, snap.Parents, prev)
		}
		prev = rev
		// The commit, the root and units/ trees, the changed blob.
		if n := objectCount(t, s.dir) - before; n > 4 {
			t.Fatalf("round %d: a push changing one file of 300 added %d objects to the cache, want at most 4", round, n)
		}
		blobs := map[string]string{} // path → blob, as git lists them
		for _, l := range strings.Split(strings.TrimSpace(r.Git("ls-tree", "-r", rev, "units/")), "\n") {
			meta, path, _ := strings.Cut(l, "\t")
			blobs[path] = strings.Fields(meta)[2]
		}
		for i, f := range snap.Files {
			if want := blobs[f.Path]; f.Blob != want {
				t.Fatalf("%s: blob %q, want %s", f.Path, f.Blob, want)
			}
			if f.Path == "units/u007.yaml" {
				if want := fmt.Sprintf("docker://x:%d", round); !contains(f.Data, want) {
					t.Fatalf("u007.yaml: %q, want %s", f.Data, want)
				}
				continue
			}
			if &f.Data[0] != &first.Files[i].Data[0] {
				t.Fatalf("round %d: %s did not change, and its blob was read again", round, f.Path)
			}
		}
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }
