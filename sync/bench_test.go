package sync

import (
	"context"
	"fmt"
	"testing"

	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

func benchSnapshot(n int) *gitsource.Snapshot {
	snap := &gitsource.Snapshot{Revision: "0123456789abcdef0123456789abcdef01234567", Ref: "main"}
	for i := range n {
		snap.Files = append(snap.Files, gitsource.File{
			Path: fmt.Sprintf("units/svc-%04d.yaml", i),
			Data: fmt.Appendf(nil, `name: svc-%04d
replicas: 3
maxReplicasPerHost: 1
machine: [role=worker]
env:
- name: PORT
  value: "8080"
apps:
- image: docker://registry.lan/svc-%04d:1.2.3
  args: [--listen, ":8080"]
`, i, i),
		})
	}
	return snap
}

// BenchmarkSync2000: a pass over 2,000 unit files into a real etcd, the
// first (2,000 creates) and a no-op one, against the baseline of a bare
// etcd client putting the same 2,000 keys one by one.
func BenchmarkSync2000(b *testing.B) {
	e := etcdtest.New(b)
	cli := e.Client(b)
	ctx := context.Background()
	snap := benchSnapshot(2000)
	run := 0
	b.Run("first-sync", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			run++
			s := store.New(cli, fmt.Sprintf("/bench-first-%d", run))
			res, err := Pass(ctx, s, snap, Options{Source: "bench"})
			if err != nil || res.Count(Create) != 2000 {
				b.Fatalf("%v %v", err, res.Summary())
			}
		}
	})
	b.Run("noop-sync", func(b *testing.B) {
		s := store.New(cli, "/bench-noop")
		if _, err := Pass(ctx, s, snap, Options{Source: "bench"}); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			res, err := Pass(ctx, s, snap, Options{Source: "bench"})
			if err != nil || res.Count(Unchanged) != 2000 {
				b.Fatalf("%v %v", err, res.Summary())
			}
		}
	})
	b.Run("noop-poll-unmoved-ref", func(b *testing.B) {
		// The loop's case when the ref has not moved: the snapshot is the
		// same, its files are not parsed again; the pass still compares
		// every unit with etcd (and repairs any drift there).
		s := store.New(cli, "/bench-noop")
		if _, err := Pass(ctx, s, snap, Options{Source: "bench"}); err != nil {
			b.Fatal(err)
		}
		l := &Loop{Fetcher: fixedFetcher{snap}, Store: s, Options: Options{Source: "bench"}}
		b.ReportAllocs()
		for b.Loop() {
			res, err := l.Once(ctx, store.Fence{})
			if err != nil || res.Count(Unchanged) != 2000 {
				b.Fatalf("%v %v", err, res.Summary())
			}
		}
	})
	b.Run("bare-etcd-puts", func(b *testing.B) {
		values := make([]string, len(snap.Files))
		for i := range values {
			values[i] = fmt.Sprintf(`{"name":"svc-%04d","replicas":3,"maxReplicasPerHost":1,"env":[{"name":"PORT","value":"8080"}],"apps":[{"image":"docker://registry.lan/svc-%04d:1.2.3","args":["--listen",":8080"]}],"machine":["role=worker"]}`, i, i)
		}
		b.ReportAllocs()
		for b.Loop() {
			run++
			for i, v := range values {
				if _, err := cli.Put(ctx, fmt.Sprintf("/bench-bare-%d/units/svc-%04d", run, i), v); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

type fixedFetcher struct{ snap *gitsource.Snapshot }

func (f fixedFetcher) Fetch(context.Context) (*gitsource.Snapshot, error) { return f.snap, nil }

// BenchmarkLoopPass: one pass of a loop (Loop.Once: fetch, read the
// store, plan, apply, record the attempt) over a real etcd with 100, 500
// and 1,000 units: over an unchanged commit (noop), and over a new commit
// changing one unit (one-change). Reports the etcd requests per pass and
// the unit files parsed per pass besides the time. Figures, not a check:
//
//	go test -run '^$' -bench LoopPass -benchtime 20x ./sync
func BenchmarkLoopPass(b *testing.B) {
	for _, n := range []int{100, 500, 1000} {
		for _, kind := range []string{"noop", "one-change"} {
			b.Run(fmt.Sprintf("units=%d/%s", n, kind), func(b *testing.B) {
				ctx := context.Background()
				s, reqs := countingStore(b, etcdtest.New(b))
				f := &swapFetcher{unitSnapshot(fmt.Sprintf("%040d", 0), n, nil)}
				l := &Loop{Fetcher: f, Store: s, Options: Options{Source: "bench"}}
				for range 2 { // the creating pass, then the one recording its counts
					if _, err := l.Once(ctx, store.Fence{}); err != nil {
						b.Fatal(err)
					}
				}
				var requests, parsed int64
				versions := map[int]int{}
				for i := 1; b.Loop(); i++ {
					if kind == "one-change" {
						b.StopTimer()
						versions[i%n] = i
						f.snap = unitSnapshot(fmt.Sprintf("%040d", i), n, versions)
						b.StartTimer()
					}
					before := reqs.Load()
					res, err := l.Once(ctx, store.Fence{})
					if err != nil || kind == "noop" && res.Count(Unchanged) != n || kind == "one-change" && res.Count(Update) != 1 {
						b.Fatalf("%v %s", err, res.Summary())
					}
					requests += reqs.Load() - before
					parsed += int64(len(l.memo.parsed))
				}
				b.ReportMetric(float64(requests)/float64(b.N), "etcd-req/op")
				b.ReportMetric(float64(parsed)/float64(b.N), "files-parsed/op")
			})
		}
	}
}
