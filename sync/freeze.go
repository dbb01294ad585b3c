package sync

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// Change freezes: while a freeze holds a source (a window of its config's
// freeze:, or kaylee freeze SOURCE), a pass fetches and validates the new
// revision and records it in the source's record (Frozen), but writes no
// unit; while one holds a unit (a window of the unit as stored, so that a
// commit cannot lift its own freeze, or kaylee freeze NAME), only that
// unit's change is held. The scheduler is not involved: drift repair and
// machine-loss recovery go on. When the freeze ends, the next pass
// applies what git then has. Options.OverrideFreeze (kaylee sync --force)
// or an override in the store (kaylee sync --now --force) applies anyway,
// told by a freeze-overridden event naming who.

// freezeStore is a store that keeps manual freezes (store.Store does).
type freezeStore interface {
	ListFreezes(ctx context.Context) ([]*store.ManualFreeze, error)
	FreezeOverrides(ctx context.Context) (map[string]*store.FreezeOverride, error)
	TakeFreezeOverride(ctx context.Context, ov *store.FreezeOverride, f store.Fence) error
}

// readFreezes adds the manual freezes and, unless the pass is a one-off,
// the source's override to cur.
func readFreezes(ctx context.Context, st Store, cur *state, source string, oneOff bool, now time.Time) error {
	fs, ok := st.(freezeStore)
	if !ok {
		return nil
	}
	var err error
	if cur.freezes, err = fs.ListFreezes(ctx); err != nil {
		return err
	}
	if oneOff {
		return nil
	}
	ovs, err := fs.FreezeOverrides(ctx)
	if err != nil {
		return err
	}
	if ov := ovs[source]; ov != nil && now.Sub(ov.Time) < store.FreezeOverrideTTL {
		cur.override = ov
	}
	return nil
}

// holdOf is what freezes a source or a unit at now: nil when none.
func holdOf(windows []deploy.FreezeWindow, manual []*store.ManualFreeze, kind, name string, now time.Time) *store.FrozenRevision {
	for _, m := range manual {
		if m.Kind == kind && m.Name == name && m.Holds(now) {
			reason := "kaylee freeze"
			if m.By != "" {
				reason += " by " + m.By
			}
			if m.Reason != "" {
				reason += ": " + m.Reason
			}
			return &store.FrozenRevision{Since: now, Until: m.Until, Reason: reason}
		}
	}
	if w, until, ok := deploy.ActiveFreeze(windows, now); ok {
		return &store.FrozenRevision{Since: now, Until: until, Reason: "window " + w.String()}
	}
	return nil
}

// until tells when a freeze ends, for people.
func until(f *store.FrozenRevision) string {
	if f.Until.IsZero() {
		return "until kaylee unfreeze"
	}
	return "until " + f.Until.UTC().Format(time.RFC3339)
}

// holdFrozen is the plan's freeze phase: with the source frozen, every
// change becomes Frozen and nothing is written; else each change of a
// frozen unit does. The inventory (next) keeps what is held. With an
// override, nothing is held and the freezes it lifted are listed in
// Result.Overridden.
func (cs *Changeset) holdFrozen(owned, next inventory, cur *state, o Options, now time.Time) {
	prev := cur.records[o.Source]
	override := o.OverrideFreeze
	if override == "" && cur.override != nil {
		override = cur.override.By
	}
	if !slices.ContainsFunc(cs.Result.Changes, writes) {
		return
	}
	if f := holdOf(o.Freeze, cur.freezes, store.FreezeSource, o.Source, now); f != nil {
		if override != "" {
			cs.Result.Overridden, cs.Result.OverriddenBy = append(cs.Result.Overridden, "source "+o.Source+": "+f.Reason), override
			return
		}
		cs.holdSource(f, prev, owned, next, o.Source)
		return
	}
	held := cs.holdUnits(prev, owned, next, cur, override, now)
	if len(held) == 0 {
		return
	}
	cs.Puts = slices.DeleteFunc(slices.Clone(cs.Puts), func(s *deploy.Spec) bool { return held[s.Name] })
	cs.Prune = slices.DeleteFunc(slices.Clone(cs.Prune), func(n string) bool { return held[n] })
}

// writes tells a change that writes (or prunes) from one that does not.
func writes(c Change) bool {
	return c.Action == Create || c.Action == Update || c.Action == Prune
}

// holdSource holds the whole revision under the source's freeze f: every
// change becomes Frozen, the inventory stays the one owned, and nothing
// is written.
func (cs *Changeset) holdSource(f *store.FrozenRevision, prev *store.SyncRecord, owned, next inventory, source string) {
	res := cs.Result
	f.Revision = res.Revision
	res.FrozenNew = prev == nil || prev.Frozen == nil || prev.Frozen.Revision != f.Revision || prev.Frozen.Reason != f.Reason
	if prev != nil && prev.Frozen != nil && prev.Frozen.Reason == f.Reason {
		f.Since = prev.Frozen.Since
	}
	res.Frozen = f
	for i, c := range res.Changes {
		if writes(c) {
			res.Changes[i].Note = fmt.Sprintf("%s held by the freeze of source %s (%s, %s)", c.Action, source, f.Reason, until(f))
			res.Changes[i].Action = Frozen
		}
	}
	clear(next)
	maps.Copy(next, owned)
	cs.Puts, cs.Prune = nil, nil
}

// holdUnits holds each change of a unit under a freeze of its own (the
// windows of the unit as stored, or kaylee freeze NAME), unless override
// names who lifts them. It returns the units held.
func (cs *Changeset) holdUnits(prev *store.SyncRecord, owned, next inventory, cur *state, override string, now time.Time) map[string]bool {
	res := cs.Result
	held := map[string]bool{}
	for i, c := range res.Changes {
		if !writes(c) {
			continue
		}
		var windows []deploy.FreezeWindow
		if u := cur.units[c.Name]; u != nil && u.Err == nil {
			windows = u.Spec.Freeze
		}
		f := holdOf(windows, cur.freezes, store.FreezeUnit, c.Name, now)
		if f == nil {
			continue
		}
		if override != "" {
			res.Overridden, res.OverriddenBy = append(res.Overridden, "unit "+c.Name+": "+f.Reason), override
			continue
		}
		cs.hold(i, f, prev, owned, next)
		held[c.Name] = true
	}
	// A unit whose dependsOn names a held unit is held too, or it would
	// roll out against the dependency's old version.
	for more := len(held) > 0; more; {
		more = false
		for i, c := range res.Changes {
			if c.Action != Create && c.Action != Update {
				continue
			}
			if dep := cs.heldDependency(c.Name, held); dep != "" {
				d := res.FrozenUnits[dep]
				cs.hold(i, &store.FrozenRevision{Since: now, Until: d.Until, Reason: "its dependency " + dep + " is held by a freeze: " + d.Reason}, prev, owned, next)
				held[c.Name], more = true, true
			}
		}
	}
	return held
}

// hold makes change i of the pass Frozen under f: recorded in the result's
// FrozenUnits, not written; the inventory (next) keeps the unit as owned.
func (cs *Changeset) hold(i int, f *store.FrozenRevision, prev *store.SyncRecord, owned, next inventory) {
	res := cs.Result
	c := res.Changes[i]
	f.Revision = res.Revision
	f.Content = cs.heldContent(c)
	var before *store.FrozenRevision
	if prev != nil {
		before = prev.FrozenUnits[c.Name]
	}
	if before != nil && before.Reason == f.Reason {
		f.Since = before.Since
	}
	res.Changes[i].New = before == nil || before.Content != f.Content || before.Reason != f.Reason
	res.Changes[i].Note = fmt.Sprintf("%s held by the freeze of unit %s (%s, %s)", c.Action, c.Name, f.Reason, until(f))
	res.Changes[i].Action = Frozen
	if res.FrozenUnits == nil {
		res.FrozenUnits = map[string]*store.FrozenRevision{}
	}
	res.FrozenUnits[c.Name] = f
	switch c.Action {
	case Create:
		delete(next, c.Name)
	case Prune:
		next[c.Name] = owned[c.Name]
	}
}

// heldDependency is a unit of held that the spec this pass writes for
// name depends on, "" for none.
func (cs *Changeset) heldDependency(name string, held map[string]bool) string {
	for _, s := range cs.Puts {
		if s.Name != name {
			continue
		}
		for _, dep := range s.DependsOn {
			if held[dep] {
				return dep
			}
		}
	}
	return ""
}

// heldContent identifies the change of c: the hash of the spec it would
// write, or "prune".
func (cs *Changeset) heldContent(c Change) string {
	for _, s := range cs.Puts {
		if s.Name == c.Name {
			return store.ContentHash(s.CanonicalJSON())
		}
	}
	return "prune"
}

// freezeEvents are the events of the freezes of a pass: a freeze that
// holds something new (the source's revision, or a unit's change), and
// an override, naming who.
func freezeEvents(res *Result, src string) []store.Event {
	var out []store.Event
	if res == nil || res.DryRun {
		return nil
	}
	if f := res.Frozen; f != nil && res.FrozenNew {
		out = append(out, store.Event{Kind: store.EventFrozen, Source: src, Revision: res.Revision,
			Message: fmt.Sprintf("revision %s recorded, not applied: %s, %s (%s); kaylee sync --now --force %s applies it now",
				res.Short, f.Reason, until(f), strings.TrimPrefix(planned(res), "; "), src)})
	}
	for _, c := range res.Changes {
		if c.Action == Frozen && c.New && res.Frozen == nil {
			out = append(out, store.Event{Kind: store.EventFrozen, Unit: c.Name, Source: src, Revision: res.Revision, Message: c.Note})
		}
	}
	if len(res.Overridden) > 0 {
		out = append(out, store.Event{Kind: store.EventFreezeOverridden, Source: src, Revision: res.Revision, By: res.OverriddenBy,
			Message: fmt.Sprintf("%s forced %s through %s", res.OverriddenBy, res.Summary(), strings.Join(res.Overridden, "; "))})
	}
	return out
}

// planned lists what a frozen pass held: "; 1 to create, 2 to update".
func planned(res *Result) string {
	counts := map[string]int{}
	for _, c := range res.Changes {
		if c.Action == Frozen {
			verb, _, _ := strings.Cut(c.Note, " ")
			counts[verb]++
		}
	}
	var parts []string
	for _, verb := range []string{"create", "update", "prune"} {
		if n := counts[verb]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d to %s", n, verb))
		}
	}
	return "; " + strings.Join(parts, ", ")
}

// thawOf is when the first freeze that held changes of a pass ends; zero
// when none held any, or none has an end.
func thawOf(res *Result) time.Time {
	var t time.Time
	if res == nil {
		return t
	}
	earlier := func(f *store.FrozenRevision) {
		if !f.Until.IsZero() && (t.IsZero() || f.Until.Before(t)) {
			t = f.Until
		}
	}
	if res.Frozen != nil {
		earlier(res.Frozen)
	}
	for _, f := range res.FrozenUnits {
		earlier(f)
	}
	return t
}

// heldRecord is the record of a pass a freeze of its source held: the
// record before (the revision applied, when, its counts and file errors)
// with what the freeze holds and the source's settings of this pass.
// Before any revision was applied: no revision, no time.
func heldRecord(rec, prev *store.SyncRecord) *store.SyncRecord {
	if prev == nil {
		held := *rec
		held.Revision, held.Ref, held.Time = "", "", time.Time{}
		held.Created, held.Updated, held.Pruned, held.Unchanged = 0, 0, 0, 0
		held.Errors, held.Inventory, held.RolledBack = []store.SyncError{}, map[string]string{}, nil
		return &held
	}
	held := *prev
	held.URL, held.Path, held.ConflictsWith, held.Freeze = rec.URL, rec.Path, rec.ConflictsWith, rec.Freeze
	held.Frozen, held.FrozenUnits = rec.Frozen, nil
	if held.Errors == nil {
		held.Errors = []store.SyncError{}
	}
	return &held
}
