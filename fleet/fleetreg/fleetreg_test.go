package fleetreg_test

import (
	"context"
	"errors"
	"testing"
	"time"

	etcd "github.com/coreos/etcd/client"
	"github.com/coreos/fleet/machine"
	"github.com/coreos/fleet/unit"

	"github.com/kaylee-gitops/kaylee/fleet/fleetreg"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// newAPI is fleet's registry client on a new etcd, and its v2 keys.
func newAPI(t *testing.T) (*fleetreg.API, etcd.KeysAPI) {
	t.Helper()
	e := etcdtest.New(t)
	c, err := etcd.New(etcd.Config{Endpoints: e.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	keys := etcd.NewKeysAPI(c)
	return fleetreg.New(keys, "/_coreos.com/fleet/"), keys
}

// fleet's agents publish every unit state again every 24s (4/5 of its
// 30s TTL) whether it changed or not. Such a republish is no change: it
// must not wake the scheduler, which lists every state to see what
// changed (with 1,000 units × 3 on 100 machines, one list per machine's
// republish, four a second).
func TestStateChangesIgnoresRepublish(t *testing.T) {
	api, _ := newAPI(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := api.StateChanges(ctx, 100*time.Millisecond, time.Minute)
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
	api, keys := newAPI(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := api.StateChanges(ctx, 100*time.Millisecond, time.Minute)
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

// A state that expires (its agent late to publish it again) is counted
// as an expiry, not a change; back with its last value within the hold
// it is neither, and the caller is not told; back with another value, or
// after the hold, it is a change.
func TestStateSeqsExpiryAndReturn(t *testing.T) {
	api, keys := newAPI(t)
	reg := api.Registry()
	st := &unit.UnitState{LoadState: "loaded", ActiveState: "active", SubState: "running", MachineID: "m1", UnitHash: "abc", UnitName: "k2:web:1.service"}
	reg.SaveUnitState(st.UnitName, st, time.Hour) // before the watch: listed at its start
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const hold = 3 * time.Second
	changes := api.StateChanges(ctx, 100*time.Millisecond, hold)
	<-changes // the watch started
	told := func() bool {
		select {
		case <-changes:
			return true
		case <-time.After(500 * time.Millisecond):
			return false
		}
	}
	expire := func() {
		t.Helper()
		reg.SaveUnitState(st.UnitName, st, time.Second)
		if told() {
			t.Fatal("told of the state published again with a TTL")
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := keys.Get(ctx, "/_coreos.com/fleet/states/k2:web:1.service/m1", nil); err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the state with a 1s TTL did not expire in 10s")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !told() {
			t.Fatal("not told of the expiry")
		}
	}
	c0, x0 := api.StateSeqs()
	for _, step := range []struct {
		what      string
		do        func()
		tell      bool   // told (an expiry's do checks that it is)
		dc, dx    uint64 // changes and expiries since the step before
		untilNext time.Duration
	}{
		{what: "expired", do: expire, dx: 1},
		{what: "back with its value", do: func() { reg.SaveUnitState(st.UnitName, st, time.Hour) }},
		{what: "expired again", do: expire, dx: 1, untilNext: hold + time.Second},
		{what: "back after the hold", do: func() { reg.SaveUnitState(st.UnitName, st, time.Hour) }, tell: true, dc: 1},
		{what: "expired once more", do: expire, dx: 1},
		{what: "back with another value", tell: true, dc: 1, do: func() {
			dead := *st
			dead.ActiveState, dead.SubState = "inactive", "dead"
			reg.SaveUnitState(st.UnitName, &dead, time.Hour)
		}},
	} {
		step.do()
		if step.dx == 0 {
			if got := told(); got != step.tell {
				t.Errorf("%s: told %v, want %v", step.what, got, step.tell)
			}
		}
		c1, x1 := api.StateSeqs()
		if c1-c0 != step.dc || x1-x0 != step.dx {
			t.Errorf("%s: %d changes and %d expiries more, want %d and %d", step.what, c1-c0, x1-x0, step.dc, step.dx)
		}
		c0, x0 = c1, x1
		time.Sleep(step.untilNext)
	}
}

// fleet's machines are watched too: a machine published again unchanged
// (its agent's heartbeat) is no change; one that comes, leaves or expires
// (its agent died) is.
func TestStateSeqsMachines(t *testing.T) {
	api, _ := newAPI(t)
	reg := api.Registry()
	m1 := machine.MachineState{ID: "m1", PublicIP: "10.0.0.1"}
	if _, err := reg.CreateMachineState(m1, time.Hour); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := api.StateChanges(ctx, 100*time.Millisecond, time.Minute)
	<-changes // the watches started
	c0, _ := api.StateSeqs()
	for _, step := range []struct {
		what string
		do   func() error
		tell bool
	}{
		{"heartbeat", func() error { _, err := reg.SetMachineState(m1, time.Hour); return err }, false},
		{"a machine comes", func() error {
			_, err := reg.CreateMachineState(machine.MachineState{ID: "m2", PublicIP: "10.0.0.2"}, 2*time.Second)
			return err
		}, true},
		{"a machine leaves", func() error { return reg.RemoveMachineState("m1") }, true},
		{"a machine expires", func() error {
			for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
				if ms, err := reg.Machines(); err != nil || len(ms) == 0 {
					return err
				}
			}
			return errors.New("m2 (a TTL of 2s) did not expire in 10s")
		}, true},
	} {
		if err := step.do(); err != nil {
			t.Fatal(err)
		}
		var told bool
		select {
		case <-changes:
			told = true
		case <-time.After(time.Second):
		}
		c1, _ := api.StateSeqs()
		if told != step.tell || (c1 != c0) != step.tell {
			t.Errorf("%s: told %v, changes %d more; want told and a change: %v", step.what, told, c1-c0, step.tell)
		}
		c0 = c1
	}
}
