package fleet

import (
	"fmt"
	"sort"
	"strings"

	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// The fleet units of monder/kaylee, the program Kaylee descends from, are
// named <prefix>:<name>:<hash6>:<group6>:<i>.service (see
// deploy.ParseOriginalUnitName). When Kaylee's scheduler takes over a
// cluster where the original ran, the original's units of a stored unit
// are that unit's previous version: an ordinary rollout replaces them
// (adoption). The original's units of a name that is not stored are left
// alone: only the operator removes them.

// OriginalUnits sorts the fleet unit names that monder/kaylee rendered with
// prefix by the unit they belong to: adopt holds those of the stored units
// (stored[name]), which the scheduler replaces; leftAlone those of every
// other name, which it never touches. Names of the original's units only
// are kept (Kaylee's own and any other are ignored); each list is sorted.
// It makes no call.
func OriginalUnits(prefix string, fleetUnitNames []string, stored map[string]bool) (adopt, leftAlone map[string][]string) {
	adopt, leftAlone = map[string][]string{}, map[string][]string{}
	for _, n := range fleetUnitNames {
		id, ok := deploy.ParseOriginalUnitName(prefix, n)
		if !ok {
			continue
		}
		if stored[id.Name] {
			adopt[id.Name] = append(adopt[id.Name], n)
		} else {
			leftAlone[id.Name] = append(leftAlone[id.Name], n)
		}
	}
	for _, m := range []map[string][]string{adopt, leftAlone} {
		for _, ns := range m {
			sort.Strings(ns)
		}
	}
	return adopt, leftAlone
}

// HeldNames maps each JSON name (store.JSONName) of values stored under
// another key to that key (the first by name): monder/kaylee named its
// fleet units after the JSON's name, whatever the key, so its units of such
// a name are that value's, which the scheduler refuses (the key is the
// unit's name). They are neither adopted nor ever removable.
func HeldNames(values map[string][]byte) map[string]string {
	held := map[string]string{}
	for _, key := range sortedKeys(values) {
		name := store.JSONName(values[key])
		if _, seen := held[name]; name != "" && name != key && !seen {
			held[name] = key
		}
	}
	return held
}

// leftAlone sorts out, once per pass, the original's fleet units of names
// not stored (see OriginalUnits) and, only when there are any, which of
// those names are held by a value stored under another key (HeldNames,
// which reads every stored value).
func leftAlone(prefix string, snap *snapshot) (left map[string][]string, held map[string]string) {
	stored := make(map[string]bool, len(snap.units))
	for _, u := range snap.units {
		stored[u.Name] = true
	}
	names := make([]string, len(snap.fleetUnits))
	for i, u := range snap.fleetUnits {
		names[i] = u.Name
	}
	_, left = OriginalUnits(prefix, names, stored)
	if len(left) == 0 {
		return left, nil
	}
	values := make(map[string][]byte, len(snap.units))
	for _, u := range snap.units {
		values[u.Name] = u.Raw
	}
	return left, HeldNames(values)
}

// adoption tells what a pass finds of the original's fleet units: an
// event when those of a stored unit are first seen (adopted: the rollout
// replaces them) and when the last of them is gone, and, once per name,
// an event and a warning for those of a name that is not stored.
func (pp *passPlanner) adoption(left map[string][]string, held map[string]string, actual map[string][]*actualUnit, res *planResult) {
	for _, name := range sortedKeys(actual) {
		n := unitSet(actual[name]).count(func(a *actualUnit) bool { return a.original && a.unit != nil })
		switch {
		case n > 0 && !pp.adopting[name] && rolledOut(res.inputs[name]):
			pp.adopting[name] = true
			res.events = append(res.events, store.Event{Kind: store.EventAdopted, Unit: name,
				Message: fmt.Sprintf("%s that monder/kaylee created for this unit taken over as its previous version: a rollout replaces %s",
					plural(n, "fleet unit"), map[bool]string{true: "it", false: "them"}[n == 1])})
		case n == 0 && pp.adopting[name]:
			delete(pp.adopting, name)
			res.events = append(res.events, store.Event{Kind: store.EventAdoptionDone, Unit: name,
				Message: "the last fleet unit monder/kaylee created for this unit is gone: Kaylee's own replaced them all"})
		}
	}
	for name := range pp.adopting {
		if len(actual[name]) == 0 {
			delete(pp.adopting, name)
		}
	}
	for _, name := range sortedKeys(left) {
		units := left[name]
		if pp.leftAlone[name] {
			continue
		}
		pp.leftAlone[name] = true
		if key, ok := held[name]; ok {
			res.events = append(res.events, store.Event{Kind: store.EventOriginalHeld, Unit: name, Message: fmt.Sprintf(
				"%s of monder/kaylee for unit %s, held by the refused unit %s (its JSON's name is %s): left alone, never removed; write that JSON under the key %s and they are adopted",
				plural(len(units), "fleet unit"), name, key, name, name)})
			res.warnings = append(res.warnings, planWarning{"fleet units of monder/kaylee held by a refused unit stored under another key: left alone",
				[]any{"unit", name, "heldBy", key, "fleetUnits", strings.Join(units, " ")}})
			continue
		}
		msg := fmt.Sprintf("%s of monder/kaylee for unit %s, which is not stored: left alone (the scheduler never removes them; remove them once they are no longer needed)",
			plural(len(units), "fleet unit"), name)
		res.events = append(res.events, store.Event{Kind: store.EventOriginalLeftAlone, Unit: name, Message: msg})
		res.warnings = append(res.warnings, planWarning{"fleet units of monder/kaylee for a unit that is not stored: left alone",
			[]any{"unit", name, "fleetUnits", strings.Join(units, " ")}})
	}
	for name := range pp.leftAlone {
		if left[name] == nil {
			delete(pp.leftAlone, name)
		}
	}
}

// rolledOut: the unit's fleet units are the rollout's to replace (a
// valid stored spec, not suspended): only then are the original's adopted.
func rolledOut(in *unitInput) bool {
	return in != nil && in.spec != nil && in.specErr == nil && in.suspended == nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// originalStatuses gives each name whose fleet units are the original's
// and that is not stored a status of its own (store.PhaseLeftAlone): what
// the operator sees in kaylee status, the fleet units with their machines
// and systemd states. A name still being deleted (Kaylee's own fleet
// units of it go) keeps its deleting status, which tells of the original's
// too. The status of a name whose original units are gone is left as
// planned (deleted: nothing of it is stored). left and held are
// leftAlone's.
func (p *planner) originalStatuses(snap *snapshot, left map[string][]string, held map[string]string, statuses []namedStatus) []namedStatus {
	if len(left) == 0 {
		return statuses
	}
	units := make(map[string]*schema.Unit, len(snap.fleetUnits))
	for _, u := range snap.fleetUnits {
		units[u.Name] = u
	}
	byName := make(map[string]int, len(statuses))
	for i, ns := range statuses {
		byName[ns.name] = i
	}
	states := statesByName(snap.states)
	for _, name := range sortedKeys(left) {
		note := leftAloneMessage(name, len(left[name]), held)
		if i, ok := byName[name]; ok && statuses[i].status != nil {
			statuses[i].status.Message += "; " + note
			continue
		}
		st := &store.Status{Name: name, Phase: store.PhaseLeftAlone, Message: note, HeldBy: held[name],
			Units: p.originalUnitStatuses(left[name], units, states)}
		for _, us := range st.Units {
			if us.ActiveState == "active" && us.SubState == "running" {
				st.Running++
			}
		}
		st.Serving = st.Running
		st = p.finish(st, snap.statuses[name])
		if i, ok := byName[name]; ok {
			statuses[i].status = st
		} else {
			statuses = append(statuses, namedStatus{name, st})
		}
	}
	sort.Slice(statuses, func(i, j int) bool { return statuses[i].name < statuses[j].name })
	return statuses
}

// leftAloneMessage says why the scheduler leaves n fleet units of the
// original for name alone (library text: it names no command).
func leftAloneMessage(name string, n int, held map[string]string) string {
	what := plural(n, "fleet unit") + " of monder/kaylee"
	if key, ok := held[name]; ok {
		return fmt.Sprintf("%s; held by the refused unit %s (its JSON's name is %s): left alone, never removed; store that JSON under the key %s and they are adopted",
			what, key, name, name)
	}
	return fmt.Sprintf("%s; no unit named %s is stored: left alone", what, name)
}

// originalUnitStatuses lists the original's fleet units named with their
// states on live machines, as unitStatuses does a unit's.
func (p *planner) originalUnitStatuses(names []string, units map[string]*schema.Unit, states map[string][]*schema.UnitState) []store.UnitStatus {
	seen := map[string]bool{}
	var out []store.UnitStatus
	for _, n := range names {
		for _, s := range states[n] {
			if _, live := p.machines[s.MachineID]; !live {
				continue
			}
			if u := units[s.Name]; u != nil && u.MachineID != "" && u.MachineID != s.MachineID {
				continue
			}
			seen[s.Name] = true
			out = append(out, store.UnitStatus{Name: s.Name, MachineID: s.MachineID, MachineIP: p.machines[s.MachineID],
				ActiveState: s.SystemdActiveState, SubState: s.SystemdSubState})
		}
	}
	for _, n := range names {
		if !seen[n] {
			us := store.UnitStatus{Name: n, MachineID: units[n].MachineID}
			us.MachineIP = p.machines[us.MachineID]
			out = append(out, us)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].MachineID < out[j].MachineID
	})
	return out
}

// statesByName groups fleet's unit states by unit name.
func statesByName(states []*schema.UnitState) map[string][]*schema.UnitState {
	out := make(map[string][]*schema.UnitState, len(states))
	for _, s := range states {
		out[s.Name] = append(out[s.Name], s)
	}
	return out
}
