package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

func newStore(t *testing.T) (*Store, *etcdtest.Server) {
	t.Helper()
	e := etcdtest.New(t)
	return New(e.Client(t), "/kaylee2"), e
}

func spec(name string, replicas int) *deploy.Spec {
	return &deploy.Spec{Name: name, Replicas: replicas, Apps: []deploy.App{{Image: "docker://nginx"}}}
}

func TestUnitsCRUD(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	changed, err := s.PutUnit(ctx, spec("web", 2), Fence{})
	if err != nil || !changed {
		t.Fatalf("first put: changed=%v err=%v", changed, err)
	}
	// Stored as canonical JSON at the contract key.
	r, err := s.Client().Get(ctx, "/kaylee2/units/web")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != `{"name":"web","replicas":2,"apps":[{"image":"docker://nginx"}]}` {
		t.Fatalf("stored value: %v %v", r.Kvs, err)
	}
	if changed, _ := s.PutUnit(ctx, spec("web", 2), Fence{}); changed {
		t.Fatal("an identical put reported a change")
	}
	if changed, _ := s.PutUnit(ctx, spec("web", 3), Fence{}); !changed {
		t.Fatal("an update reported no change")
	}
	u, err := s.GetUnit(ctx, "web")
	if err != nil || u.Spec.Replicas != 3 || u.Err != nil {
		t.Fatalf("get: %+v %v", u, err)
	}
	if _, err := s.PutUnit(ctx, &deploy.Spec{Name: "Bad"}, Fence{}); err == nil {
		t.Fatal("an invalid spec was stored")
	}
	if _, err := s.GetUnit(ctx, "nope"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("missing unit: %v", err)
	}
	existed, err := s.DeleteUnit(ctx, "web", Fence{})
	if err != nil || !existed {
		t.Fatalf("delete: %v %v", existed, err)
	}
	if existed, _ := s.DeleteUnit(ctx, "web", Fence{}); existed {
		t.Fatal("second delete says the unit existed")
	}
}

func TestListReportsBadValues(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	c := s.Client()
	// Written by hand, as the seed README allows.
	if _, err := c.Put(ctx, "/kaylee2/units/countly", `{"name":"countly","replicas":4,"apps":[{"image":"x"}]}`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "/kaylee2/units/broken", `{"name":"broken",`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "/kaylee2/units/typo", `{"name":"typo","replcas":2,"apps":[{"image":"x"}]}`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "/kaylee2/units/other", `{"name":"misnamed","apps":[{"image":"x"}]}`); err != nil {
		t.Fatal(err)
	}
	units, rev, err := s.ListUnits(ctx)
	if err != nil || rev == 0 {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, u := range units {
		if u.Err != nil {
			got[u.Name] = u.Err.Error()
		} else {
			got[u.Name] = "ok " + strings.Join(u.Warnings, "; ")
		}
	}
	want := map[string]string{
		"broken":  "/kaylee2/units/broken: invalid JSON",
		"countly": "ok ",
		// The key is Kaylee's contract; the error says the two fixes.
		"other": `the key is /kaylee2/units/other, the JSON's name is misnamed: write it under /kaylee2/units/misnamed (setting name to other instead leaves monder/kaylee's fleet units of misnamed, if any, running beside Kaylee's of other)`,
		// Unknown fields of stored JSON are ignored (monder/kaylee did),
		// with a warning.
		"typo": `ok /kaylee2/units/typo:1: unknown field "replcas" (did you mean "replicas"?): ignored`,
	}
	for name, w := range want {
		if got[name] != w && !(name == "broken" && strings.HasPrefix(got[name], w)) {
			t.Errorf("%s: %q, want %q", name, got[name], w)
		}
	}
}

func TestWatchUnits(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, rev, err := s.ListUnits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events := s.WatchUnits(ctx, rev)
	if _, err := s.PutUnit(ctx, spec("a", 1), Fence{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Restart(ctx, "a", "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteUnit(ctx, "a", Fence{}); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for len(seen) < 4 {
		select {
		case evs := <-events:
			for _, e := range evs {
				switch {
				case e.Restart && e.Deleted:
					seen = append(seen, "restart-delete "+e.Name)
				case e.Restart:
					seen = append(seen, "restart "+e.Name)
				case e.Deleted:
					seen = append(seen, "delete "+e.Name)
				default:
					seen = append(seen, "put "+e.Unit.Spec.Name)
				}
			}
		case <-ctx.Done():
			t.Fatalf("events: %v", seen)
		}
	}
	sort.Strings(seen)
	if strings.Join(seen, ",") != "delete a,put a,restart a,restart-delete a" {
		t.Fatalf("events %v", seen)
	}
}

func TestRestartCounter(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if _, err := s.Restart(ctx, "ghost", "test"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("restart of a missing unit: %v", err)
	}
	if _, err := s.PutUnit(ctx, spec("web", 2), Fence{}); err != nil {
		t.Fatal(err)
	}
	for want := int64(1); want <= 3; want++ {
		if n, err := s.Restart(ctx, "web", "test"); err != nil || n != want {
			t.Fatalf("restart: %d %v, want %d", n, err, want)
		}
	}
	if c, _ := s.RestartCounters(ctx); c["web"] != 3 {
		t.Fatalf("counters %v", c)
	}
}

func TestDeposedLeaderCannotWrite(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := s.NewLeader(ctx, SchedulerElection, "agent-a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Campaign(ctx); err != nil {
		t.Fatal(err)
	}
	fence := a.Fence()
	if _, err := s.PutUnit(ctx, spec("x", 1), fence); err != nil {
		t.Fatalf("leader's write: %v", err)
	}
	b, err := s.NewLeader(ctx, SchedulerElection, "agent-b", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if who, _ := s.LeaderID(ctx, SchedulerElection); who != "agent-a" {
		t.Fatalf("leader is %q", who)
	}
	// a is deposed: its session ends, b takes over.
	if err := a.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Campaign(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutUnit(ctx, spec("x", 2), fence); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("deposed leader's write: %v, want ErrNotLeader", err)
	}
	if _, err := s.DeleteUnit(ctx, "x", fence); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("deposed leader's delete: %v", err)
	}
	if u, _ := s.GetUnit(ctx, "x"); u == nil || u.Spec.Replicas != 1 {
		t.Fatalf("unit changed by a deposed leader: %+v", u)
	}
	if _, err := s.PutUnit(ctx, spec("x", 2), b.Fence()); err != nil {
		t.Fatalf("new leader's write: %v", err)
	}
}

func TestDialErrors(t *testing.T) {
	ctx := context.Background()
	_, err := Dial(ctx, DialConfig{Endpoints: []string{"http://127.0.0.1:1"}, DialTimeout: 500 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "does not answer") || !strings.Contains(err.Error(), "127.0.0.1:1") || !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("unreachable etcd: %v", err)
	}
	_, err = Dial(ctx, DialConfig{Endpoints: []string{"http://127.0.0.1:1"}, CAFile: "/nonexistent/ca.pem"})
	var fe *TLSFileError
	if !errors.As(err, &fe) || fe.What != "CA" || !strings.Contains(err.Error(), "etcd TLS CA (/nonexistent/ca.pem): open /nonexistent/ca.pem") {
		t.Fatalf("bad CA file: %v", err)
	}
	if strings.Contains(err.Error(), "--") {
		t.Errorf("a library error names a flag: %v", err)
	}
}

func TestStatusRecords(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	st := &Status{Name: "web", Phase: PhaseRunning, SpecHash: "0123abcd", Desired: 2, Running: 2,
		Units: []UnitStatus{{Name: "k2:web:0123abcd:aaaaaa:0.service", MachineID: "m1", ActiveState: "active", SubState: "running"}}}
	if err := s.PutStatus(ctx, st, Fence{}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetStatus(ctx, "web")
	if err != nil || got.Phase != PhaseRunning || got.Running != 2 || len(got.Units) != 1 || got.Units[0].MachineID != "m1" {
		t.Fatalf("GetStatus = %+v, %v", got, err)
	}
	all, err := s.ListStatuses(ctx)
	if err != nil || len(all) != 1 || all["web"] == nil {
		t.Fatalf("ListStatuses = %v, %v", all, err)
	}
	if err := s.DeleteStatus(ctx, "web", Fence{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetStatus(ctx, "web"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v, want ErrNotFound", err)
	}
}

// Lead runs fn only while leading: a second candidate takes over when the
// first stops, and the first's fence no longer writes.
func TestLeadHandsOver(t *testing.T) {
	s, e := newStore(t)
	s2 := New(e.Client(t), "/kaylee2")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	type lead struct {
		id    string
		fence Fence
	}
	leads := make(chan lead, 4)
	run := func(s *Store, id string) context.CancelFunc {
		cctx, stop := context.WithCancel(ctx)
		go s.Lead(cctx, SchedulerElection, id, 2*time.Second, log, func(lctx context.Context, f Fence) error {
			leads <- lead{id, f}
			<-lctx.Done()
			return nil
		})
		return stop
	}
	stopA := run(s, "a")
	first := <-leads
	if id, err := s.LeaderID(ctx, SchedulerElection); id != "a" || err != nil {
		t.Fatalf("LeaderID = %q, %v; want a", id, err)
	}
	stopB := run(s2, "b")
	defer stopB()
	select {
	case l := <-leads:
		t.Fatalf("%s leads while %s still does", l.id, first.id)
	case <-time.After(time.Second):
	}
	stopA()
	second := <-leads
	if second.id != "b" {
		t.Fatalf("after a stopped, %s leads; want b", second.id)
	}
	if err := s.PutStatus(ctx, &Status{Name: "x"}, first.fence); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("old leader's status write: %v, want ErrNotLeader", err)
	}
	if err := s.PutStatus(ctx, &Status{Name: "x"}, second.fence); err != nil {
		t.Fatalf("new leader's status write: %v", err)
	}
}

// Each role has its own election: two candidates lead two elections at
// once, and each leader's writes are fenced on its own key, so losing one
// leadership fences only that leader's writes.
func TestElectionsAreIndependent(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sched, err := s.NewLeader(ctx, SchedulerElection, "server", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	src, err := s.NewLeader(ctx, SourceElection("team-a"), "sync-a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []*Leader{sched, src} {
		done := make(chan error, 1)
		go func() { done <- l.Campaign(ctx) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s waits behind another election", l.id)
		}
	}
	if id, _ := s.LeaderID(ctx, SchedulerElection); id != "server" {
		t.Fatalf("scheduler leader %q", id)
	}
	leaders, err := s.SourceLeaders(ctx)
	if err != nil || len(leaders) != 1 || leaders["team-a"] != "sync-a" {
		t.Fatalf("source leaders %v %v", leaders, err)
	}
	schedFence, srcFence := sched.Fence(), src.Fence()
	if schedFence.Key == srcFence.Key {
		t.Fatalf("both fences on %s", schedFence.Key)
	}
	if err := src.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutUnit(ctx, spec("x", 1), srcFence); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("write of the resigned source leader: %v, want ErrNotLeader", err)
	}
	if _, err := s.PutUnit(ctx, spec("x", 1), schedFence); err != nil {
		t.Fatalf("the scheduler leader's write after another role's leader resigned: %v", err)
	}
	if leaders, _ := s.SourceLeaders(ctx); len(leaders) != 0 {
		t.Fatalf("source leaders after resigning: %v", leaders)
	}
}

// Confirm: a leader's fence stands for a while (its lease's time to live);
// a resigned leader's does not; the zero fence always does.
func TestConfirm(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := s.NewLeader(ctx, SchedulerElection, "a", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Campaign(ctx); err != nil {
		t.Fatal(err)
	}
	f := l.Fence()
	w, err := s.Confirm(ctx, f)
	if err != nil || w < 3*time.Second || w > 5*time.Second {
		t.Fatalf("leader's window %s %v, want 3-5s of its 5s lease", w, err)
	}
	if w, err := s.Confirm(ctx, Fence{}); err != nil || w < time.Hour {
		t.Fatalf("zero fence: %s %v", w, err)
	}
	if err := l.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Confirm(ctx, f); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("after resigning: %v, want ErrNotLeader", err)
	}
	// A newer candidate holding a key of the same name is not this leader.
	other := f
	other.Rev++
	if _, err := s.Confirm(ctx, other); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("another revision: %v", err)
	}
}

// A pass's statuses go in a few transactions: 250 writes and deletes are
// 3 revisions of etcd (100 keys each at most), not 250, and read back as
// written.
func TestApplyStatusesBatches(t *testing.T) {
	s, e := newStore(t)
	ctx := context.Background()
	cli := e.Client(t)
	var puts []*Status
	for i := range 200 {
		puts = append(puts, &Status{Name: fmt.Sprintf("u%03d", i), Phase: PhaseRunning, Desired: 3, Running: 3})
	}
	if err := s.ApplyStatuses(ctx, puts, nil, Fence{}); err != nil {
		t.Fatal(err)
	}
	before, err := cli.Get(ctx, "/nothing")
	if err != nil {
		t.Fatal(err)
	}
	var deletes []string
	for i := range 50 {
		deletes = append(deletes, fmt.Sprintf("u%03d", i))
	}
	puts[100].Phase = PhaseProgressing
	if err := s.ApplyStatuses(ctx, puts[50:], deletes, Fence{}); err != nil {
		t.Fatal(err)
	}
	after, err := cli.Get(ctx, "/nothing")
	if err != nil {
		t.Fatal(err)
	}
	if d := after.Header.Revision - before.Header.Revision; d != 2 {
		t.Errorf("50 deletes and 150 writes took %d revisions of etcd, want 2 transactions", d)
	}
	got, err := s.ListStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 150 || got["u000"] != nil || got["u100"].Phase != PhaseProgressing || got["u199"].Running != 3 {
		t.Errorf("statuses after the batch: %d of them, u000 %v, u100 %+v", len(got), got["u000"], got["u100"])
	}
}
