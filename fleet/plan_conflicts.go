package fleet

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// fleet keeps two units whose Conflicts match (either way, path.Match on
// the whitespace-split values) off one machine: the engine schedules no
// unit to a machine holding one it conflicts with, and each agent loads
// its units in name order and skips (unloads, stopping it) any that
// conflicts with one it already loaded. Neither says so anywhere. The
// conflict view finds, from fleet's unit list alone, the units in the
// way of a replica that does not run, so that its status names them.

// placedUnit is a fleet unit with its Conflicts values and the machines
// it is on (scheduled there, or with a state there).
type placedUnit struct {
	name      string
	owner     string // Kaylee unit; "" for a unit Kaylee did not render
	conflicts []string
	scheduled string          // the machine the engine scheduled it to ("" global or none)
	loaded    map[string]bool // machines where an agent loaded it (it has a state)
}

// conflictView is every fleet unit, whoever made it, by name.
type conflictView struct {
	fleetUnits []*schema.Unit // as fleet listed them
	units      []*placedUnit
	live       []string                 // machine IDs, sorted
	on         map[string][]*placedUnit // machine → units scheduled or loaded there
}

func newConflictView(prefix string, fleetUnits []*schema.Unit, states []*schema.UnitState, machines map[string]string) *conflictView {
	v := &conflictView{fleetUnits: fleetUnits, on: map[string][]*placedUnit{}}
	byName := map[string]*placedUnit{}
	for _, u := range fleetUnits {
		pu := &placedUnit{name: u.Name, scheduled: u.MachineID, loaded: map[string]bool{}}
		if id, ok := deploy.ParseUnitName(prefix, u.Name); ok {
			pu.owner = id.Name
		} else if o, ok := deploy.ParseOriginalUnitName(prefix, u.Name); ok {
			pu.owner = o.Name // monder/kaylee's: the unit's previous version
		}
		for _, o := range u.Options {
			if o.Section == "X-Fleet" && (o.Name == "Conflicts" || o.Name == "X-Conflicts") {
				pu.conflicts = append(pu.conflicts, strings.Fields(o.Value)...)
			}
		}
		byName[u.Name] = pu
		v.units = append(v.units, pu)
	}
	sort.Slice(v.units, func(i, j int) bool { return v.units[i].name < v.units[j].name })
	for _, s := range states {
		if _, live := machines[s.MachineID]; live && byName[s.Name] != nil {
			byName[s.Name].loaded[s.MachineID] = true
		}
	}
	for _, pu := range v.units {
		for m := range pu.loaded {
			v.on[m] = append(v.on[m], pu)
		}
		if pu.scheduled != "" && !pu.loaded[pu.scheduled] {
			v.on[pu.scheduled] = append(v.on[pu.scheduled], pu)
		}
	}
	for id := range machines {
		v.live = append(v.live, id)
	}
	sort.Strings(v.live)
	return v
}

// conflict: fleet keeps a and b apart (either one's Conflicts matches the
// other's name).
func conflict(a, b *placedUnit) bool {
	match := func(patterns []string, name string) bool {
		for _, p := range patterns {
			if ok, _ := path.Match(p, name); ok {
				return true
			}
		}
		return false
	}
	return match(a.conflicts, b.name) || match(b.conflicts, a.name)
}

// blockers are the units of other Kaylee units (or not Kaylee's) on
// machine m that conflict with the fleet unit name: loaded there by its
// agent, or (scheduled: what the engine sees) scheduled there. own says
// whether a replica of its own Kaylee unit there conflicts with it too
// (fleet keeps it off as well, but its status does not name its own).
func (v *conflictView) blockers(name, m string, scheduled bool) (others []string, own bool) {
	self := v.find(name)
	if self == nil {
		return nil, false
	}
	for _, o := range v.on[m] {
		on := o.loaded[m] || scheduled && o.scheduled == m
		if o.name == name || !on || !conflict(self, o) {
			continue
		}
		if o.owner != "" && o.owner == self.owner {
			own = true
			continue
		}
		others = append(others, o.name)
	}
	return others, own
}

func (v *conflictView) find(name string) *placedUnit {
	i := sort.Search(len(v.units), func(i int) bool { return v.units[i].name >= name })
	if i < len(v.units) && v.units[i].name == name {
		return v.units[i]
	}
	return nil
}

// inTheWay says why fleet does not run replica a, when a conflict is why:
// "k2:web:…:0 is not loaded on machine 3f2a9c1e (192.0.2.1): it conflicts
// with k2:evil:…:0.service there" or "k2:web:…:1 cannot be placed: it
// conflicts with k2:evil:… on every machine". "" when no conflict
// explains it. Every status sentence about conflicts is made here.
func (p *planner) inTheWay(a *actualUnit, global bool) string {
	v := p.conflicts
	if v == nil || a.unit == nil {
		return ""
	}
	if !global && a.unit.MachineID == "" {
		// Only the machines fleet would place it on were nothing in its
		// way count; when one of them is free, no conflict explains it
		// (fleet's engine has not placed it yet).
		var on []string
		names := map[string]bool{}
		j := withoutConflicts(a.unit)
		for _, m := range v.live {
			if !mayRunOn(j, m, p.machineMeta(m)) {
				continue
			}
			bs, own := v.blockers(a.name(), m, true)
			if len(bs) == 0 && !own {
				return ""
			}
			if len(bs) == 0 {
				continue
			}
			on = append(on, p.machine(m))
			for _, b := range bs {
				names[b] = true
			}
		}
		if len(on) == 0 {
			return ""
		}
		where := "on " + strings.Join(on, ", ")
		if len(on) == len(v.live) {
			where = "on every machine"
		}
		return fmt.Sprintf("%s cannot be placed: it conflicts with %s %s", a.name(), listNames(names), where)
	}
	// Scheduled (or global): the machines it should be loaded on and is not.
	var want []string
	if global {
		want = v.live
	} else {
		want = []string{a.unit.MachineID}
	}
	var out []string
	for _, m := range want {
		if runsOn(a, m) {
			continue
		}
		bs, _ := v.blockers(a.name(), m, false)
		if len(bs) == 0 {
			continue
		}
		names := map[string]bool{}
		for _, b := range bs {
			names[b] = true
		}
		out = append(out, fmt.Sprintf("%s is not loaded on %s: it conflicts with %s there", a.name(), p.machine(m), listNames(names)))
	}
	return strings.Join(out, "; ")
}

func runsOn(a *actualUnit, m string) bool {
	for _, s := range a.states {
		if s.MachineID == m && s.SystemdActiveState == "active" && s.SystemdSubState == "running" && s.Hash == a.hash {
			return true
		}
	}
	return false
}

// listNames is "k2:evil:….service", "a and b", "a, b and 2 more".
func listNames(set map[string]bool) string {
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	const most = 3
	if len(names) > most {
		return strings.Join(names[:most], ", ") + fmt.Sprintf(" and %d more", len(names)-most)
	}
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// conflictNotes are the replicas of current that a conflict keeps from
// running, for the status message.
func (r *rollout) conflictNotes() []string {
	var out []string
	for _, a := range r.current {
		if w := r.inTheWay(a, r.global); w != "" {
			out = append(out, w)
		}
	}
	return out
}
