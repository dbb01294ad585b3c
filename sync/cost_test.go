package sync

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"slices"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// countingStore is a store on e whose etcd requests are counted in n.
func countingStore(t testing.TB, e *etcdtest.Server) (*store.Store, *atomic.Int64) {
	t.Helper()
	cli := e.Client(t)
	n := &atomic.Int64{}
	cli.KV = etcdtest.CountingKV{KV: cli.KV, N: n}
	return store.New(cli, store.DefaultPrefix), n
}

// unitSnapshot is a revision of n unit files, the i-th at version
// versions[i] (0 when absent), with blobs named as git would.
func unitSnapshot(rev string, n int, versions map[int]int) *gitsource.Snapshot {
	snap := &gitsource.Snapshot{Revision: rev, Ref: "main"}
	for i := range n {
		data := fmt.Appendf(nil, "name: svc-%04d\nengine: docker\nreplicas: 2\napps:\n- image: docker://registry.lan/svc:%d\n", i, versions[i])
		sum := sha1.Sum(fmt.Appendf(nil, "blob %d\x00%s", len(data), data))
		snap.Files = append(snap.Files, gitsource.File{Path: fmt.Sprintf("units/svc-%04d.yaml", i), Data: data, Blob: hex.EncodeToString(sum[:])})
	}
	return snap
}

// swapFetcher gives the snapshot it holds.
type swapFetcher struct{ snap *gitsource.Snapshot }

func (f *swapFetcher) Fetch(context.Context) (*gitsource.Snapshot, error) { return f.snap, nil }

// A loop's pass costs etcd requests for what changed, not for every unit:
// over an unchanged commit, one read of what changed in the store since
// the pass before and the attempt (the record, unchanged, is not written
// again); over a commit changing one unit, the same and one transaction
// writing the unit with the record, and the events. The same whatever the
// number of units.
func TestLoopPassRequests(t *testing.T) {
	for _, n := range []int{10, 300} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ctx := context.Background()
			s, reqs := countingStore(t, etcdtest.New(t))
			f := &swapFetcher{unitSnapshot("1111111111111111111111111111111111111111", n, nil)}
			l := &Loop{Fetcher: f, Store: s, Options: Options{Source: "units"}}
			if res, err := l.Once(ctx, store.Fence{}); err != nil || res.Count(Create) != n {
				t.Fatalf("first pass: %v", err)
			}
			// The first pass after it records its counts (0 created, n
			// unchanged); then the record stays.
			if _, err := l.Once(ctx, store.Fence{}); err != nil {
				t.Fatal(err)
			}
			rec, err := s.Client().Get(ctx, store.DefaultPrefix+"/sync/units")
			if err != nil {
				t.Fatal(err)
			}

			reqs.Store(0)
			if res, err := l.Once(ctx, store.Fence{}); err != nil || res.Count(Unchanged) != n {
				t.Fatalf("no-op pass: %v", err)
			}
			t.Logf("%d units: a pass over an unchanged commit: %d etcd requests", n, reqs.Load())
			if got := reqs.Load(); got > 2 {
				t.Errorf("a pass over an unchanged commit of %d units made %d etcd requests, want at most 2 (what changed, the attempt)", n, got)
			}
			again, err := s.Client().Get(ctx, store.DefaultPrefix+"/sync/units")
			if err != nil {
				t.Fatal(err)
			}
			if again.Kvs[0].ModRevision != rec.Kvs[0].ModRevision {
				t.Errorf("a pass that changed nothing wrote the sync record again (mod revision %d → %d)", rec.Kvs[0].ModRevision, again.Kvs[0].ModRevision)
			}

			f.snap = unitSnapshot("2222222222222222222222222222222222222222", n, map[int]int{3: 1})
			reqs.Store(0)
			if res, err := l.Once(ctx, store.Fence{}); err != nil || res.Count(Update) != 1 {
				t.Fatalf("one-change pass: %v %s", err, res.Summary())
			}
			// What changed (twice: before and after the files are read),
			// the unit with the record, the attempt, the events.
			t.Logf("%d units: a pass over a commit changing one: %d etcd requests", n, reqs.Load())
			if got := reqs.Load(); got > 5 {
				t.Errorf("a pass over a commit changing 1 of %d units made %d etcd requests, want at most 5", n, got)
			}
			if got, want := l.memo.parsed, []string{"units/svc-0003.yaml"}; !slices.Equal(got, want) {
				t.Errorf("files parsed for a commit changing one: %v, want %v", got, want)
			}
		})
	}
}

// The loop parses the files whose blob changed, and every file again when
// the scheduler's default engine changes: a unit that names no engine is
// validated as that engine runs it.
func TestLoopParsesChangedFiles(t *testing.T) {
	ctx := context.Background()
	e := etcdtest.New(t)
	s := store.New(e.Client(t), store.DefaultPrefix)
	snap := func(rev, web string) *gitsource.Snapshot {
		sn := snapshot(map[string]string{
			"units/pod.yaml": "name: pod\napps:\n- image: a\n- image: b\n",
			"units/web.yaml": web,
			"units/db.yaml":  "name: db\nengine: docker\napps:\n- image: db\n",
		})
		sn.Revision = rev
		for i := range sn.Files {
			sum := sha1.Sum(sn.Files[i].Data)
			sn.Files[i].Blob = hex.EncodeToString(sum[:])
		}
		return sn
	}
	f := &swapFetcher{snap("1111111111111111111111111111111111111111", "name: web\napps:\n- image: a\n")}
	l := &Loop{Fetcher: f, Store: s, Options: Options{Source: "units"}}
	parsed := func(what string, want ...string) *Result {
		t.Helper()
		res, err := l.Once(ctx, store.Fence{})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		got := slices.Sorted(slices.Values(l.memo.parsed))
		if !slices.Equal(got, want) {
			t.Fatalf("%s: parsed %v, want %v", what, got, want)
		}
		return res
	}
	if res := parsed("first pass", "units/db.yaml", "units/pod.yaml", "units/web.yaml"); len(res.Errors) != 0 {
		t.Fatalf("first pass under rkt: %v", res.Errors)
	}
	f.snap = snap("2222222222222222222222222222222222222222", "name: web\napps:\n- image: b\n")
	parsed("web.yaml changed", "units/web.yaml")
	f.snap = snap("3333333333333333333333333333333333333333", "name: web\napps:\n- image: b\n")
	parsed("a commit changing no unit file")

	// The scheduler now runs docker by default: pod, two apps and no
	// engine, is refused, which only a new validation can tell.
	if err := s.PutSchedulerSettings(ctx, &store.SchedulerSettings{DefaultEngine: "docker"}, store.Fence{}); err != nil {
		t.Fatal(err)
	}
	res := parsed("the default engine changed", "units/db.yaml", "units/pod.yaml", "units/web.yaml")
	if len(res.Errors) != 1 || res.Errors[0].File != "units/pod.yaml" {
		t.Fatalf("under docker: errors %v, want pod.yaml's", res.Errors)
	}
	parsed("nothing changed")
}

// A unit deleted or changed in etcd behind the loop's back is seen by its
// next pass, over the same commit (its view of the store reads what
// changed, and what was deleted): the unit is written again.
func TestLoopRepairsUnitsChangedInEtcd(t *testing.T) {
	ctx := context.Background()
	e := etcdtest.New(t)
	s := store.New(e.Client(t), store.DefaultPrefix)
	f := &swapFetcher{unitSnapshot("1111111111111111111111111111111111111111", 5, nil)}
	l := &Loop{Fetcher: f, Store: s, Options: Options{Source: "units"}}
	for range 2 { // the second pass's view holds the units the first wrote
		if _, err := l.Once(ctx, store.Fence{}); err != nil {
			t.Fatal(err)
		}
	}
	cli := s.Client()
	if _, err := cli.Delete(ctx, store.DefaultPrefix+"/units/svc-0001"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, store.DefaultPrefix+"/units/svc-0002", `{"name":"svc-0002","engine":"docker","apps":[{"image":"docker://evil"}]}`); err != nil {
		t.Fatal(err)
	}
	res, err := l.Once(ctx, store.Fence{})
	if err != nil {
		t.Fatal(err)
	}
	if got := changes(res); got != "svc-0000:unchanged svc-0001:create svc-0002:update svc-0003:unchanged svc-0004:unchanged" {
		t.Fatalf("after a delete and an edit in etcd: %s", got)
	}
	u, err := s.GetUnit(ctx, "svc-0002")
	if err != nil || u.Spec.Replicas != 2 {
		t.Fatalf("svc-0002 not repaired: %+v %v", u, err)
	}
	if _, err := s.GetUnit(ctx, "svc-0001"); err != nil {
		t.Fatalf("svc-0001 not written again: %v", err)
	}
}

// historyCalls is a History that answers yes and counts the questions.
type historyCalls struct{ n int }

func (h *historyCalls) Descends(context.Context, string, string) (bool, error) {
	h.n++
	return true, nil
}

// The history phase asks git whether a revision descends from the one
// last applied only when the revision is not a child of it: a push of one
// commit (the webhook's case) costs no look into the repository.
func TestCheckHistoryAsksOnlyBeyondParents(t *testing.T) {
	last := &store.SyncRecord{Ref: "main", Revision: "1111111111111111111111111111111111111111"}
	for _, tt := range []struct {
		name    string
		parents []string
		asks    int
	}{
		{"child", []string{last.Revision}, 0},
		{"merge with it as second parent", []string{"3333333333333333333333333333333333333333", last.Revision}, 0},
		{"grandchild", []string{"3333333333333333333333333333333333333333"}, 1},
		{"parents unknown", nil, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := &historyCalls{}
			snap := &gitsource.Snapshot{Ref: "main", Revision: "2222222222222222222222222222222222222222", Parents: tt.parents}
			if _, err := checkHistory(context.Background(), last, snap, Options{Source: "units", History: h}); err != nil {
				t.Fatal(err)
			}
			if h.n != tt.asks {
				t.Errorf("asked git %d times, want %d", h.n, tt.asks)
			}
		})
	}
}

// timedStore records when a loop brings its view of the store up to
// date.
type timedStore struct {
	*store.Store
	mu        gosync.Mutex
	refreshes []time.Time // when each refresh began
	started   chan struct{}
}

func (s *timedStore) RefreshSyncView(ctx context.Context, v *store.SyncView) error {
	s.mu.Lock()
	s.refreshes = append(s.refreshes, time.Now())
	s.mu.Unlock()
	select {
	case s.started <- struct{}{}:
	default:
	}
	return s.Store.RefreshSyncView(ctx, v)
}

// slowFetcher gives its snapshot once a refresh of the store began, or
// after wait; it notes whether one began meanwhile, and when it ended.
type slowFetcher struct {
	snap   *gitsource.Snapshot
	st     *timedStore
	wait   time.Duration
	during bool
	ended  time.Time
}

func (f *slowFetcher) Fetch(context.Context) (*gitsource.Snapshot, error) {
	select {
	case <-f.st.started:
		f.during = true
	case <-time.After(f.wait):
	}
	time.Sleep(10 * time.Millisecond) // git answering
	f.ended = time.Now()
	return f.snap, nil
}

// A pass told of a pushed commit (a webhook's: gitsource.WithAfter) reads
// what changed in the store while git answers, and again after the fetch,
// so that its plan still starts from the store as it is after the fetch;
// a pass told of nothing reads the store only once the fetch is done. The
// etcd requests of a pass told of a commit that changed one unit stay 5.
func TestLoopReadsStoreWhileFetching(t *testing.T) {
	const commit = "3333333333333333333333333333333333333333"
	for _, tc := range []struct {
		name       string
		told       bool
		change     bool
		during     bool // a refresh while fetching
		refreshes  int
		maxRequest int64
	}{
		{"told, one unit changed", true, true, true, 2, 5},
		{"told, nothing changed", true, false, true, 2, 3},
		{"not told, one unit changed", false, true, false, 2, 5},
		{"not told, nothing changed", false, false, false, 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, reqs := countingStore(t, etcdtest.New(t))
			ts := &timedStore{Store: s, started: make(chan struct{}, 1)}
			f := &slowFetcher{snap: unitSnapshot("1111111111111111111111111111111111111111", 10, nil), st: ts, wait: 200 * time.Millisecond}
			l := &Loop{Fetcher: f, Store: ts, Options: Options{Source: "units"}}
			for range 2 { // the units, then their counts in the record
				if _, err := l.Once(ctx, store.Fence{}); err != nil {
					t.Fatal(err)
				}
			}
			if tc.change {
				f.snap = unitSnapshot(commit, 10, map[int]int{3: 1})
			}
			pctx := ctx
			if tc.told {
				pctx = gitsource.WithAfter(ctx, commit)
			}
			select { // what the passes before left
			case <-ts.started:
			default:
			}
			ts.mu.Lock()
			ts.refreshes = nil
			ts.mu.Unlock()
			f.during = false
			reqs.Store(0)
			res, err := l.Once(pctx, store.Fence{})
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: 1, false: 0}[tc.change]; res.Count(Update) != want {
				t.Fatalf("pass: %s, want %d updated", res.Summary(), want)
			}
			ts.mu.Lock()
			refreshes := ts.refreshes
			ts.mu.Unlock()
			if f.during != tc.during {
				t.Errorf("the store read while fetching: %v, want %v", f.during, tc.during)
			}
			if len(refreshes) != tc.refreshes {
				t.Errorf("%d reads of what changed in the store, want %d", len(refreshes), tc.refreshes)
			}
			if n := len(refreshes); n > 0 && refreshes[n-1].Before(f.ended) {
				t.Errorf("the last read of the store (%s) came before the fetch ended (%s): the plan's state would be older than the fetch",
					refreshes[n-1].Format(time.StampMicro), f.ended.Format(time.StampMicro))
			}
			if got := reqs.Load(); got > tc.maxRequest {
				t.Errorf("%d etcd requests, want at most %d", got, tc.maxRequest)
			}
		})
	}
}
