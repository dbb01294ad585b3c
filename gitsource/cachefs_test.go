package gitsource

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
)

// unitsRepo is a repository of n unit files, units/u0000.yaml on,
// committed.
func unitsRepo(tb testing.TB, n int) *gittest.Repo {
	tb.Helper()
	r := gittest.NewRepo(tb)
	files := map[string]string{}
	for i := range n {
		files[fmt.Sprintf("units/u%04d.yaml", i)] = fmt.Sprintf("name: u%04d\napps:\n- image: docker://x:0\n", i)
	}
	r.Write(files)
	r.Commit("units")
	return r
}

// packedCache is a Source whose cache holds n packs (n fetches of n
// commits), and the last commit fetched.
func packedCache(tb testing.TB, n int) (*Source, string) {
	tb.Helper()
	r := unitsRepo(tb, 100)
	s, err := New(Config{URL: r.ServeHTTP("", ""), Path: "units", CacheDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	var rev string
	for i := range n {
		if i > 0 {
			r.Write(map[string]string{"units/u0000.yaml": fmt.Sprintf("name: u0000\nreplicas: %d\n", i)})
			r.Commit(fmt.Sprint(i))
		}
		snap, err := s.Fetch(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		rev = snap.Revision
	}
	return s, rev
}

// countingFS counts the reads of the pack indexes it opens.
type countingFS struct {
	billy.Filesystem
	reads *atomic.Int64
}

func (c countingFS) Open(name string) (billy.File, error) {
	f, err := c.Filesystem.Open(name)
	if err != nil || !strings.HasSuffix(name, ".idx") {
		return f, err
	}
	return countingFile{f, c.reads}, nil
}

type countingFile struct {
	billy.File
	reads *atomic.Int64
}

func (c countingFile) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.File.Read(p)
}

// The cache opened by openCache reads each pack index in one read (and
// one more that finds none left, at most), where go-git's own storage
// reads it a few bytes at a time; and it finds what is there and not what
// is not, as go-git's does.
func TestOpenCacheReadsIndexesWhole(t *testing.T) {
	const n = 3
	s, rev := packedCache(t, n)
	if got := packs(t, s.dir); got != n {
		t.Fatalf("%d packs, want %d", got, n)
	}
	absent := plumbing.NewHash(strings.Repeat("12", 20))
	for _, tc := range []struct {
		name     string
		open     func(billy.Filesystem) (*git.Repository, error)
		maxReads int64 // per index; 0: only logged
	}{
		{"openCache", openCacheFS, 2},
		{"go-git's storage", func(fs billy.Filesystem) (*git.Repository, error) {
			return git.Open(filesystem.NewStorage(fs, cache.NewObjectLRUDefault()), nil)
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reads atomic.Int64
			r, err := tc.open(countingFS{osfs.New(s.dir), &reads})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := peel(r, absent); !errors.Is(err, plumbing.ErrObjectNotFound) {
				t.Fatalf("looking up %s: %v, want %v", absent, err, plumbing.ErrObjectNotFound)
			}
			per := reads.Load() / n
			t.Logf("%d reads of %d indexes to look for a commit the cache has not", reads.Load(), n)
			if tc.maxReads > 0 && per > tc.maxReads {
				t.Errorf("%d reads per index, want at most %d", per, tc.maxReads)
			}
			c, _, err := peel(r, plumbing.NewHash(rev))
			if err != nil {
				t.Fatalf("the fetched commit %s: %v", rev, err)
			}
			f, err := c.File("units/u0000.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if body, _ := f.Contents(); body != fmt.Sprintf("name: u0000\nreplicas: %d\n", n-1) {
				t.Fatalf("units/u0000.yaml at %s: %q", rev, body)
			}
		})
	}
}

// A directory that is missing, or holds no repository, is
// git.ErrRepositoryNotExists (Source.open then makes the cache), as for
// git.PlainOpen.
func TestOpenCacheMissing(t *testing.T) {
	for _, dir := range []string{filepath.Join(t.TempDir(), "missing"), t.TempDir()} {
		if _, err := openCache(dir); !errors.Is(err, git.ErrRepositoryNotExists) {
			t.Errorf("openCache(%s): %v, want %v", dir, err, git.ErrRepositoryNotExists)
		}
	}
}
