package sync

import (
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// A domain routes to one unit (the router's). A revision whose units
// claim a domain twice holds both, as a name defined twice does; a unit
// is not given a domain that a stored unit keeping its value holds:
// another source's, one made with kaylee run, or one of this source's
// that the pass leaves as it was. A domain is a string: a wildcard and a
// name it covers are two claims (the router prefers the name).

// refuseDomainClashes holds the units of the snapshot that claim a
// domain another of its units claims, each error naming the other's file.
func (p *parsed) refuseDomainClashes() {
	var docs []*deploy.Document
	for _, ds := range p.defs {
		docs = append(docs, ds...)
	}
	sort.Slice(docs, func(i, j int) bool {
		if docs[i].File != docs[j].File {
			return docs[i].File < docs[j].File
		}
		return docs[i].Line < docs[j].Line
	})
	clashes := deploy.DomainClashes(docs)
	for _, d := range docs {
		for _, fe := range deploy.FieldErrors(clashes[d]) {
			p.errors = append(p.errors, store.SyncError{File: fe.File, Line: fe.Line, Message: fe.Field + ": " + fe.Msg})
			p.held[d.Spec.Name] = d.File
		}
	}
}

// refuseDomainClaims is the domains phase of a plan: a desired unit that
// claims a domain a stored unit keeping its value holds becomes a file
// error and is held (it keeps its stored value, or is not created). A
// unit held so keeps its stored domains, which another desired unit may
// claim: the phase runs until it holds no more.
func refuseDomainClaims(desired map[string]*deploy.Document, held inventory, sc *conflictScope, res *Result) {
	var errs []store.SyncError
	for more := true; more; {
		more = false
		holders := sc.domainHolders(desired)
		for _, name := range slices.Sorted(maps.Keys(desired)) {
			d := desired[name]
			e := sc.claimErrors(d, holders)
			if len(e) == 0 {
				continue
			}
			errs, more = append(errs, e...), true
			delete(desired, name)
			held[name] = d.File
		}
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].File < errs[j].File })
	res.Errors = append(res.Errors, errs...)
}

// domainHolders maps each domain of a stored unit that keeps its value
// (that is: not desired, and not pruned by this pass) to that unit; of
// several, the first by name.
func (sc *conflictScope) domainHolders(desired map[string]*deploy.Document) map[string]string {
	holders := map[string]string{}
	for name, u := range sc.units {
		if _, ok := desired[name]; ok || u.Err != nil {
			continue
		}
		for _, dom := range u.Spec.Domains {
			if h, ok := holders[dom]; !ok || name < h {
				holders[dom] = name
			}
		}
	}
	return holders
}

// claimErrors: the unit's domains that a stored unit holds.
func (sc *conflictScope) claimErrors(d *deploy.Document, holders map[string]string) []store.SyncError {
	kept := "the unit is not created"
	if _, stored := sc.units[d.Spec.Name]; stored {
		kept = "the unit is left as it was"
	}
	var errs []store.SyncError
	for i, dom := range d.Spec.Domains {
		other, ok := holders[dom]
		if !ok || other == d.Spec.Name {
			continue
		}
		field := fmt.Sprintf("domains[%d]", i)
		errs = append(errs, store.SyncError{File: d.File, Line: d.LineOf(field), Message: fmt.Sprintf(
			"%s: %q is claimed by %s; a domain routes to one unit: remove it from one of the two; %s", field, dom, sc.whose(other), kept)})
	}
	return errs
}

// whose names a stored unit with its source and file, as far as known.
func (sc *conflictScope) whose(name string) string {
	src := sc.owners[name]
	switch {
	case src != "":
		file := ""
		if rec := sc.others[src]; rec != nil {
			file = rec.Inventory[name]
		}
		if file == "" {
			return fmt.Sprintf("unit %q of source %q", name, src)
		}
		return fmt.Sprintf("unit %q of source %q (%s)", name, src, file)
	case sc.owned[name] != "":
		return fmt.Sprintf("unit %q of this source (%s), left as it was in this pass", name, sc.owned[name])
	}
	return fmt.Sprintf("unit %q, stored with kaylee run (no source)", name)
}
