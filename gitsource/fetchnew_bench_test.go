package gitsource

import (
	"context"
	"fmt"
	"testing"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
)

// BenchmarkFetchNewCommit: Fetch after a commit that changes one of n
// unit files, over smart HTTP (git http-backend), into a cache that holds
// the commit before: what a push webhook's pass pays for git.
//
//	go test -run '^$' -bench FetchNewCommit -benchtime 20x ./gitsource
func BenchmarkFetchNewCommit(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("files=%d", n), func(b *testing.B) {
			r := gittest.NewRepo(b)
			files := map[string]string{}
			for i := range n {
				files[fmt.Sprintf("units/u%04d.yaml", i)] = fmt.Sprintf("name: u%04d\napps:\n- image: docker://x:0\n", i)
			}
			r.Write(files)
			r.Commit("units")
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
