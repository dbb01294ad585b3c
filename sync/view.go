package sync

import (
	"context"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
)

// viewStore is a store whose state a loop keeps as a view, brought up to
// date at each pass reading only what changed since the pass before
// (store.Store is one: RefreshSyncView).
type viewStore interface {
	RefreshSyncView(ctx context.Context, v *store.SyncView) error
}

// stateOf is the state a pass of source plans with, from view v: the
// units, records and pins as v holds them (shared: the plan does not
// modify them), the manual freezes and, unless the pass is a one-off,
// the source's override when it is fresh at now.
func stateOf(v *store.SyncView, source string, oneOff bool, now time.Time) *state {
	cur := &state{units: v.Units, records: v.Records, pins: v.Pins, freezes: v.Freezes, rev: v.Rev}
	if cur.units == nil {
		cur.units = map[string]*store.Unit{}
	}
	if cur.records == nil {
		cur.records = map[string]*store.SyncRecord{}
	}
	if cur.pins == nil {
		cur.pins = map[string]*store.RollbackPin{}
	}
	if ov := v.Overrides[source]; ov != nil && !oneOff && now.Sub(ov.Time) < store.FreezeOverrideTTL {
		cur.override = ov
	}
	return cur
}

// readState is what the loop's pass plans with, and the scheduler's
// default engine: from the loop's view of the store when the store keeps
// one (one request, for what changed), else read whole.
func (l *Loop) readState(ctx context.Context, o Options) (*state, string, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	if vs, ok := l.Store.(viewStore); ok {
		if err := vs.RefreshSyncView(ctx, &l.view); err != nil {
			return nil, "", err
		}
		return stateOf(&l.view, o.Source, o.OneOff, now()), l.view.Settings.DefaultEngine, nil
	}
	engine, err := defaultEngine(ctx, l.Store)
	if err != nil {
		return nil, "", err
	}
	cur, err := readState(ctx, l.Store)
	if err != nil {
		return nil, "", err
	}
	if err := readFreezes(ctx, l.Store, cur, o.Source, o.OneOff, now()); err != nil {
		return nil, "", err
	}
	return cur, engine, nil
}
