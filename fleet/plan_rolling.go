package fleet

import (
	"fmt"
	"sort"

	"github.com/coreos/fleet/schema"
)

// A rolling global unit runs as one fleet unit per matching machine,
// pinned with MachineID (see deploy's rendering). It is replaced machine
// by machine: on a machine, the old fleet unit is parked (stopped, kept
// loaded in fleet), the new one created once the old one is down, and the
// old one destroyed once the new one is ready. At most maxUnavailable
// machines are between parking and ready at a time. A failed rollout
// destroys the new fleet units and launches the parked ones again, so
// every machine runs the old version again.

// rollMachines is the retire and place phases of a rolling global unit.
func (r *rollout) rollMachines() {
	want := map[string]*schema.Unit{} // machine → desired fleet unit
	var machines []string
	for _, du := range r.d.units {
		if m := pinnedMachine(du); m != "" {
			want[m] = du
			machines = append(machines, m)
		}
	}
	sort.Strings(machines)
	cur := map[string]*actualUnit{}
	for _, a := range r.current {
		cur[pinnedMachine(a.unit)] = a
	}
	old := map[string]unitSet{}
	for _, a := range r.stale {
		m := ""
		if a.unit != nil {
			m = pinnedMachine(a.unit)
		}
		if _, ok := want[m]; !ok {
			// Not on a machine that should run the unit (one that left or
			// no longer matches, or fleet's Global=true unit of the
			// default strategy): it goes.
			r.ops = append(r.ops, r.destroy(r.u.name, a)...)
			continue
		}
		old[m] = append(old[m], a)
	}
	budget := r.u.spec.Update.UnavailableOf(len(machines))
	unavailable := 0
	var waiting []string // machines whose old unit serves, to replace
	for _, m := range machines {
		c, olds := cur[m], old[m]
		switch {
		case c != nil && r.planner.ready(c, r.pol.minReady):
			for _, a := range olds {
				r.ops = append(r.ops, r.destroy(r.u.name, a)...)
			}
		case c != nil:
			unavailable++
			r.park(olds)
		case len(olds) == 0:
			r.create(want[m])
			unavailable++
		case olds.count(func(a *actualUnit) bool { return a.target() == targetLaunched }) > 0:
			waiting = append(waiting, m)
		case olds.count((*actualUnit).active) > 0:
			unavailable++ // parked, still stopping
		default: // parked and down
			unavailable++
			if drifted := olds.filter(func(a *actualUnit) bool { return isDrifted(r.d, a) }); len(drifted) > 0 {
				// The old unit has the new one's name (another unit file
				// under it): it goes first, then the new one is created.
				for _, a := range drifted {
					r.ops = append(r.ops, r.destroy(r.u.name, a)...)
				}
				continue
			}
			r.create(want[m])
		}
	}
	for _, m := range waiting {
		if unavailable >= budget {
			r.notes = append(r.notes, fmt.Sprintf("replacing on %s at a time (update.maxUnavailable)", plural(budget, "machine")))
			break
		}
		r.park(old[m])
		unavailable++
	}
}

// park stops fleet units, keeping them loaded in fleet.
func (r *rollout) park(units unitSet) {
	for _, a := range units {
		if a.unit != nil && a.target() == targetLaunched {
			r.ops = append(r.ops, op{kind: opStop, owner: r.u.name, name: a.name()})
		}
	}
}

// relaunchParked starts the parked old fleet units again (after a failed
// rollout of a rolling global unit).
func (r *rollout) relaunchParked() {
	for _, a := range r.stale {
		if a.unit != nil && a.target() != targetLaunched && pinnedMachine(a.unit) != "" {
			delete(r.mem.stopping, a.name())
			r.ops = append(r.ops, op{kind: opLaunch, owner: r.u.name, name: a.name()})
		}
	}
}

// pinnedMachine is the machine a fleet unit is pinned to (X-Fleet
// MachineID), or "".
func pinnedMachine(u *schema.Unit) string {
	if u == nil {
		return ""
	}
	for _, o := range u.Options {
		if o.Section == "X-Fleet" && o.Name == "MachineID" {
			return o.Value
		}
	}
	return ""
}
