package sync

import (
	"context"
	"errors"
	"testing"

	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// tidyFetcher is a swapFetcher that tidies: it notes, at each Tidy,
// whether the store already held unit svc-0003 at version want.
type tidyFetcher struct {
	swapFetcher
	s       *store.Store
	want    string
	written []bool
	err     error
}

func (f *tidyFetcher) Tidy(ctx context.Context) error {
	units, _, err := f.s.ListUnits(ctx)
	if err != nil {
		return err
	}
	held := false
	for _, u := range units {
		if u.Name == "svc-0003" && u.Spec.Apps[0].Image == f.want {
			held = true
		}
	}
	f.written = append(f.written, held)
	return f.err
}

// The loop lets its fetcher tidy the git cache (gitsource.Source merges
// its packs) after a pass that fetched a new snapshot, once the pass's
// units are written: a push does not wait for it. An unmoved ref touches
// no cache: no tidying then. A failure to tidy fails no pass.
func TestLoopTidiesAfterItsWrites(t *testing.T) {
	ctx := context.Background()
	s := store.New(etcdtest.New(t).Client(t), store.DefaultPrefix)
	f := &tidyFetcher{swapFetcher: swapFetcher{unitSnapshot("1111111111111111111111111111111111111111", 5, nil)}, s: s,
		want: "docker://registry.lan/svc:0"}
	l := &Loop{Fetcher: f, Store: s, Options: Options{Source: "units"}}
	pass := func(what string, snap *gitsource.Snapshot, want ...bool) {
		t.Helper()
		if snap != nil {
			f.swapFetcher.snap = snap
		}
		if _, err := l.Once(ctx, store.Fence{}); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(f.written) != len(want) {
			t.Fatalf("%s: tidied %d times, want %d", what, len(f.written), len(want))
		}
		for i := range want {
			if f.written[i] != want[i] {
				t.Fatalf("%s: tidy %d came before the pass's units were written", what, i+1)
			}
		}
	}
	pass("first pass", nil, true)
	pass("the same snapshot", nil, true)
	f.want, f.err = "docker://registry.lan/svc:1", errors.New("disk full")
	pass("a new snapshot, tidy failing", unitSnapshot("2222222222222222222222222222222222222222", 5, map[int]int{3: 1}), true, true)
}
