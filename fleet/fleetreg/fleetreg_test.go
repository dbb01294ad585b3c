package fleetreg_test

import (
	"context"
	"testing"
	"time"

	etcd "github.com/coreos/etcd/client"
	"github.com/coreos/fleet/unit"

	"github.com/kaylee-gitops/kaylee/fleet/fleetreg"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// fleet's agents publish every unit state again every 24s (4/5 of its
// 30s TTL) whether it changed or not. Such a republish is no change: it
// must not wake the scheduler, which lists every state to see what
// changed (with 1,000 units × 3 on 100 machines, one list per machine's
// republish, four a second).
func TestStateChangesIgnoresRepublish(t *testing.T) {
	e := etcdtest.New(t)
	c, err := etcd.New(etcd.Config{Endpoints: e.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	api := fleetreg.New(etcd.NewKeysAPI(c), "/_coreos.com/fleet/")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := api.StateChanges(ctx, 100*time.Millisecond)
	select {
	case <-changes: // the watch started: a change may have come before
	case <-time.After(time.Second):
		t.Fatal("no value when the watch started")
	}
	st := &unit.UnitState{LoadState: "loaded", ActiveState: "active", SubState: "running", MachineID: "m1", UnitHash: "abc", UnitName: "k2:web:1.service"}
	save := func(what string, st *unit.UnitState, want bool) {
		t.Helper()
		api.Registry().SaveUnitState(st.UnitName, st, 30*time.Second)
		select {
		case <-changes:
			if !want {
				t.Fatalf("%s: the scheduler was told of a state change", what)
			}
		case <-time.After(time.Second):
			if want {
				t.Fatalf("%s: the scheduler was not told of the state change within 1s", what)
			}
		}
	}
	save("a new state", st, true)
	save("the same state published again", st, false)
	save("and again", st, false)
	dead := *st
	dead.ActiveState, dead.SubState = "inactive", "dead"
	save("a state that changed", &dead, true)
	other := *st
	other.UnitName = "k2:web:2.service"
	save("another unit's new state", &other, true)
	save("the first unit's state published again", &dead, false)
}

// A state fleet's agent removes (it unloaded the unit) is told apart from
// one that expires (its agent late to publish it again): StateRemovals
// has the first, not the second, and its count grows with each.
func TestStateRemovals(t *testing.T) {
	e := etcdtest.New(t)
	c, err := etcd.New(etcd.Config{Endpoints: e.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	keys := etcd.NewKeysAPI(c)
	api := fleetreg.New(keys, "/_coreos.com/fleet/")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := api.StateChanges(ctx, 100*time.Millisecond)
	<-changes // the watch started
	reg := api.Registry()
	state := func(name string) *unit.UnitState {
		return &unit.UnitState{LoadState: "loaded", ActiveState: "active", SubState: "running", MachineID: "m1", UnitHash: "abc", UnitName: name}
	}
	reg.SaveUnitState("k2:expires.service", state("k2:expires.service"), time.Second)
	reg.SaveUnitState("k2:unloaded.service", state("k2:unloaded.service"), time.Hour)
	before := time.Now()
	if err := reg.RemoveUnitState("k2:unloaded.service"); err != nil { // as fleet's agent unloading it
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := keys.Get(ctx, "/_coreos.com/fleet/states/k2:expires.service/m1", nil); err != nil {
			break // expired
		}
		if time.Now().After(deadline) {
			t.Fatal("the state with a 1s TTL did not expire in 10s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // the watch's last events
	removed, n := api.StateRemovals()
	if at, ok := removed["k2:unloaded.service"]; !ok || at.Before(before) {
		t.Errorf("removals %v: want k2:unloaded.service's, at or after %s", removed, before.Format(time.StampMilli))
	}
	for k := range removed {
		if k != "k2:unloaded.service" {
			t.Errorf("removals %v: %s is not one (an expiry is not a removal)", removed, k)
		}
	}
	if n != 1 {
		t.Errorf("count %d, want 1", n)
	}
}
