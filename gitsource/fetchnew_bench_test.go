package gitsource

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// BenchmarkFetchNewCommit: Fetch after a commit that changes one of n
// unit files, over smart HTTP (git http-backend), into a cache that holds
// the commit before: what a push webhook's pass pays for git.
//
//	go test -run '^$' -bench FetchNewCommit -benchtime 20x ./gitsource
func BenchmarkFetchNewCommit(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("files=%d", n), func(b *testing.B) {
			r := unitsRepo(b, n)
			url := r.ServeHTTP("", "")
			ctx := context.Background()
			s, _ := New(Config{URL: url, Path: "units", CacheDir: b.TempDir()})
			if _, err := s.Fetch(ctx); err != nil {
				b.Fatal(err)
			}
			for i := 1; b.Loop(); i++ {
				b.StopTimer()
				r.Write(map[string]string{"units/u0000.yaml": fmt.Sprintf("name: u0000\napps:\n- image: docker://x:%d\n", i)})
				rev := r.Commit(fmt.Sprint(i))
				b.StartTimer()
				snap, err := s.Fetch(ctx)
				if err != nil || snap.Revision != rev {
					b.Fatalf("%v", err)
				}
			}
		})
	}
}

// BenchmarkFetchWebhookCommit: Fetch of a new commit (one of 100 unit
// files changed) over smart HTTP by two Sources with caches of their
// own, one told the push webhook's commit (WithAfter: its pack asked for
// while the refs are listed) and one not, in turn (each round, the one
// first is the other), so that both meet the same load: on the local git
// server, and with 20 ms added to each request (the server waits that
// long before serving it), as a git host across a network would. Medians
// and p90 of each:
//
//	go test -run '^$' -bench FetchWebhookCommit -benchtime 30x ./gitsource
func BenchmarkFetchWebhookCommit(b *testing.B) {
	for _, rtt := range []time.Duration{0, 20 * time.Millisecond} {
		b.Run(fmt.Sprintf("rtt=%v", rtt), func(b *testing.B) {
			r := unitsRepo(b, 100)
			url := r.ServeHTTPAround("", "", func(_ *http.Request, serve func()) {
				time.Sleep(rtt)
				serve()
			})
			ctx := context.Background()
			var srcs [2]*Source // plain, told the commit
			for i := range srcs {
				srcs[i], _ = New(Config{URL: url, Path: "units", CacheDir: b.TempDir()})
				if _, err := srcs[i].Fetch(ctx); err != nil {
					b.Fatal(err)
				}
			}
			var took [2][]time.Duration
			for round := 1; b.Loop(); round++ {
				b.StopTimer()
				r.Write(map[string]string{"units/u0000.yaml": fmt.Sprintf("name: u0000\napps:\n- image: docker://x:%d\n", round)})
				rev := r.Commit(fmt.Sprint(round))
				b.StartTimer()
				for k := range 2 {
					i := (round + k) % 2
					fctx := ctx
					if i == 1 {
						fctx = WithAfter(ctx, rev)
					}
					t0 := time.Now()
					snap, err := srcs[i].Fetch(fctx)
					took[i] = append(took[i], time.Since(t0))
					if err != nil || snap.Revision != rev {
						b.Fatalf("%v", err)
					}
				}
			}
			for i, name := range []string{"plain", "after"} {
				slices.Sort(took[i])
				b.ReportMetric(float64(took[i][len(took[i])/2])/float64(time.Millisecond), "ms-median-"+name)
				b.ReportMetric(float64(took[i][len(took[i])*9/10])/float64(time.Millisecond), "ms-p90-"+name)
			}
		})
	}
}

// BenchmarkOpenCache: open the cache and look for a commit it has not
// (what a webhook's pass does first, twice), with 1, 4 and 8 packs
// (MaxPacks), through go-git's own storage (plain) and through openCache
// (each index read whole):
//
//	go test -run '^$' -bench OpenCache ./gitsource
func BenchmarkOpenCache(b *testing.B) {
	absent := plumbing.NewHash(strings.Repeat("12", 20))
	for _, n := range []int{1, 4, MaxPacks} {
		s, _ := packedCache(b, n)
		for _, open := range []struct {
			name string
			f    func(string) (*git.Repository, error)
		}{{"plain", git.PlainOpen}, {"whole", openCache}} {
			b.Run(fmt.Sprintf("packs=%d/%s", n, open.name), func(b *testing.B) {
				for b.Loop() {
					r, err := open.f(s.dir)
					if err != nil {
						b.Fatal(err)
					}
					if _, _, err := peel(r, absent); !errors.Is(err, plumbing.ErrObjectNotFound) {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
