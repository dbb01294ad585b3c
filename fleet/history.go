package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// History: the scheduler's leader records each spec hash it rolls out as
// a store.HistoryEntry, and its outcome, from what the planner decided;
// entries beyond HistoryLimit go, oldest first, and a unit's history goes
// with its status.

// historyChange is one entry to write, with the revisions to drop.
type historyChange struct {
	entry *store.HistoryEntry
	drop  []int64
}

// historyChanges compares each unit's status with its latest entry: a new
// spec hash opens an entry (and supersedes or rolls back the one before
// it), a rollout that completed or failed closes one. lookup gives the
// rollback pins and sync records, read only when an entry is opened or
// closed.
func historyChanges(now time.Time, limit int, hist map[string][]*store.HistoryEntry, in *unitInput, st *store.Status,
	lookup func() (map[string]*store.RollbackPin, map[string]*store.SyncRecord)) []historyChange {
	if st == nil || in == nil || in.spec == nil || in.specErr != nil || in.suspended != nil || st.SpecHash == "" {
		return nil
	}
	entries := hist[in.name]
	var last *store.HistoryEntry
	if len(entries) > 0 {
		last = entries[len(entries)-1]
	}
	deployed := st.Phase == store.PhaseRunning && st.Deployed == st.SpecHash
	if last != nil && last.SpecHash == st.SpecHash && (bytes.Equal(last.Spec, in.raw) || in.raw == nil) {
		if last.Outcome != store.OutcomeProgressing {
			return nil
		}
		e := *last
		switch {
		case deployed:
			e.Outcome, e.Deployed, e.Message = store.OutcomeDeployed, now, ""
		case st.Phase == store.PhaseFailed:
			e.Outcome, e.Message = store.OutcomeFailed, st.Message
		default:
			return nil
		}
		_, records := lookup()
		setSource(&e, records)
		return []historyChange{{entry: &e}}
	}

	pins, records := lookup()
	e := &store.HistoryEntry{Unit: in.name, Revision: 1, SpecHash: st.SpecHash, Restart: in.restart,
		Spec: append([]byte(nil), in.raw...), Time: now, Outcome: store.OutcomeProgressing}
	if deployed {
		e.Outcome, e.Deployed = store.OutcomeDeployed, now
	}
	setSource(e, records)
	var out []historyChange
	if last != nil && last.SpecHash == st.SpecHash && (last.Outcome != store.OutcomeProgressing || last.Change != "") {
		// Another spec of the same hash (replicas, update or ports
		// changed): a revision of its own, that replaces no replica.
		// During a rollout it is that rollout's new revision: its
		// replicas are still being replaced, and its success is told.
		e.Change = inPlaceChange(last.Spec, in.raw)
	}
	if last != nil {
		e.Revision = last.Revision + 1
		prev := *last
		if pin := pins[in.name]; pin != nil && restores(entries, pin, in.raw) {
			e.RollbackTo = pin.Revision
			prev.Outcome = store.OutcomeRolledBack
		} else if prev.Outcome == store.OutcomeProgressing {
			prev.Outcome = store.OutcomeSuperseded
		}
		if prev.Outcome != last.Outcome {
			out = append(out, historyChange{entry: &prev})
		}
	}
	change := historyChange{entry: e}
	for i := 0; i < len(entries)+1-limit; i++ {
		change.drop = append(change.drop, entries[i].Revision)
	}
	return append(out, change)
}

// inPlaceChange names the top-level fields that differ between two specs
// of one hash, with the counts of replicas: "replicas 2 → 3, update".
func inPlaceChange(before, after []byte) string {
	changes, _ := deploy.ChangedFields(before, after)
	var out []string
	for _, c := range changes {
		if c.Field != "replicas" {
			out = append(out, c.Field)
			continue
		}
		count := func(v json.RawMessage) string {
			if v == nil {
				return "0"
			}
			return string(v)
		}
		// replicas first, then by name
		out = append([]string{fmt.Sprintf("replicas %s → %s", count(c.Before), count(c.After))}, out...)
	}
	if len(out) == 0 {
		return "the stored spec"
	}
	return strings.Join(out, ", ")
}

// restores: the stored spec is the one the rollback pin restored.
func restores(entries []*store.HistoryEntry, pin *store.RollbackPin, raw []byte) bool {
	for _, e := range entries {
		if e.Revision == pin.Revision {
			return bytes.Equal(e.Spec, raw)
		}
	}
	return false
}

// setSource names the git source whose inventory holds the unit, with the
// revision it last synced.
func setSource(e *store.HistoryEntry, records map[string]*store.SyncRecord) {
	for _, r := range records {
		if file, ok := r.Inventory[e.Unit]; ok {
			e.Source, e.GitRevision, e.File = r.Source, r.Revision, file
			return
		}
	}
}

// recordHistory writes the history changes of a pass (fenced), and drops
// the history of units whose status went.
func (t *term) recordHistory(ctx context.Context, now time.Time, inputs map[string]*unitInput, statuses []namedStatus) error {
	var pins map[string]*store.RollbackPin
	var records map[string]*store.SyncRecord
	read := false
	lookup := func() (map[string]*store.RollbackPin, map[string]*store.SyncRecord) {
		if !read {
			read = true
			var err error
			if pins, err = t.store.RollbackPins(ctx); err != nil {
				t.log.Warn("reading rollback pins for the history", "err", err)
			}
			if records, err = t.store.ListSyncRecords(ctx); err != nil {
				t.log.Warn("reading sync records for the history", "err", err)
			}
		}
		return pins, records
	}
	for _, ns := range statuses {
		if ns.status == nil {
			if _, ok := t.history[ns.name]; ok {
				if err := t.store.DeleteHistory(ctx, ns.name, t.fence); err != nil {
					return err
				}
				delete(t.history, ns.name)
			}
			continue
		}
		for _, c := range historyChanges(now, t.opts.HistoryLimit, t.history, inputs[ns.name], ns.status, lookup) {
			if err := t.store.PutHistory(ctx, c.entry, c.drop, t.fence); err != nil {
				return err
			}
			if ev, ok := historyEvent(*c.entry); ok {
				t.events.add(ev)
			}
			t.history[ns.name] = applyHistory(t.history[ns.name], c)
		}
	}
	return nil
}

// applyHistory is entries after a change was written.
func applyHistory(entries []*store.HistoryEntry, c historyChange) []*store.HistoryEntry {
	out := entries[:0:0]
	for _, e := range entries {
		dropped := false
		for _, d := range c.drop {
			dropped = dropped || e.Revision == d
		}
		if !dropped && e.Revision != c.entry.Revision {
			out = append(out, e)
		}
	}
	return append(out, c.entry)
}
