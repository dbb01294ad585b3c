package sync

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// peakHeap is gittest.PeakHeap.
func peakHeap(f func() error) (uint64, error) { return gittest.PeakHeap(f) }

// BenchmarkHostileManyFiles: 10,000 unit files in 100 directories of one
// revision, against 100 files (the baseline): the first fetch, the first
// pass into a real etcd (every unit created) and a no-op pass (the
// snapshot fetched again, parsed, compared with etcd). ns/file is the
// time per file, peak-MB the peak heap.
func BenchmarkHostileManyFiles(b *testing.B) {
	e := etcdtest.New(b)
	cli := e.Client(b)
	ctx := context.Background()
	for _, n := range []int{100, 10000} {
		r := gittest.NewRepo(b)
		files := map[string]string{}
		for k, v := range manyFiles(n, "registry.lan/svc:1.2.3") {
			files["units/"+k] = v
		}
		r.Write(files)
		r.Commit(fmt.Sprint(n))
		url := r.FileURL()
		report := func(b *testing.B, peak uint64, took time.Duration) {
			b.ReportMetric(float64(peak)/(1<<20), "peak-MB")
			b.ReportMetric(float64(took.Nanoseconds())/float64(b.N)/float64(n), "ns/file")
		}
		var snap *gitsource.Snapshot
		b.Run(fmt.Sprintf("%d-files/fetch", n), func(b *testing.B) {
			var peak uint64
			var took time.Duration
			for b.Loop() {
				src, err := gitsource.New(gitsource.Config{URL: url, Path: "units", CacheDir: b.TempDir()})
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				p, err := peakHeap(func() (err error) {
					snap, err = src.Fetch(ctx)
					if err == nil && len(snap.Files) != n {
						err = fmt.Errorf("%d files", len(snap.Files))
					}
					return err
				})
				took += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				peak = max(peak, p)
			}
			report(b, peak, took)
		})
		if snap == nil {
			b.Fatal("no snapshot fetched")
		}
		run := 0
		b.Run(fmt.Sprintf("%d-files/first-pass", n), func(b *testing.B) {
			var peak uint64
			var took time.Duration
			for b.Loop() {
				run++
				s := store.New(cli, fmt.Sprintf("/hostile-first-%d-%d", n, run))
				start := time.Now()
				p, err := peakHeap(func() error {
					res, err := Pass(ctx, s, snap, Options{Source: "units"})
					if err == nil && res.Count(Create) != n {
						err = fmt.Errorf("%s", res.Summary())
					}
					return err
				})
				took += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				peak = max(peak, p)
			}
			report(b, peak, took)
		})
		b.Run(fmt.Sprintf("%d-files/noop-pass", n), func(b *testing.B) {
			s := store.New(cli, fmt.Sprintf("/hostile-noop-%d", n))
			if _, err := Pass(ctx, s, snap, Options{Source: "units"}); err != nil {
				b.Fatal(err)
			}
			var peak uint64
			var took time.Duration
			for b.Loop() {
				start := time.Now()
				p, err := peakHeap(func() error {
					res, err := Pass(ctx, s, snap, Options{Source: "units"})
					if err == nil && res.Count(Unchanged) != n {
						err = fmt.Errorf("%s", res.Summary())
					}
					return err
				})
				took += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				peak = max(peak, p)
			}
			report(b, peak, took)
		})
	}
}
