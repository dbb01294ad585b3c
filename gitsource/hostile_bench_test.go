package gitsource

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
)

// Benchmarks of hostile repositories (see hostile_test.go): each reports
// time and peak heap (runtime/metrics, above what was live before) of a
// first Fetch, with a baseline in the same run.

// measure runs fetch b.N times, each with a new Source and cache, and
// reports peak-MB and, with per > 0, the time per unit (ns/<unit>).
func measure(b *testing.B, per int, unit string, cfg Config, check func(*Snapshot, error) error) {
	b.Helper()
	var peak uint64
	var took time.Duration
	for b.Loop() {
		cfg.CacheDir = b.TempDir()
		s, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		p, err := peakHeap(func() error { return check(s.Fetch(context.Background())) })
		took += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		peak = max(peak, p)
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-MB")
	if per > 0 {
		b.ReportMetric(float64(took.Nanoseconds())/float64(b.N)/float64(per), "ns/"+unit)
	}
}

func wantFiles(n int) func(*Snapshot, error) error {
	return func(s *Snapshot, err error) error {
		if err == nil && len(s.Files) != n {
			err = fmt.Errorf("%d files, want %d (errors %q)", len(s.Files), n, errorTexts(s))
		}
		return err
	}
}

// BenchmarkHostileLongHistory: the first Fetch (shallow, one ref) of a
// history of 10,000 commits over 100 files of 4 KiB, over smart HTTP;
// the baseline is a full go-git clone of the same repository.
func BenchmarkHostileLongHistory(b *testing.B) {
	start := time.Now()
	r := longHistory(b, 10000)
	b.Logf("10,000 commits made in %v", time.Since(start).Round(time.Millisecond))
	url := r.ServeHTTP("", "")
	b.Run("kaylee-shallow-fetch", func(b *testing.B) {
		measure(b, 0, "", Config{URL: url, Path: "units"}, wantFiles(100))
	})
	b.Run("go-git-full-clone", func(b *testing.B) {
		var peak uint64
		for b.Loop() {
			dir := b.TempDir()
			p, err := peakHeap(func() error {
				_, err := git.PlainCloneContext(context.Background(), dir, true, &git.CloneOptions{URL: url})
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			peak = max(peak, p)
		}
		b.ReportMetric(float64(peak)/(1<<20), "peak-MB")
	})
}

// flatOrNested makes n unit files under units/, all in it or 100 to a
// subdirectory.
func flatOrNested(b *testing.B, n int, nested bool) *gittest.Repo {
	r := gittest.NewRepo(b)
	r.FastImport(func(w io.Writer) error {
		fmt.Fprintf(w, "commit refs/heads/main\ncommitter t <t@e> 1700000000 +0000\ndata 1\nc\n")
		for i := range n {
			dir := "units/"
			if nested {
				dir = fmt.Sprintf("units/d%03d/", i/100)
			}
			body := fmt.Sprintf("name: svc-%05d\nreplicas: 3\napps:\n- image: docker://registry.lan/svc-%05d:1.2.3\n", i, i)
			if _, err := fmt.Fprintf(w, "M 644 inline %ssvc-%05d.yaml\ndata %d\n%s\n", dir, i, len(body), body); err != nil {
				return err
			}
		}
		return nil
	})
	return r
}

// BenchmarkHostileManyFiles: the first Fetch of 10,000 unit files, in
// units/ itself and 100 to a subdirectory, against 100 files (the
// baseline); ns/file is the cost per file. (sync's BenchmarkHostileManyFiles
// adds the passes into etcd.)
func BenchmarkHostileManyFiles(b *testing.B) {
	for _, tt := range []struct {
		name   string
		n      int
		nested bool
	}{{"100-files", 100, false}, {"10000-files-flat", 10000, false}, {"10000-files-in-100-dirs", 10000, true}} {
		b.Run(tt.name, func(b *testing.B) {
			r := flatOrNested(b, tt.n, tt.nested)
			measure(b, tt.n, "file", Config{URL: r.FileURL(), Path: "units"}, wantFiles(tt.n))
		})
	}
}

// BenchmarkHostileBigFile: a revision of 100 small files and one of
// MaxFileSize+1 bytes (refused), or of 64 MiB (refused; go-git still
// fetches it), against the 100 small files alone.
func BenchmarkHostileBigFile(b *testing.B) {
	for _, tt := range []struct {
		name string
		size int // 0: none
	}{{"100-files", 0}, {"100-files+1MiB+1", MaxFileSize + 1}, {"100-files+1MiB", MaxFileSize}, {"100-files+64MiB", 64 << 20}} {
		b.Run(tt.name, func(b *testing.B) {
			r := gittest.NewRepo(b)
			files := map[string]string{}
			for i := range 100 {
				files[fmt.Sprintf("units/u%03d.yaml", i)] = fmt.Sprintf("name: u%03d\n", i)
			}
			if tt.size > 0 {
				files["units/big.yaml"] = unitOfSize("big", tt.size)
			}
			r.Write(files)
			r.Commit("big")
			want := 100
			if tt.size > 0 && tt.size <= MaxFileSize {
				want = 101
			}
			measure(b, 0, "", Config{URL: r.FileURL(), Path: "units"}, func(s *Snapshot, err error) error {
				if err == nil && tt.size > MaxFileSize && len(s.Errors) != 1 {
					return fmt.Errorf("errors %q", errorTexts(s))
				}
				return wantFiles(want)(s, err)
			})
		})
	}
}

// BenchmarkHostileDeepTree: a file 200 and 4,095 directories deep (read),
// and one 12,288 deep (the revision refused at 4,097), against a file at
// the top; ns/level is the cost per directory of depth.
func BenchmarkHostileDeepTree(b *testing.B) {
	for _, tt := range []struct {
		name  string
		depth int
	}{{"top", 0}, {"200-levels", 200}, {"4095-levels", MaxTreeDepth - 1}, {"12288-levels-refused", 3 * MaxTreeDepth}} {
		b.Run(tt.name, func(b *testing.B) {
			r := gittest.NewRepo(b)
			r.Write(map[string]string{"units/top.yaml": "name: top\n"})
			r.Commit("top")
			if tt.depth > 0 {
				deepCommit(r, tt.depth, "x.yaml")
			}
			measure(b, max(tt.depth, 1), "level", Config{URL: r.FileURL(), Path: "units"}, func(s *Snapshot, err error) error {
				if tt.depth > MaxTreeDepth {
					if err == nil || !strings.Contains(err.Error(), "directories nested deeper than 4096 levels") {
						return fmt.Errorf("not refused: %v", err)
					}
					return nil
				}
				return wantFiles(min(tt.depth, 1)+1)(s, err)
			})
		})
	}
}

// BenchmarkHostileSymlinks: 1,000 unit files each a chain of 40
// symlinks (read), or each a loop of two (refused), against 1,000
// regular files; ns/file is the cost per file.
func BenchmarkHostileSymlinks(b *testing.B) {
	for _, kind := range []string{"1000-regular", "1000-chains-of-40", "1000-loops"} {
		b.Run(kind, func(b *testing.B) {
			r := gittest.NewRepo(b)
			files := map[string]string{}
			for i := range 1000 {
				files[fmt.Sprintf("units/u%04d.yaml", i)] = fmt.Sprintf("name: u%04d\n", i)
			}
			if kind == "1000-regular" {
				r.Write(files)
			} else {
				r.Write(map[string]string{"target.txt": "name: t\n"})
				for i := range 1000 {
					switch kind {
					case "1000-loops":
						r.Symlink(fmt.Sprintf("units/u%04d.yaml", i), fmt.Sprintf("../loops/l%04d.yaml", i))
						r.Symlink(fmt.Sprintf("loops/l%04d.yaml", i), fmt.Sprintf("../units/u%04d.yaml", i))
					default:
						r.Symlink(fmt.Sprintf("units/u%04d.yaml", i), "../chain/c01")
					}
				}
				for c := 1; c < MaxSymlinks-1; c++ {
					r.Symlink(fmt.Sprintf("chain/c%02d", c), fmt.Sprintf("c%02d", c+1))
				}
				r.Symlink(fmt.Sprintf("chain/c%02d", MaxSymlinks-1), "../target.txt")
			}
			r.Commit(kind)
			measure(b, 1000, "file", Config{URL: r.FileURL(), Path: "units"}, func(s *Snapshot, err error) error {
				if kind == "1000-loops" {
					if err == nil && (len(s.Files) != 0 || len(s.Errors) != 1000 || !strings.Contains(s.Errors[0].Error(), "a symlink loop")) {
						err = fmt.Errorf("%d files, errors %q…", len(s.Files), errorTexts(s)[:1])
					}
					return err
				}
				return wantFiles(1000)(s, err)
			})
		})
	}
}

// BenchmarkHostileRefMoves: a Fetch over smart HTTP during which the
// branch is force-pushed (between the fetch's ref listing and its pack
// request: the server refuses the want, the fetch starts afresh), against
// one where it stays (the baseline). 100 files of 4 KiB.
func BenchmarkHostileRefMoves(b *testing.B) {
	for _, moves := range []bool{false, true} {
		name := "ref-stays"
		if moves {
			name = "ref-force-pushed-mid-fetch"
		}
		b.Run(name, func(b *testing.B) {
			r := gittest.NewRepo(b)
			write := func(n int) {
				files := map[string]string{}
				for i := range 100 {
					files[fmt.Sprintf("units/u%03d.yaml", i)] = fmt.Sprintf("name: u%03d\nat: %d\n#%s\n", i, n, strings.Repeat("x", 4096))
				}
				r.Write(files)
			}
			write(0)
			r.Commit("0")
			var armed atomic.Bool
			round := 0
			url := r.ServeHTTPHook("", "", func(req *http.Request) {
				if !strings.HasSuffix(req.URL.Path, "/git-upload-pack") || !armed.CompareAndSwap(true, false) {
					return
				}
				round++
				r.Git("checkout", "-q", "--orphan", "rewrite")
				write(round)
				r.Commit(fmt.Sprint(round))
				r.Git("branch", "-q", "-M", "rewrite", "main")
				r.Git("reflog", "expire", "--expire=now", "--all")
				r.Git("gc", "-q", "--prune=now")
			})
			var peak uint64
			var took time.Duration
			for b.Loop() {
				s, err := New(Config{URL: url, Path: "units", CacheDir: b.TempDir()})
				if err != nil {
					b.Fatal(err)
				}
				armed.Store(moves)
				start := time.Now()
				p, err := peakHeap(func() error { return wantFiles(100)(s.Fetch(context.Background())) })
				took += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				peak = max(peak, p)
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-MB")
		})
	}
}
