package fleet

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	etcd "github.com/coreos/etcd/client"
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
	c.run(t, Options{MinReady: time.Nanosecond, Poll: 500 * time.Millisecond, Resync: time.Hour})
	c.waitReady(t, "svc-0004")
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

// TestIdleRunIgnoresExpiredStates: on a loaded etcd, fleet's states
// expire (their agent late to publish them again) and come back
// unchanged. The scheduler holds such a state while its machine stays
// listed, so an expiry, and a return within the hold (the hold less a
// resync: 90s here), make no pass and no list of the states: one list
// of the machines per expiry. A state
// that expires on a machine that left fleet's list makes a pass.
func TestIdleRunIgnoresExpiredStates(t *testing.T) {
	c := newIdleCluster(t)
	c.run(t, Options{MinReady: time.Nanosecond, Poll: 500 * time.Millisecond, Resync: 30 * time.Second})
	c.waitReady(t, "svc-0004")
	c.counting.reset()
	expired := func(st *unit.UnitState) {
		t.Helper()
		c.reg.SaveUnitState(st.UnitName, st, time.Second)
		key := "/_coreos.com/fleet/states/" + st.UnitName + "/" + st.MachineID
		for end := time.Now().Add(10 * time.Second); c.exists(t, key); {
			if time.Now().After(end) {
				t.Fatalf("%s did not expire in 10s", key)
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // told, and looked
	}
	for _, st := range c.states[:3] {
		expired(st)
		c.reg.SaveUnitState(st.UnitName, st, time.Hour) // back, unchanged
	}
	time.Sleep(300 * time.Millisecond)
	if got := c.counting.counts(); len(got) != 0 {
		t.Errorf("3 states expired and came back unchanged: fleet calls %v, want none (no pass)", got)
	}
	if sts, err := c.s.ListStatuses(context.Background()); err != nil || sts["svc-0000"].Ready != 3 {
		t.Errorf("svc-0000's status after its states came back: %+v (%v)", sts["svc-0000"], err)
	}
	// An agent that died: its machine leaves fleet's list (its states
	// expire later).
	if err := c.reg.RemoveMachineState(c.states[0].MachineID); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(5 * time.Second); c.counting.count("UnitStates") == 0; {
		if time.Now().After(end) {
			t.Fatalf("a machine left fleet: no pass within 5s (fleet calls %v)", c.counting.counts())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// run runs a reconciler with opts on the cluster until the test ends.
func (c *idleCluster) run(t *testing.T, opts Options) {
	t.Helper()
	r, err := NewReconciler(c.counting, c.s, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, store.Fence{}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// waitReady waits until unit's status is running with 3 ready, and the
// passes that saw it so are over.
func (c *idleCluster) waitReady(t *testing.T, unit string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := c.s.GetStatus(context.Background(), unit)
		if err == nil && st.Phase == store.PhaseRunning && st.Ready == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not running and ready after 10s: %+v (%v)", unit, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
}

// exists says whether fleet's registry has key.
func (c *idleCluster) exists(t *testing.T, key string) bool {
	t.Helper()
	_, err := c.keys.Get(context.Background(), key, nil)
	return err == nil
}

// idleCluster is 5 units × 3 replicas in fleet's registry on 3 machines,
// scheduled and running.
type idleCluster struct {
	cli *clientv3.Client
	s   *store.Store
	reg interface {
		SaveUnitState(string, *unit.UnitState, time.Duration)
		RemoveMachineState(string) error
	}
	keys     etcd.KeysAPI
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
	v2, err := etcd.New(etcd.Config{Endpoints: e.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	c := &idleCluster{cli: cli, s: s, reg: reg, keys: etcd.NewKeysAPI(v2), counting: &countingAPI{API: api}}
	for i := range 5 {
		states, err := seedUnit(ctx, s, reg, benchSpec(i), machines, i)
		if err != nil {
			t.Fatal(err)
		}
		c.states = append(c.states, states...)
	}
	return c
}
