package fleet

import (
	"context"
	"fmt"
	"sort"
	gosync "sync"

	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/store"
)

// opEvent is the event of a fleet call made; why is the unit's status
// message of the pass that made it.
func opEvent(o op, why string) store.Event {
	kind := map[opKind]string{opCreate: store.EventCreated, opLaunch: store.EventLaunched, opStop: store.EventStopped, opDestroy: store.EventDestroyed}[o.kind]
	switch {
	case o.kind == opCreate && o.staged:
		why = "created loaded: it starts once the machine fleet puts it on has room under maxReplicasPerHost. " + why
	case o.kind == opLaunch && o.staged:
		why = "started: its machine has room under maxReplicasPerHost. " + why
	case o.kind == opLaunch:
		why = "drift repaired: it was stopped outside Kaylee. " + why
	}
	return store.Event{Kind: kind, Unit: o.owner, FleetUnit: o.name, Message: why}
}

// historyEvent is the rollout event of a history entry written, if any:
// an entry opened is a rollout started (or, when its spec already runs, one
// that succeeded), one closed is a rollout that succeeded or failed.
func historyEvent(h store.HistoryEntry) (store.Event, bool) {
	kind := map[string]string{store.OutcomeProgressing: store.EventRolloutStarted, store.OutcomeDeployed: store.EventRolloutSucceeded,
		store.OutcomeFailed: store.EventRolloutFailed, store.OutcomeRolledBack: store.EventRolledBack}[h.Outcome]
	if kind == "" {
		return store.Event{}, false
	}
	msg := h.Message
	if h.Change != "" {
		// A change that rolls nothing out is no rollout: one event when
		// it is seen, none when its added replicas run.
		switch {
		case h.Outcome == store.OutcomeDeployed && !h.Time.Equal(h.Deployed):
			return store.Event{}, false
		case h.Outcome == store.OutcomeProgressing || h.Outcome == store.OutcomeDeployed:
			kind, msg = store.EventChanged, h.Change+": no replica replaced"
			if h.RollbackTo != 0 {
				msg += fmt.Sprintf(" (a rollback to revision %d)", h.RollbackTo)
			}
			return store.Event{Kind: kind, Unit: h.Unit, Source: h.Source, Revision: h.GitRevision, SpecHash: h.SpecHash, Message: msg}, true
		}
	}
	if h.RollbackTo != 0 && h.Outcome == store.OutcomeProgressing {
		msg = "a rollback to an earlier revision"
	}
	return store.Event{Kind: kind, Unit: h.Unit, Source: h.Source, Revision: h.GitRevision, SpecHash: h.SpecHash, Message: msg}, true
}

// eventBatch gathers a pass's events; the workers of apply add to it.
type eventBatch struct {
	mu  gosync.Mutex
	evs []store.Event
	// told is the call last told of each fleet unit, until fleet shows it
	// took effect: a call the scheduler repeats meanwhile (a stop, until
	// the unit is inactive) is told once, and the same call after that (a
	// replica stopped by hand a second time) is told again.
	told map[string]opKind
}

func (b *eventBatch) add(e store.Event) {
	b.mu.Lock()
	b.evs = append(b.evs, e)
	b.mu.Unlock()
}

// addCall adds the event of a fleet call, unless it repeats one told that
// has not taken effect yet.
func (b *eventBatch) addCall(o op, why string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.told == nil {
		b.told = map[string]opKind{}
	}
	if k, ok := b.told[o.name]; ok && k == o.kind {
		return
	}
	b.told[o.name] = o.kind
	b.evs = append(b.evs, opEvent(o, why))
}

// settle forgets the calls fleet shows done: a unit created or launched
// that runs, one stopped that is inactive (or failed, or gone), one
// destroyed that is gone.
func (b *eventBatch) settle(units []*schema.Unit, states []*schema.UnitState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.told) == 0 {
		return
	}
	exists := make(map[string]bool, len(units))
	for _, u := range units {
		exists[u.Name] = true
	}
	state := make(map[string]*schema.UnitState, len(states))
	for _, s := range states {
		state[s.Name] = s
	}
	for name, kind := range b.told {
		st := state[name]
		var done bool
		switch kind {
		case opCreate, opLaunch:
			done = st != nil && st.SystemdActiveState == "active" && st.SystemdSubState == "running"
		case opStop:
			done = !exists[name] || st == nil || st.SystemdActiveState == "inactive" || st.SystemdActiveState == "failed"
		case opDestroy:
			done = !exists[name]
		}
		if done {
			delete(b.told, name)
		}
	}
}

// flush writes the pass's events (fenced). The event log is for people: a
// failure to write it is logged and fails nothing.
func (t *term) flushEvents(ctx context.Context) {
	b := &t.events
	b.mu.Lock()
	evs := b.evs
	b.evs = nil
	b.mu.Unlock()
	if len(evs) == 0 {
		return
	}
	// A rollout starts before the fleet calls it makes (its history entry
	// is written after them).
	sort.SliceStable(evs, func(i, j int) bool {
		return evs[i].Kind == store.EventRolloutStarted && evs[j].Kind != store.EventRolloutStarted
	})
	for i := range evs {
		evs[i].By = t.opts.ID
	}
	if err := t.store.AppendEvents(ctx, t.fence, evs...); err != nil {
		t.log.Warn("event log not written", "events", len(evs), "err", err)
	}
}
