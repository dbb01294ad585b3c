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
