package gitsource

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
)

// Hostile repositories: big, deep, looping, moving. Their benchmarks are
// in hostile_bench_test.go.

// unitOfSize is a valid unit file of exactly n bytes (a comment pads it).
func unitOfSize(name string, n int) string {
	head := fmt.Sprintf("name: %s\napps:\n- image: docker://x\n#", name)
	return head + strings.Repeat("x", n-len(head)-1) + "\n"
}

// errorTexts lists a snapshot's file errors.
func errorTexts(s *Snapshot) []string {
	var out []string
	for _, e := range s.Errors {
		out = append(out, e.Error())
	}
	return out
}

// A file of exactly MaxFileSize bytes is read; one byte more is refused
// with its name and size, directly or through a symlink, and the other
// files are read.
func TestHostileFileSize(t *testing.T) {
	for _, tt := range []struct {
		name, file string
		size       int
		link       bool
		wantErr    string // "" when read
	}{
		{"exactly MaxFileSize", "units/big.yaml", MaxFileSize, false, ""},
		{"MaxFileSize+1", "units/big.yaml", MaxFileSize + 1, false, "units/big.yaml: 1048577 bytes; unit files over 1048576 bytes are refused"},
		{"MaxFileSize+1 through a symlink", "units/big.yaml", MaxFileSize + 1, true, "units/big.yaml: 1048577 bytes; unit files over 1048576 bytes are refused"},
		{"8 MiB", "units/sub/huge.yml", 8 << 20, false, "units/sub/huge.yml: 8388608 bytes; unit files over 1048576 bytes are refused"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := gittest.NewRepo(t)
			r.Write(map[string]string{"units/ok.yaml": "name: ok\n"})
			if tt.link {
				r.Write(map[string]string{"blobs/big.txt": unitOfSize("big", tt.size)})
				r.Symlink(tt.file, "../blobs/big.txt")
			} else {
				r.Write(map[string]string{tt.file: unitOfSize("big", tt.size)})
			}
			rev := r.Commit("big")
			snap, err := fetch(t, Config{URL: r.FileURL(), Path: "units"})
			if err != nil {
				t.Fatal(err)
			}
			if snap.Revision != rev {
				t.Fatalf("revision %s, want %s", snap.Revision, rev)
			}
			if tt.wantErr == "" {
				if fileNames(snap) != "units/big.yaml,units/ok.yaml" || len(snap.Errors) != 0 {
					t.Fatalf("files %s, errors %q", fileNames(snap), errorTexts(snap))
				}
				for _, f := range snap.Files {
					if f.Path == tt.file && len(f.Data) != tt.size {
						t.Fatalf("%s read %d bytes, want %d", f.Path, len(f.Data), tt.size)
					}
				}
				return
			}
			if fileNames(snap) != "units/ok.yaml" || strings.Join(errorTexts(snap), "\n") != tt.wantErr {
				t.Fatalf("files %s, errors %q, want units/ok.yaml and %q", fileNames(snap), errorTexts(snap), tt.wantErr)
			}
		})
	}
}

// deepCommit commits, on top of main, a file at depth directories of d/
// under units/ (with git fast-import: no work tree holds a path that
// long), and returns the commit.
func deepCommit(r *gittest.Repo, depth int, file string) string {
	p := "units/" + strings.Repeat("d/", depth) + file
	body := "name: deep\napps:\n- image: docker://x\n"
	r.FastImport(func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "commit refs/heads/main\ncommitter t <t@e> 1700000000 +0000\ndata 4\ndeep\nfrom refs/heads/main^0\nM 644 inline %s\ndata %d\n%s\n", p, len(body), body)
		return err
	})
	return r.Git("rev-parse", "main")
}

// A deep tree is read up to MaxTreeDepth directories (counted from the
// root); a deeper one refuses the revision with an error that says where
// and why, and the next good revision is read. The limit's edges and a
// tree three times too deep are tested on a limit of 16 (the same check:
// trees of 4,096 and 12,288 levels took git 35 of this test's 43 s);
// the limit itself on a tree of MaxTreeDepth+1 levels.
func TestHostileDeepTree(t *testing.T) {
	const limit = 16 // the limit of the cases that set one
	for _, tt := range []struct {
		name    string
		limit   int // the source's limit: 0 is MaxTreeDepth's
		depth   int // directories under units/
		wantErr string
	}{
		{"200 levels", 0, 200, ""},
		{"MaxTreeDepth+1 levels", 0, MaxTreeDepth, "units/d/d/d/…/d (4097 levels): directories nested deeper than 4096 levels at "},
		{"limit levels", limit, limit - 1, ""},
		{"limit+1 levels", limit, limit, "units/d/d/d/…/d (17 levels): directories nested deeper than 16 levels at "},
		{"3 x limit levels", limit, 3 * limit, "units/d/d/d/…/d (17 levels): directories nested deeper than 16 levels at "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := gittest.NewRepo(t)
			r.Write(map[string]string{"units/top.yaml": "name: top\n"})
			r.Commit("top")
			rev := deepCommit(r, tt.depth, "x.yaml")
			s, err := New(Config{URL: r.FileURL(), Path: "units", CacheDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if tt.limit != 0 {
				s.maxTreeDepth = tt.limit
			}
			snap, err := s.Fetch(context.Background())
			if tt.wantErr == "" {
				want := "units/" + strings.Repeat("d/", tt.depth) + "x.yaml,units/top.yaml"
				if err != nil || snap.Revision != rev || fileNames(snap) != want {
					t.Fatalf("%v; want %s", err, rev)
				}
				return
			}
			want := tt.wantErr + rev[:7] + "; the revision is refused (nothing was changed)"
			if err == nil || err.Error() != want {
				t.Fatalf("error %v\nwant %s", err, want)
			}
			// The deep directory removed: read again.
			r.Git("reset", "-q", "--hard", "main~1")
			r.Write(map[string]string{"units/fixed.yaml": "name: fixed\n"})
			fixed := r.Commit("fixed")
			if snap, err := s.Fetch(context.Background()); err != nil || snap.Revision != fixed || fileNames(snap) != "units/fixed.yaml,units/top.yaml" {
				t.Fatalf("after the fix: %+v, %v", snap, err)
			}
		})
	}
}

// Symlinks are followed within the repository, through chains and
// directories, as a checkout would; a loop, a chain of more than
// MaxSymlinks, a way out, or a link to a directory is an error of that
// file alone, naming it and why.
func TestHostileSymlinks(t *testing.T) {
	chain := func(n int) map[string]string { // l0.yaml -> l1.yaml -> … -> l<n-1>.yaml -> target.txt
		links := map[string]string{}
		for i := range n - 1 {
			links[fmt.Sprintf("units/l%02d.yaml", i)] = fmt.Sprintf("l%02d.yaml", i+1)
		}
		links[fmt.Sprintf("units/l%02d.yaml", n-1)] = "../target.txt"
		return links
	}
	for _, tt := range []struct {
		name      string
		links     map[string]string // path → target
		wantFiles string            // besides units/ok.yaml
		wantErrs  []string
	}{
		{"a -> b -> a", map[string]string{"units/a.yaml": "b.yaml", "units/b.yaml": "a.yaml"}, "", []string{
			"units/a.yaml: symlink to b.yaml: a symlink loop (units/a.yaml -> units/b.yaml -> units/a.yaml); not followed",
			"units/b.yaml: symlink to a.yaml: a symlink loop (units/b.yaml -> units/a.yaml -> units/b.yaml); not followed"}},
		{"to itself", map[string]string{"units/self.yaml": "self.yaml"}, "", []string{
			"units/self.yaml: symlink to self.yaml: a symlink loop (units/self.yaml -> units/self.yaml); not followed"}},
		{"to itself through ./", map[string]string{"units/self.yaml": "./../units/self.yaml"}, "", []string{
			"units/self.yaml: symlink to ./../units/self.yaml: a symlink loop (units/self.yaml -> units/self.yaml); not followed"}},
		{"a directory that loops, not walked", map[string]string{"units/dir/loop": ".."}, "", nil},
		{"through a directory that loops", map[string]string{"units/dir/loop": "..", "units/via.yaml": "dir/loop/dir/loop/dir/loop/ok.yaml"}, "units/via.yaml", nil},
		{"a loop through a directory", map[string]string{"units/dir/loop": "..", "units/round.yaml": "dir/loop/round.yaml"}, "", []string{
			"units/round.yaml: symlink to dir/loop/round.yaml: a symlink loop (units/round.yaml -> units/dir/loop -> units/round.yaml); not followed"}},
		{"to a directory", map[string]string{"units/dir.yaml": "..", "units/sub/x.yml": ".", "units/up.yaml": "sub/"}, "", []string{
			"units/dir.yaml: symlink to ..: the repository's root is a directory; not followed",
			"units/sub/x.yml: symlink to .: units/sub is a directory; not followed",
			"units/up.yaml: symlink to sub/: units/sub is a directory; not followed"}},
		{"a chain of MaxSymlinks", chain(MaxSymlinks), "units/l00.yaml,units/l01.yaml,units/l02.yaml,units/l03.yaml,units/l04.yaml,units/l05.yaml,units/l06.yaml,units/l07.yaml,units/l08.yaml,units/l09.yaml,units/l10.yaml,units/l11.yaml,units/l12.yaml,units/l13.yaml,units/l14.yaml,units/l15.yaml,units/l16.yaml,units/l17.yaml,units/l18.yaml,units/l19.yaml,units/l20.yaml,units/l21.yaml,units/l22.yaml,units/l23.yaml,units/l24.yaml,units/l25.yaml,units/l26.yaml,units/l27.yaml,units/l28.yaml,units/l29.yaml,units/l30.yaml,units/l31.yaml,units/l32.yaml,units/l33.yaml,units/l34.yaml,units/l35.yaml,units/l36.yaml,units/l37.yaml,units/l38.yaml,units/l39.yaml", nil},
		{"a chain of MaxSymlinks+1", chain(MaxSymlinks + 1), "units/l01.yaml,units/l02.yaml,units/l03.yaml,units/l04.yaml,units/l05.yaml,units/l06.yaml,units/l07.yaml,units/l08.yaml,units/l09.yaml,units/l10.yaml,units/l11.yaml,units/l12.yaml,units/l13.yaml,units/l14.yaml,units/l15.yaml,units/l16.yaml,units/l17.yaml,units/l18.yaml,units/l19.yaml,units/l20.yaml,units/l21.yaml,units/l22.yaml,units/l23.yaml,units/l24.yaml,units/l25.yaml,units/l26.yaml,units/l27.yaml,units/l28.yaml,units/l29.yaml,units/l30.yaml,units/l31.yaml,units/l32.yaml,units/l33.yaml,units/l34.yaml,units/l35.yaml,units/l36.yaml,units/l37.yaml,units/l38.yaml,units/l39.yaml,units/l40.yaml", []string{
			"units/l00.yaml: symlink to l01.yaml: more than 40 symlinks to follow (units/l00.yaml -> units/l01.yaml -> … -> units/l39.yaml -> units/l40.yaml); not followed"}},
		{"a chain leaving the repository", map[string]string{"units/a.yaml": "b.yaml", "units/b.yaml": "/etc/passwd", "units/c.yaml": "sub/d.yaml", "units/sub/d.yaml": "../../.."}, "", []string{
			"units/a.yaml: symlink to b.yaml leaves the repository (units/a.yaml -> units/b.yaml -> /etc/passwd); not followed",
			"units/b.yaml: symlink to /etc/passwd leaves the repository; not followed",
			"units/c.yaml: symlink to sub/d.yaml leaves the repository (units/c.yaml -> units/sub/d.yaml -> ..); not followed",
			"units/sub/d.yaml: symlink to ../../.. leaves the repository; not followed"}},
		{"dangling", map[string]string{"units/gone.yaml": "nowhere/gone.yaml", "units/file.yaml": "ok.yaml/x"}, "", []string{
			"units/file.yaml: symlink to ok.yaml/x: units/ok.yaml is not a directory",
			"units/gone.yaml: symlink to nowhere/gone.yaml: units/nowhere does not exist"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := gittest.NewRepo(t)
			r.Write(map[string]string{"units/ok.yaml": "name: ok\n", "target.txt": "name: target\n"})
			for name, target := range tt.links {
				r.Symlink(name, target)
			}
			rev := r.Commit("links")
			snap, err := fetch(t, Config{URL: r.FileURL(), Path: "units"})
			if err != nil {
				t.Fatal(err)
			}
			want := "units/ok.yaml"
			if tt.wantFiles != "" {
				want = strings.Join(append(strings.Split(tt.wantFiles, ","), want), ",")
				parts := strings.Split(want, ",")
				sortStrings(parts)
				want = strings.Join(parts, ",")
			}
			if snap.Revision != rev || fileNames(snap) != want {
				t.Errorf("files %s, want %s", fileNames(snap), want)
			}
			if got := strings.Join(errorTexts(snap), "\n"); got != strings.Join(tt.wantErrs, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", got, strings.Join(tt.wantErrs, "\n"))
			}
			for _, f := range snap.Files {
				if want := "name: ok\n"; strings.HasPrefix(f.Path, "units/l") && string(f.Data) != "name: target\n" || f.Path == "units/via.yaml" && string(f.Data) != want {
					t.Errorf("%s read %q", f.Path, f.Data)
				}
			}
		})
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// history appends n commits to main with git fast-import: commit c sets
// units/n.yaml to "n: c" and touches one of 20 other files.
func history(r *gittest.Repo, from, n int) string {
	r.FastImport(func(w io.Writer) error {
		for c := from; c < from+n; c++ {
			fmt.Fprintf(w, "commit refs/heads/main\ncommitter t <t@e> %d +0000\ndata 3\nc%d\n", 1700000000+c, c%10)
			if c == from && from > 0 {
				fmt.Fprintf(w, "from refs/heads/main^0\n")
			}
			n := fmt.Sprintf("n: %d\n", c)
			other := fmt.Sprintf("name: f%02d\nrev: %d\n", c%20, c)
			if _, err := fmt.Fprintf(w, "M 644 inline units/n.yaml\ndata %d\n%sM 644 inline units/f%02d.yaml\ndata %d\n%s", len(n), n, c%20, len(other), other); err != nil {
				return err
			}
		}
		return nil
	})
	return r.Git("rev-parse", "main")
}

// objectCount is how many objects a cache repository holds.
func objectCount(t *testing.T, dir string) int {
	t.Helper()
	r, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	iter, err := r.Storer.IterEncodedObjects(plumbing.AnyObject)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := iter.ForEach(func(plumbing.EncodedObject) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// A long history is not fetched: the cache holds the head commit, its
// tree and files (and, after the branch advanced by a thousand commits,
// the new head's), not the commits before.
func TestHostileLongHistory(t *testing.T) {
	r := gittest.NewRepo(t)
	head := history(r, 0, 2000)
	for _, proto := range []string{"file", "http"} {
		t.Run(proto, func(t *testing.T) {
			url := r.FileURL()
			if proto == "http" {
				url = r.ServeHTTP("", "")
			}
			s, err := New(Config{URL: url, Path: "units", CacheDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			snap, err := s.Fetch(context.Background())
			if err != nil || snap.Revision != head || len(snap.Files) != 21 {
				t.Fatalf("%v %d files, want %s", err, len(snap.Files), head)
			}
			// A commit, 2 trees, 21 blobs.
			if n := objectCount(t, s.dir); n != 24 {
				t.Fatalf("the cache holds %d objects after a shallow fetch of 2,000 commits, want 24", n)
			}
			if shallow, err := os.ReadFile(filepath.Join(s.dir, "shallow")); err != nil || strings.TrimSpace(string(shallow)) != head {
				t.Fatalf("shallow file %q, %v; want the head %s", shallow, err, head)
			}
		})
	}
	t.Run("advanced by 1,000 commits", func(t *testing.T) {
		s, err := New(Config{URL: r.FileURL(), Path: "units", CacheDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Fetch(context.Background()); err != nil {
			t.Fatal(err)
		}
		before := objectCount(t, s.dir)
		next := history(r, 2000, 1000)
		snap, err := s.Fetch(context.Background())
		if err != nil || snap.Revision != next {
			t.Fatalf("%+v %v, want %s", snap, err, next)
		}
		for _, f := range snap.Files {
			if f.Path == "units/n.yaml" && string(f.Data) != "n: 2999\n" {
				t.Fatalf("n.yaml at the new head: %q", f.Data)
			}
		}
		// The new head's commit, trees and every file changed since (at
		// most 1 + 2 + 21 objects), and, as a fetch into a cache that
		// holds the ref's last commit is of depth 2 (see commit), its
		// parent's commit, trees and the 2 files it has otherwise: at
		// most 29 objects more, whatever the length of the history.
		if n := objectCount(t, s.dir) - before; n > 29 {
			t.Fatalf("the second fetch added %d objects, want at most 29", n)
		}
	})
}

// countingStorer counts the objects read, by hash.
type countingStorer struct {
	*filesystem.Storage
	mu    gosync.Mutex
	reads map[plumbing.Hash]int
}

func (c *countingStorer) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	c.mu.Lock()
	c.reads[h]++
	c.mu.Unlock()
	return c.Storage.EncodedObject(t, h)
}

// Reading a snapshot reads each tree and blob once, wherever the files
// are: 2,000 files in one directory cost 2,000 blob reads, not also a
// read and decoding of their directory each (which took 22 seconds for
// 10,000 files in units/).
func TestHostileReadsEachObjectOnce(t *testing.T) {
	r := gittest.NewRepo(t)
	r.FastImport(func(w io.Writer) error {
		fmt.Fprintf(w, "commit refs/heads/main\ncommitter t <t@e> 1700000000 +0000\ndata 1\nc\n")
		for i := range 2000 {
			body := fmt.Sprintf("name: u%04d\n", i)
			fmt.Fprintf(w, "M 644 inline units/u%04d.yaml\ndata %d\n%s\n", i, len(body), body)
		}
		for i := range 100 {
			body := fmt.Sprintf("name: n%04d\n", i)
			fmt.Fprintf(w, "M 644 inline units/a/b/c/d/e/u%04d.yaml\ndata %d\n%s\n", i, len(body), body)
		}
		return nil
	})
	s, err := New(Config{URL: r.FileURL(), Path: "units", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	cached, err := git.PlainOpen(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	st := &countingStorer{Storage: cached.Storer.(*filesystem.Storage), reads: map[plumbing.Hash]int{}}
	repo, err := git.Open(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := repo.CommitObject(plumbing.NewHash(r.Git("rev-parse", "main")))
	if err != nil {
		t.Fatal(err)
	}
	clear(st.reads)
	snap, err := s.read(c)
	if err != nil || len(snap.Files) != 2100 {
		t.Fatalf("%v, %d files", err, len(snap.Files))
	}
	total := 0
	for h, n := range st.reads {
		total += n
		if n > 1 {
			t.Errorf("object %s read %d times", h, n)
		}
	}
	// root, units, a..e: 7 trees; 2,100 blobs.
	if total != 2107 {
		t.Errorf("%d object reads, want 2,107", total)
	}
}

// The branch moves (advanced, or force-pushed to an unrelated history)
// during a fetch over smart HTTP: before the ref listing, or between it
// and the pack request (asked for on the listing's session: there is no
// second listing, but when the server refuses the commit listed, force-
// pushed away, the fetch lists the ref again). Fetch returns
// the files of exactly the revision it reports (the old head or the new
// one, never a mix), and the next Fetch returns the new head.
func TestHostileRefMovesDuringFetch(t *testing.T) {
	for _, force := range []bool{false, true} {
		for _, when := range []string{"info/refs", "git-upload-pack"} {
			name := "advanced"
			if force {
				name = "force-pushed"
			}
			t.Run(name+" before the "+when+" request", func(t *testing.T) {
				r := gittest.NewRepo(t)
				content := map[string]string{} // revision → n.yaml
				var mu gosync.Mutex
				commit := func(n int) string {
					files := map[string]string{"units/n.yaml": "n: " + strconv.Itoa(n) + "\n"}
					for i := range 20 {
						files[fmt.Sprintf("units/f%02d.yaml", i)] = fmt.Sprintf("name: f%02d\nat: %d\n", i, n)
					}
					r.Write(files)
					rev := r.Commit(strconv.Itoa(n))
					mu.Lock()
					content[rev] = files["units/n.yaml"]
					mu.Unlock()
					return rev
				}
				first := commit(1)
				var armed atomic.Bool
				var seen atomic.Int32 // requests of the armed kind
				var moved string
				url := r.ServeHTTPHook("", "", func(req *http.Request) {
					if !armed.Load() || !strings.HasSuffix(req.URL.Path, "/"+when) {
						return
					}
					if seen.Add(1) != 1 {
						return
					}
					if force {
						r.Git("checkout", "-q", "--orphan", "rewrite")
						r.Git("rm", "-rfq", ".")
						moved = commit(3)
						r.Git("branch", "-q", "-M", "rewrite", "main")
						r.Git("reflog", "expire", "--expire=now", "--all")
						r.Git("gc", "-q", "--prune=now")
					} else {
						moved = commit(3)
					}
				})
				s, err := New(Config{URL: url, Path: "units", CacheDir: t.TempDir()})
				if err != nil {
					t.Fatal(err)
				}
				if snap, err := s.Fetch(context.Background()); err != nil || snap.Revision != first {
					t.Fatalf("first fetch: %+v, %v", snap, err)
				}
				before := commit(2)
				armed.Store(true)
				snap, err := s.Fetch(context.Background())
				if err != nil {
					t.Fatalf("fetch while the ref moved: %v", err)
				}
				if moved == "" {
					t.Fatal("the ref was not moved")
				}
				consistent := func(snap *Snapshot) {
					t.Helper()
					mu.Lock()
					want, ok := content[snap.Revision]
					mu.Unlock()
					if !ok || len(snap.Files) != 21 {
						t.Fatalf("revision %s (known %v) with %d files", snap.Revision, ok, len(snap.Files))
					}
					at := strings.TrimPrefix(strings.TrimSuffix(want, "\n"), "n: ")
					for _, f := range snap.Files {
						if f.Path == "units/n.yaml" && string(f.Data) != want || f.Path != "units/n.yaml" && !strings.HasSuffix(string(f.Data), "at: "+at+"\n") {
							t.Fatalf("revision %s (n: %s) has %s = %q: a mixed snapshot", snap.Revision, at, f.Path, f.Data)
						}
					}
				}
				consistent(snap)
				if snap.Revision != before && snap.Revision != moved {
					t.Fatalf("revision %s, want %s (listed) or %s (moved to)", snap.Revision, before, moved)
				}
				t.Logf("fetched %s (listed %s, moved to %s)", snap.Revision[:7], before[:7], moved[:7])
				armed.Store(false)
				next, err := s.Fetch(context.Background())
				if err != nil || next.Revision != moved {
					t.Fatalf("next fetch: %+v, %v; want %s", next, err, moved)
				}
				consistent(next)
			})
		}
	}
}
