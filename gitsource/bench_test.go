package gitsource

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
)

// BenchmarkNoopPoll: Fetch when the ref has not moved, over smart HTTP:
// one ref listing, no fetch. The baseline is the first fetch (a shallow
// clone) of the same small repository.
func BenchmarkNoopPoll(b *testing.B) {
	r := gittest.NewRepo(b)
	files := map[string]string{}
	for i := range 200 {
		files[fmt.Sprintf("units/u%03d.yaml", i)] = fmt.Sprintf("name: u%03d\napps:\n- image: docker://x\n", i)
	}
	r.Write(files)
	r.Commit("units")
	url := r.ServeHTTP("", "")
	ctx := context.Background()
	b.Run("first-fetch", func(b *testing.B) {
		for b.Loop() {
			s, _ := New(Config{URL: url, Path: "units", CacheDir: b.TempDir()})
			if _, err := s.Fetch(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("noop-poll", func(b *testing.B) {
		s, _ := New(Config{URL: url, Path: "units", CacheDir: b.TempDir()})
		first, err := s.Fetch(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			snap, err := s.Fetch(ctx)
			if err != nil || snap != first {
				b.Fatalf("not a no-op: %v", err)
			}
		}
	})
}

// longHistory makes a repository with n commits over 100 files of 4 KiB,
// with git fast-import (BenchmarkHostileLongHistory fetches 10,000).
func longHistory(b *testing.B, n int) *gittest.Repo {
	r := gittest.NewRepo(b)
	r.FastImport(func(w io.Writer) error {
		for c := 1; c <= n; c++ {
			fmt.Fprintf(w, "commit refs/heads/main\ncommitter t <t@e> %d +0000\ndata 3\nc%d\n", 1700000000+c, c%10)
			for f := 0; f < 100; f++ {
				if c > 1 && (c+f)%20 != 0 {
					continue // each commit changes 5 files
				}
				body := bytes.Repeat(fmt.Appendf(nil, "# commit %d file %d\n", c, f), 4096/24)
				body = append(fmt.Appendf(nil, "name: u%03d\napps:\n- image: docker://x:%d\n", f, c), body...)
				if _, err := fmt.Fprintf(w, "M 644 inline units/u%03d.yaml\ndata %d\n%s\n", f, len(body), body); err != nil {
					return err
				}
			}
		}
		return nil
	})
	r.Git("gc", "-q")
	return r
}

// peakHeap is gittest.PeakHeap.
func peakHeap(f func() error) (uint64, error) { return gittest.PeakHeap(f) }
