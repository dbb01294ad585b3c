package sync

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// A unit's conflicts keep fleet from putting it on a machine with the
// units they name, whoever made those: fleet's agent unloads the later
// (in name order) of two conflicting units. So a unit of a git source
// may name in conflicts only units of that source, unless the source's
// config allows more (Options.ConflictsWith); and a source does not
// create a unit that a unit of another source already conflicts with,
// unless that source was allowed to. Units made with kaylee run are the
// operator's: their conflicts are not checked, in either direction.

// conflictScope is what the conflicts phase reads: the names this source
// defines, the stored units (but this source's that this pass prunes)
// and who owns them, and the other sources' allowances.
type conflictScope struct {
	source string
	owned  inventory       // this source's units before the pass
	allow  []string        // this source's conflictsWith
	mine   map[string]bool // units this source defines (next inventory, held ones too)
	units  map[string]*store.Unit
	owners map[string]string // unit → the other source that owns it
	others map[string]*store.SyncRecord
}

func newConflictScope(p *parsed, owned, held inventory, owners map[string]string, cur *state, o Options) *conflictScope {
	sc := &conflictScope{source: o.Source, owned: owned, allow: o.ConflictsWith, mine: map[string]bool{}, units: map[string]*store.Unit{},
		owners: owners, others: cur.records}
	for name := range p.defs {
		sc.mine[name] = owners[name] == ""
	}
	for name := range p.held {
		sc.mine[name] = owners[name] == ""
	}
	for name := range held {
		if _, ok := owned[name]; ok {
			sc.mine[name] = true
		}
	}
	for name, u := range cur.units {
		if _, ours := owned[name]; ours && !sc.mine[name] {
			continue // pruned by this pass
		}
		sc.units[name] = u
	}
	return sc
}

// refuseConflicts is the conflicts phase of a plan: each desired unit
// whose conflicts name a unit this source does not define, or that a
// unit of another source conflicts with, becomes a file error and is held
// (it keeps its stored value, or is not created).
func refuseConflicts(desired map[string]*deploy.Document, held inventory, sc *conflictScope, res *Result) {
	for _, name := range slices.Sorted(maps.Keys(desired)) {
		d := desired[name]
		_, stored := sc.units[name]
		errs := sc.foreign(d, stored)
		if !stored {
			errs = append(errs, sc.conflictedBy(d)...)
		}
		if len(errs) == 0 {
			continue
		}
		res.Errors = append(res.Errors, errs...)
		delete(desired, name)
		held[name] = d.File
	}
}

// foreign checks a unit's own conflicts: each entry names only units of
// this source, or ones its conflictsWith allows.
func (sc *conflictScope) foreign(d *deploy.Document, stored bool) []store.SyncError {
	var errs []store.SyncError
	kept := "the unit is not created"
	if stored {
		kept = "the unit is left as it was"
	}
	for i, entry := range d.Spec.Conflicts {
		field := fmt.Sprintf("conflicts[%d]", i)
		if sc.allowed(entry) {
			continue
		}
		msg := ""
		if other := sc.firstForeign(entry); other != "" {
			whose := fmt.Sprintf("a unit of source %q", sc.owners[other])
			if sc.owners[other] == "" {
				whose = "a unit stored with kaylee run (no source)"
			}
			if other == entry {
				msg = fmt.Sprintf("%q is %s, not of source %q", entry, whose, sc.source)
			} else {
				msg = fmt.Sprintf("%q matches %q, %s, not of source %q", entry, other, whose, sc.source)
			}
		} else if !sc.matchesAny(entry) {
			if strings.HasSuffix(entry, "*") {
				msg = fmt.Sprintf("%q matches no unit of source %q", entry, sc.source)
			} else {
				msg = fmt.Sprintf("no unit of source %q is named %q", sc.source, entry)
			}
		}
		if msg == "" {
			continue
		}
		errs = append(errs, store.SyncError{File: d.File, Line: d.LineOf(field), Message: field + ": " + msg +
			": a unit may only conflict with units of its own source, unless the source's conflictsWith (config file) allows it; " + kept})
	}
	return errs
}

// allowed: conflictsWith covers every unit the entry can match.
func (sc *conflictScope) allowed(entry string) bool {
	for _, a := range sc.allow {
		if deploy.ConflictCovers(a, entry) {
			return true
		}
	}
	return false
}

// firstForeign is the first stored unit (by name) the entry matches that
// this source does not define and conflictsWith does not allow.
func (sc *conflictScope) firstForeign(entry string) string {
	var found []string
	for name := range sc.units {
		if sc.mine[name] || !deploy.ConflictMatches(entry, name) || sc.allowed(name) {
			continue
		}
		found = append(found, name)
	}
	if len(found) == 0 {
		return ""
	}
	sort.Strings(found)
	return found[0]
}

// matchesAny: the entry names a unit of this source, or a stored one
// (which, once firstForeign found none, conflictsWith allows).
func (sc *conflictScope) matchesAny(entry string) bool {
	for _, names := range []map[string]bool{sc.mine, storedNames(sc.units)} {
		for name := range names {
			if deploy.ConflictMatches(entry, name) {
				return true
			}
		}
	}
	return false
}

func storedNames(units map[string]*store.Unit) map[string]bool {
	out := make(map[string]bool, len(units))
	for name := range units {
		out[name] = true
	}
	return out
}

// conflictedBy checks a unit about to be created against the stored
// units of other sources: one whose conflicts match it keeps it off its
// machines (or is unloaded for it), so it is not created unless that
// source is allowed to conflict with it.
func (sc *conflictScope) conflictedBy(d *deploy.Document) []store.SyncError {
	name := d.Spec.Name
	others := make([]string, 0, len(sc.units))
	for other := range sc.units {
		others = append(others, other)
	}
	sort.Strings(others)
	for _, other := range others {
		u, src := sc.units[other], sc.owners[other]
		if src == "" || u.Err != nil || sc.mine[other] {
			continue // kaylee run's conflicts are the operator's
		}
		for _, entry := range u.Spec.Conflicts {
			if !deploy.ConflictMatches(entry, name) || sc.allowedFor(src, name) {
				continue
			}
			return []store.SyncError{{File: d.File, Line: d.LineOf("name"), Message: fmt.Sprintf(
				"unit %q is not created: unit %q of source %q conflicts with it (conflicts: %s), so fleet would keep the two apart; rename it, or have %s's %s name its units (or allow %s with conflictsWith on source %s)",
				name, other, src, entry, src, other, name, src)}}
		}
	}
	return nil
}

// allowedFor: the other source's recorded conflictsWith allows name.
func (sc *conflictScope) allowedFor(source, name string) bool {
	rec := sc.others[source]
	if rec == nil {
		return false
	}
	for _, a := range rec.ConflictsWith {
		if deploy.ConflictMatches(a, name) {
			return true
		}
	}
	return false
}
