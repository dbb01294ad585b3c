package fleet

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
)

// apply carries out a pass's plan, in this order:
//
//  1. the plan's warnings are logged;
//  2. the instance registry (one fenced transaction): a replica about to
//     be stopped leaves it before fleet is told to stop it (DrainDelay
//     before, counted from this write: see drain.go), so a refused write
//     makes no fleet call;
//  3. the fleet calls, each in a window of confirmed leadership (see
//     guard): none once leadership cannot be confirmed; then, when due,
//     the removal of what fleet keeps of destroyed fleet units (sweep.go);
//  4. the observer is told the phases;
//  5. the statuses that changed (fenced);
//  6. the history (fenced), with its notifications and events: written
//     after the fleet calls and statuses it tells of;
//  7. the pass's events, whatever failed before (deferred).
//
// It stops at the first step that fails and returns why: a refused fenced
// write (store.ErrNotLeader) ends the term.
func (t *term) apply(ctx context.Context, snap *snapshot, plan *planResult) error {
	t.logWarnings(plan)
	if err := t.writeInstances(ctx, plan.instances); err != nil {
		// The replicas whose drain began in this pass are still listed:
		// their drain begins at a write that is done.
		t.planner.mem.dropDrains(plan.drainStarted)
		return err
	}
	// Drains count from the registry write just done.
	t.planner.mem.drainsFrom(plan.drainStarted, time.Now())
	defer t.flushEvents(ctx)
	t.events.settle(snap.fleetUnits, snap.states)
	for _, e := range plan.events {
		t.events.add(e)
	}
	if err := t.callFleet(ctx, plan.ops, plan.why()); err != nil {
		return err
	}
	t.sweepLeftovers(ctx)
	if t.opts.Observer != nil {
		t.opts.Observer.Phases(plan.phases())
	}
	if err := t.writeStatuses(ctx, plan.statuses); err != nil {
		return err
	}
	return t.writeHistory(ctx, plan.history)
}

// logWarnings logs what the plan warns of.
func (t *term) logWarnings(plan *planResult) {
	t.warnMachines(plan.droppedMachines)
	for _, w := range plan.warnings {
		t.log.Warn(w.msg, w.args...)
	}
}

// warnMachines logs what was left out of fleet's machines, once for each
// change of it.
func (t *term) warnMachines(dropped []string) {
	key := strings.Join(dropped, "\n")
	if key == t.machinesDropped {
		return
	}
	t.machinesDropped = key
	for _, d := range dropped {
		t.log.Warn("fleet reports machine data no unit file can hold; left out of placement", "what", d)
	}
}

// writeInstances writes the instance registry's change (one fenced
// transaction).
func (t *term) writeInstances(ctx context.Context, d instanceDiff) error {
	if len(d.puts)+len(d.deletes) == 0 {
		return nil
	}
	if err := t.store.ApplyInstances(ctx, d.puts, d.deletes, t.fence); err != nil {
		return fmt.Errorf("instance registry: %w; no fleet call made", err)
	}
	t.reg.applied(d.puts, d.deletes)
	return nil
}

// callFleet makes the fleet calls of a pass with a bounded pool, each
// within a window of confirmed leadership (see guard). When leadership
// cannot be confirmed it makes no further call and returns why.
func (t *term) callFleet(ctx context.Context, ops []op, why map[string]string) error {
	if len(ops) == 0 {
		return nil
	}
	g := t.leaderGuard()
	g.confirmed = t.opts.Confirmed
	work := make(chan op)
	var wg sync.WaitGroup
	for range min(t.opts.Workers, len(ops)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				if g.allow(ctx) != nil {
					continue
				}
				t.callOne(o, why[o.owner])
			}
		}()
	}
	for _, o := range ops {
		select {
		case work <- o:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	if g.err != nil && ctx.Err() == nil {
		t.log.Warn("fleet calls not made: leadership could not be confirmed", "err", g.err)
	}
	return g.err
}

// leaderGuard is a guard (see guard.go) that confirms this term's
// leadership through its fence.
func (t *term) leaderGuard() *guard {
	return &guard{confirm: func(ctx context.Context) (time.Duration, error) { return t.store.Confirm(ctx, t.fence) }}
}

// callOne makes one fleet call, allowed by the guard, and tells of it.
func (t *term) callOne(o op, why string) {
	err := t.call(o)
	if t.opts.Observer != nil {
		t.opts.Observer.FleetCall(o.kind.String(), err)
	}
	if err != nil {
		t.log.Warn("fleet call failed; will retry", "unit", o.owner, "op", o.kind.String(), "fleetUnit", o.name, "err", err)
		return
	}
	t.log.Info("fleet", "unit", o.owner, "op", o.kind.String(), "fleetUnit", o.name)
	if o.kind == opDestroy {
		t.sweep.destroyed(time.Now())
	}
	t.events.addCall(o, why)
}

func (t *term) call(o op) error {
	switch o.kind {
	case opCreate:
		return t.api.CreateUnit(o.unit)
	case opLaunch:
		return t.api.SetUnitTargetState(o.name, targetLaunched)
	case opStop:
		return t.api.SetUnitTargetState(o.name, targetLoaded)
	case opDestroy:
		return t.api.DestroyUnit(o.name)
	}
	return fmt.Errorf("unknown op %d", o.kind)
}

// writeStatuses writes the statuses that changed (fenced). A refused
// write means leadership is lost: ErrNotLeader ends the term.
func (t *term) writeStatuses(ctx context.Context, statuses []namedStatus) error {
	var puts []*store.Status
	var deletes []string
	for _, ns := range statuses {
		prev := t.statuses[ns.name]
		switch {
		case ns.status == nil && prev != nil:
			deletes = append(deletes, ns.name)
		case ns.status != nil && !sameStatus(prev, ns.status):
			puts = append(puts, ns.status)
		}
	}
	// A few transactions for the pass, not one per unit: a first
	// deployment of 500 units wrote its statuses one round trip at a
	// time, longer than a rollout's deadline on a loaded etcd.
	if err := t.store.ApplyStatuses(ctx, puts, deletes, t.fence); err != nil {
		return err
	}
	for _, name := range deletes {
		delete(t.statuses, name)
	}
	for _, st := range puts {
		if prev := t.statuses[st.Name]; prev == nil || prev.Phase != st.Phase || prev.Message != st.Message {
			t.log.Info("status", "unit", st.Name, "phase", st.Phase, "running", st.Running, "desired", st.Desired, "message", st.Message)
		}
		t.statuses[st.Name] = st
	}
	return nil
}

// sameStatus compares all but the time stamp.
func sameStatus(a, b *store.Status) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.Time, y.Time = time.Time{}, time.Time{}
	return reflect.DeepEqual(x, y)
}

// writeHistory writes the history's changes (fenced): each entry written
// is told to Options.History and, when it opens or closes a rollout, to
// the event log.
func (t *term) writeHistory(ctx context.Context, changes []unitHistory) error {
	for _, h := range changes {
		if h.drop {
			if err := t.store.DeleteHistory(ctx, h.name, t.fence); err != nil {
				return err
			}
			delete(t.history, h.name)
			continue
		}
		for _, c := range h.changes {
			if err := t.store.PutHistory(ctx, c.entry, c.drop, t.fence); err != nil {
				return err
			}
			if ev, ok := historyEvent(*c.entry); ok {
				if st := t.statuses[h.name]; ev.Kind == store.EventRolloutFailed && st != nil && st.SpecHash == ev.SpecHash {
					ev.Evidence = st.Evidence // what the failing replica's machine saw
				}
				t.events.add(ev)
			}
			t.history[h.name] = applyHistory(t.history[h.name], c)
		}
	}
	return nil
}
