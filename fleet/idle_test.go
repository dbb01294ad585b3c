package fleet

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/coreos/fleet/machine"
	"github.com/coreos/fleet/unit"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kaylee-gitops/kaylee/fleet/fleetreg"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// TestIdlePassWritesNothing: once every unit runs and is ready, a pass
// that finds nothing changed (a resync, a wake-up of the watch) writes
// nothing to etcd (no status, instance, history or event key is written
// again: their mod revisions stay) and makes no fleet call but its three
// lists (units, states, machines).
func TestIdlePassWritesNothing(t *testing.T) {
	c := newIdleCluster(t)
	ctx, cli, s, counting := context.Background(), c.cli, c.s, c.counting
	r, err := NewReconciler(counting, s, Options{MinReady: time.Nanosecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := r.newTerm(ctx, store.Fence{})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // running, then ready
		if _, err := tm.pass(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	revisions := func() map[string]int64 {
		r, err := cli.Get(ctx, store.DefaultPrefix+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, kv := range r.Kvs {
			out[string(kv.Key)] = kv.ModRevision
		}
		return out
	}
	before := revisions()
	if st, err := s.GetStatus(ctx, "svc-0000"); err != nil || st.Phase != store.PhaseRunning || st.Ready != 3 {
		t.Fatalf("after two passes svc-0000's status is %+v (%v), want running with 3 ready", st, err)
	}
	counting.reset()
	const passes = 3
	for range passes {
		res, err := tm.pass(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res.ops != 0 || res.busy {
			t.Fatalf("an idle pass made %d fleet calls (busy %v)", res.ops, res.busy)
		}
		time.Sleep(10 * time.Millisecond)
	}
	after := revisions()
	var changed []string
	for k, rev := range after {
		if before[k] != rev {
			changed = append(changed, fmt.Sprintf("%s (mod revision %d, was %d)", k, rev, before[k]))
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			changed = append(changed, k+" (deleted)")
		}
	}
	sort.Strings(changed)
	if len(changed) > 0 {
		t.Errorf("%d idle passes wrote %d keys:\n%v", passes, len(changed), changed)
	}
	want := map[string]int64{"Units": passes, "UnitStates": passes, "Machines": passes}
	if got := counting.counts(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%d idle passes made fleet calls %v, want %v", passes, got, want)
	}
}

// TestIdleRunIgnoresRepublishedStates: fleet's agents publish every unit
// state again every 24s, unchanged. The reconciler, which watches the
// states, lists them (to see what changed) only when one changed: with
// a poll every 500ms (and no resync), states republished for 3s make no
// fleet call at all, and a state that changes makes it look.
func TestIdleRunIgnoresRepublishedStates(t *testing.T) {
	c := newIdleCluster(t)
	r, err := NewReconciler(c.counting, c.s, Options{MinReady: time.Nanosecond, Poll: 500 * time.Millisecond, Resync: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, store.Fence{}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := c.s.GetStatus(ctx, "svc-0004")
		if err == nil && st.Phase == store.PhaseRunning && st.Ready == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("svc-0004 not running and ready after 10s: %+v (%v)", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // the passes that saw it ready
	c.counting.reset()
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		for _, st := range c.states {
			c.reg.SaveUnitState(st.UnitName, st, time.Hour)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := c.counting.counts(); len(got) != 0 {
		t.Errorf("states republished unchanged for 3s made fleet calls %v, want none", got)
	}
	dead := *c.states[0]
	dead.ActiveState, dead.SubState = "inactive", "dead"
	c.reg.SaveUnitState(dead.UnitName, &dead, time.Hour)
	for end := time.Now().Add(5 * time.Second); c.counting.count("UnitStates") == 0; {
		if time.Now().After(end) {
			t.Fatalf("a replica's state changed to inactive/dead: no fleet call within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// idleCluster is 5 units × 3 replicas in fleet's registry on 3 machines,
// scheduled and running.
type idleCluster struct {
	cli *clientv3.Client
	s   *store.Store
	reg interface {
		SaveUnitState(string, *unit.UnitState, time.Duration)
	}
	counting *countingAPI
	states   []*unit.UnitState
}

func newIdleCluster(t *testing.T) *idleCluster {
	e := etcdtest.New(t)
	cli := e.Client(t)
	s := store.New(cli, store.DefaultPrefix)
	api, err := NewAPI(Config{EtcdEndpoints: e.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	reg := api.(*fleetreg.API).Registry()
	ctx := context.Background()
	machines := []string{fmt.Sprintf("%032x", 1), fmt.Sprintf("%032x", 2), fmt.Sprintf("%032x", 3)}
	for i, m := range machines {
		if _, err := reg.CreateMachineState(machine.MachineState{ID: m, PublicIP: fmt.Sprintf("10.0.0.%d", i+1),
			Metadata: map[string]string{"role": "worker"}}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	c := &idleCluster{cli: cli, s: s, reg: reg, counting: &countingAPI{API: api}}
	for i := range 5 {
		states, err := seedUnit(ctx, s, reg, benchSpec(i), machines, i)
		if err != nil {
			t.Fatal(err)
		}
		c.states = append(c.states, states...)
	}
	return c
}
