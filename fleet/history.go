package fleet

import (
	"bytes"
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
// it), a rollout that completed or failed closes one. src gives the
// rollback pins and sync records an entry opened or closed is written
// with.
func historyChanges(now time.Time, limit int, hist map[string][]*store.HistoryEntry, in *unitInput, st *store.Status, src historySources) []historyChange {
	if !keepsHistory(in, st) {
		return nil
	}
	entries := hist[in.name]
	var last *store.HistoryEntry
	if len(entries) > 0 {
		last = entries[len(entries)-1]
	}
	deployed := st.Phase == store.PhaseRunning && st.Deployed == st.SpecHash
	if last != nil && last.SpecHash == st.SpecHash && (bytes.Equal(last.Spec, in.raw) || in.raw == nil) {
		return closeEntry(now, last, st, deployed, src.records)
	}
	return openEntry(now, limit, entries, in, st, deployed, src)
}

// keepsHistory: the status is of a valid spec the scheduler acts on (not
// suspended): its rollouts are recorded.
func keepsHistory(in *unitInput, st *store.Status) bool {
	return st != nil && in != nil && in.spec != nil && in.specErr == nil && in.suspended == nil && st.SpecHash != ""
}

// closeEntry closes the latest entry, of the status's spec, once its
// rollout completed (deployed) or failed.
func closeEntry(now time.Time, last *store.HistoryEntry, st *store.Status, deployed bool, records map[string]*store.SyncRecord) []historyChange {
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
	setSource(&e, records)
	return []historyChange{{entry: &e}}
}

// openEntry opens an entry for the status's spec, closes the one before it
// (rolled back or superseded) and drops the revisions beyond limit.
func openEntry(now time.Time, limit int, entries []*store.HistoryEntry, in *unitInput, st *store.Status, deployed bool, src historySources) []historyChange {
	e := &store.HistoryEntry{Unit: in.name, Revision: 1, SpecHash: st.SpecHash, Restart: in.restart,
		Spec: append([]byte(nil), in.raw...), Engine: in.engine, Time: now, Outcome: store.OutcomeProgressing}
	if deployed {
		e.Outcome, e.Deployed = store.OutcomeDeployed, now
	}
	setSource(e, src.records)
	var out []historyChange
	if len(entries) > 0 {
		last := entries[len(entries)-1]
		e.Revision = last.Revision + 1
		if last.SpecHash == st.SpecHash && (last.Outcome != store.OutcomeProgressing || last.Change != "") {
			// Another spec of the same hash (replicas, update or ports
			// changed): a revision of its own, that replaces no replica.
			// During a rollout it is that rollout's new revision: its
			// replicas are still being replaced, and its success is told.
			e.Change = inPlaceChange(last.Spec, in.raw)
		}
		var prev *store.HistoryEntry
		if e.RollbackTo, prev = closePrevious(entries, src.pins[in.name], in.raw); prev != nil {
			out = append(out, historyChange{entry: prev})
		}
	}
	change := historyChange{entry: e}
	for i := 0; i < len(entries)+1-limit; i++ {
		change.drop = append(change.drop, entries[i].Revision)
	}
	return append(out, change)
}

// closePrevious closes the latest entry when another opens: rolled back
// when the stored spec is the one pin restored (rollbackTo is then the
// pin's revision), superseded if it was in progress. prev is nil when its
// outcome stays.
func closePrevious(entries []*store.HistoryEntry, pin *store.RollbackPin, raw []byte) (rollbackTo int64, prev *store.HistoryEntry) {
	last := entries[len(entries)-1]
	e := *last
	if pin != nil && restores(entries, pin, raw) {
		rollbackTo = pin.Revision
		e.Outcome = store.OutcomeRolledBack
	} else if e.Outcome == store.OutcomeProgressing {
		e.Outcome = store.OutcomeSuperseded
	}
	if e.Outcome == last.Outcome {
		return rollbackTo, nil
	}
	return rollbackTo, &e
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

// restores: the stored spec is the one the rollback pin restored. A pin
// that records what it stored says it itself: its revision may have left
// the history since (trimmed to HistoryLimit, the rollback's own entry
// included), and the engine it pins must hold as long as it does. An
// older pin is compared with its revision's entry.
func restores(entries []*store.HistoryEntry, pin *store.RollbackPin, raw []byte) bool {
	if pin.Restored != "" {
		return store.ContentHash(raw) == pin.Restored
	}
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
