package fleet

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/coreos/fleet/machine"
	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// A pass is a pipeline of three steps (see term.pass):
//
//  1. snapshot: read the store and fleet once, with a fixed number of list
//     calls (readSnapshot);
//  2. plan: compute from the snapshot alone every fleet call, status,
//     registry entry and history entry of the pass (passPlanner.plan, in
//     compute.go), making no call;
//  3. apply: carry the plan out in a fixed order, fleet calls under the
//     fence (term.apply, in apply.go).

// snapshot is everything a pass plans from, read once at its start.
type snapshot struct {
	rev        int64 // store revision units were read at
	units      []*store.Unit
	restarts   map[string]int64             // restart counters (kaylee restart)
	suspended  map[string]*store.Suspension // kaylee suspend
	fleetUnits []*schema.Unit
	states     []*schema.UnitState
	machines   []machine.MachineState
	// removed: the unit states fleet's agents removed, by "<unit>" or
	// "<unit>/<machine>" (StateRemovalTracker); nil when not known.
	removed map[string]time.Time

	// What this term last wrote of the records only the leader writes,
	// read from the store when the term started and kept since.
	statuses map[string]*store.Status
	history  map[string][]*store.HistoryEntry
	registry *registry

	// pins: the rollback pins (kaylee rollback), read every pass: a pin
	// restores the engine its revision ran with (see engineOf).
	pins map[string]*store.RollbackPin

	// sources: the rollback pins and sync records a history entry is
	// written with, the records read only when a pass changes a history
	// (see term.readSources).
	sources historySources
}

// historySources is what a history entry takes from outside the
// scheduler: the rollback pins (kaylee rollback) and the sync records
// naming the git source of each unit.
type historySources struct {
	pins    map[string]*store.RollbackPin
	records map[string]*store.SyncRecord
}

// readSnapshot reads the store and fleet for one pass. Any error leaves
// the pass without a plan: nothing is changed for what it could not read.
func (t *term) readSnapshot(ctx context.Context) (*snapshot, error) {
	s := &snapshot{statuses: t.statuses, history: t.history, registry: t.reg}
	var err error
	if s.units, s.rev, err = t.store.ListUnits(ctx); err != nil {
		return nil, err
	}
	if s.restarts, err = t.store.RestartCounters(ctx); err != nil {
		return nil, err
	}
	if s.suspended, err = t.store.Suspensions(ctx); err != nil {
		return nil, err
	}
	if s.pins, err = t.store.RollbackPins(ctx); err != nil {
		return nil, err
	}
	s.sources.pins = s.pins
	if err := t.keepSettings(ctx); err != nil {
		return nil, err
	}
	if s.fleetUnits, err = t.api.Units(); err != nil {
		return nil, fmt.Errorf("fleet: listing units: %w", err)
	}
	if tr, ok := t.api.(StateTracker); ok { // before the states: a change during the read makes another pass
		t.seqs, _ = tr.StateSeqs()
	}
	if s.states, err = t.api.UnitStates(); err != nil {
		return nil, fmt.Errorf("fleet: listing unit states: %w", err)
	}
	if r, ok := t.api.(StateRemovalTracker); ok {
		s.removed, t.removals = r.StateRemovals()
	}
	if s.machines, err = t.api.Machines(); err != nil {
		return nil, fmt.Errorf("fleet: listing machines: %w", err)
	}
	return s, nil
}

// readSources reads the history's sources, with the pins the snapshot
// read. The records only name a source, so an error is logged and the
// history is written without them.
func (t *term) readSources(ctx context.Context, pins map[string]*store.RollbackPin) historySources {
	src := historySources{pins: pins}
	var err error
	if src.records, err = t.store.ListSyncRecords(ctx); err != nil {
		t.log.Warn("reading sync records for the history", "err", err)
	}
	return src
}

// keepSettings publishes the leader's settings when what is published is
// not its default engine: at its first pass when the last leader ran with
// another (or none was published), and at any later pass that finds the
// key deleted or rewritten. A switch is announced in an event (and the
// log): every unit that names no engine rolls over. Meant when the
// cluster's default is switched; not when schedulers of one cluster run
// with different defaults, which a failover then switches back and forth
// (the message says to run them all with the same).
func (t *term) keepSettings(ctx context.Context) error {
	published, err := t.store.GetSchedulerSettings(ctx)
	if err != nil {
		return fmt.Errorf("reading the published scheduler settings: %w", err)
	}
	ours := cmp.Or(t.opts.DefaultEngine, deploy.EngineRkt)
	was := cmp.Or(published.DefaultEngine, deploy.EngineRkt)
	if was == ours && !published.Time.IsZero() { // published, and ours
		return nil
	}
	if err := t.store.PutSchedulerSettings(ctx, &store.SchedulerSettings{DefaultEngine: ours, By: t.opts.ID, Time: time.Now().UTC()}, t.fence); err != nil {
		return fmt.Errorf("publishing the scheduler's settings: %w", err)
	}
	if was == ours {
		return nil
	}
	by := ""
	if published.By != "" {
		by = " (scheduler " + published.By + ")"
	}
	msg := fmt.Sprintf("the default engine is %s, as scheduler %s runs; the last leader%s ran with %s: units that name no engine roll over to %s. If this was not meant, run every scheduler of the cluster with the same default engine, or a failover switches them back",
		ours, t.opts.ID, by, was, ours)
	t.log.Warn("scheduler: default engine switched", "from", was, "to", ours, "publishedBy", published.By)
	if err := t.store.AppendEvents(ctx, t.fence, store.Event{Kind: store.EventDefaultEngineChanged, Message: msg}); err != nil {
		return fmt.Errorf("recording the default engine's switch: %w", err)
	}
	return nil
}
