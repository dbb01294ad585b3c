package fleet

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// The rolling machinery replaces a unit slot by slot, stop-then-start: a
// slot is a machine of a rolling global unit (one fleet unit per matching
// machine, pinned with MachineID), or a member of a stateful unit (its
// ordinal; the member is pinned to its machine too). In a slot, the old
// fleet unit is parked (stopped, kept loaded in fleet), the new one
// created once the old one is down, and the old one destroyed once the
// new one is ready. At most update.maxUnavailable slots are between
// parking and ready at a time. Machines are taken in ID order, members
// highest ordinal first. A failed rollout destroys the new fleet units
// and launches the parked ones again, so every slot runs the old version
// again (a member already replaced keeps its new unit: its old one is
// gone).
//
// A slot runs one fleet unit at a time (a member never runs twice; two
// versions of a global unit on one machine would share its ports): a
// unit of a slot is started (created, launched again) only once every
// other unit of the slot is down and will not start by itself (mayStart),
// whoever starts it: repair, rollSlot or failSlots.

// slot is one place of a unit rolled slot by slot.
type slot struct {
	key     string       // machine ID, or member ordinal
	ordinal int          // the member's ordinal (stateful units), else -1
	want    *schema.Unit // the desired fleet unit
	cur     *actualUnit  // its fleet unit, if any
	olds    unitSet      // the other fleet units in the slot
}

// slotKey is the slot of a fleet unit: the member ordinal of a stateful
// unit's, the pinned machine of a rolling global unit's ("" for none).
func (r *rollout) slotKey(name string, u *schema.Unit) string {
	if !r.stateful {
		return pinnedMachine(u)
	}
	id, ok := deploy.ParseUnitName(r.opts.UnitPrefix, name)
	if !ok {
		return ""
	}
	return strconv.Itoa(id.Index)
}

// actualSlotKey is slotKey of an actual fleet unit; one destroyed a
// moment ago (only its state left) is in the slot of the machine its
// state is on, for a rolling global unit.
func (r *rollout) actualSlotKey(a *actualUnit) string {
	if a.unit == nil && !r.stateful {
		for _, s := range a.states {
			return s.MachineID
		}
	}
	return r.slotKey(a.name(), a.unit)
}

// mayStart reports whether fleet unit a of the slot (nil: its new unit,
// to create) may be started: every other unit of the slot is down (not
// active) and not about to start (its target is not launched, or it
// failed, as a new unit of a failed rollout). A unit in no slot (sl nil)
// may.
func (sl *slot) mayStart(a *actualUnit) bool {
	if sl == nil {
		return true
	}
	for _, o := range append(unitSet{sl.cur}, sl.olds...) {
		if o == nil || o == a {
			continue
		}
		if _, failed := o.failedOn(); o.active() || o.target() == targetLaunched && !failed {
			return false
		}
	}
	return true
}

// slots groups the desired and actual fleet units by slot, in the order
// slots are replaced; strays are the actual fleet units in no slot (on a
// machine that left or no longer matches, fleet's Global=true unit of the
// default strategy, a member above replicas after a scale-down).
func (r *rollout) slots() (slots []*slot, strays unitSet) {
	byKey := map[string]*slot{}
	for _, du := range r.d.units {
		k := r.slotKey(du.Name, du)
		if k == "" {
			continue
		}
		sl := &slot{key: k, ordinal: -1, want: du}
		if r.stateful {
			sl.ordinal, _ = strconv.Atoi(k)
		}
		byKey[k] = sl
		slots = append(slots, sl)
	}
	if r.stateful {
		sort.Slice(slots, func(i, j int) bool { return slots[i].ordinal > slots[j].ordinal })
	} else {
		sort.Slice(slots, func(i, j int) bool { return slots[i].key < slots[j].key })
	}
	for _, a := range r.current {
		if sl := byKey[r.actualSlotKey(a)]; sl != nil {
			sl.cur = a
		}
	}
	for _, a := range r.stale {
		sl := byKey[r.actualSlotKey(a)]
		if sl == nil {
			strays = append(strays, a)
			continue
		}
		sl.olds = append(sl.olds, a)
	}
	return slots, strays
}

// rollSlots is the retire and place phases of a unit rolled slot by slot.
func (r *rollout) rollSlots() {
	slots, strays := r.slots()
	if r.stateful {
		r.decideOrder(slots)
		r.orderSlots(slots)
	}
	for _, a := range strays {
		r.ops = append(r.ops, r.destroy(r.u.name, a)...)
	}
	budget := r.u.spec.Update.UnavailableOf(len(slots))
	unavailable := 0
	var waiting []*slot // slots whose old unit serves, to replace
	for _, sl := range slots {
		if r.stateful && r.moveSlot(sl) {
			// Moving: its old units on its gone machine go first.
			unavailable++
			continue
		}
		if r.stateful && r.memberLost(sl.ordinal) {
			// Nothing is touched: the member waits for its machine.
			unavailable++
			r.notes = append(r.notes, r.lostNote(sl.ordinal))
			continue
		}
		if r.rollSlot(sl) {
			waiting = append(waiting, sl)
		} else if sl.cur == nil || !r.planner.ready(sl.cur, r.pol.minReady) {
			unavailable++
		}
	}
	for _, sl := range waiting {
		if r.probing {
			break // the order is not known yet
		}
		if unavailable >= budget {
			what := "machine"
			if r.stateful {
				what = "member"
			}
			r.notes = append(r.notes, fmt.Sprintf("replacing %s at a time (update.maxUnavailable)", plural(budget, what)))
			break
		}
		r.park(sl.olds)
		unavailable++
	}
}

// rollSlot moves one slot on and reports whether its old unit still
// serves, waiting for the budget to be parked. A slot with nothing to
// create (no machine for a member yet) counts as unavailable all the
// same: rollSlots only asks whether it is ready.
func (r *rollout) rollSlot(sl *slot) (waiting bool) {
	c, olds := sl.cur, sl.olds
	switch {
	case c != nil && r.planner.ready(c, r.pol.minReady):
		for _, a := range olds {
			r.ops = append(r.ops, r.destroy(r.u.name, a)...)
		}
	case c != nil:
		r.park(olds)
	case len(olds) == 0:
		r.createSlot(sl)
	case olds.count(func(a *actualUnit) bool { return a.target() == targetLaunched }) > 0:
		return true
	case !sl.mayStart(nil):
		// parked, still stopping
	default: // parked and down
		if drifted := olds.filter(func(a *actualUnit) bool { return isDrifted(r.d, a) }); len(drifted) > 0 {
			// The old unit has the new one's name (another unit file
			// under it): it goes first, then the new one is created.
			for _, a := range drifted {
				r.ops = append(r.ops, r.destroy(r.u.name, a)...)
			}
			return false
		}
		r.createSlot(sl)
	}
	return false
}

// createSlot creates a slot's new fleet unit; a member with no machine
// for it is not created (rendered unplaced, fleet would place it where
// it likes, and it would not be pinned).
func (r *rollout) createSlot(sl *slot) {
	if r.stateful && r.memberMachine(sl.ordinal) == "" {
		r.notes = append(r.notes, fmt.Sprintf("member %d has no machine: no live machine matches its machine metadata (and spread zone) with room under maxReplicasPerHost", sl.ordinal))
		return
	}
	r.create(sl.want)
}

// failSlots is a failed rollout's cleanup for a unit rolled slot by
// slot: the new fleet units go, and the parked old ones are launched
// again. A slot whose new unit runs with no old one left (replaced before
// the failure: its old unit was destroyed once the new one was ready)
// keeps it, or it would run nothing. One old unit per slot is kept (the
// deployed version's, see fallback), the others go, and the kept one is
// launched again only once every other unit of the slot is down
// (mayStart). It returns the replicas that keep running the new version.
func (r *rollout) failSlots() int {
	slots, _ := r.slots()
	kept := 0
	for _, sl := range slots {
		if sl.cur != nil && len(sl.olds) == 0 && sl.cur.running() {
			kept += sl.cur.runningCount()
			continue
		}
		if sl.cur != nil {
			r.ops = append(r.ops, r.destroy(r.u.name, sl.cur)...)
		}
		back := r.fallback(sl.olds)
		for _, a := range sl.olds {
			if a != back {
				r.ops = append(r.ops, r.destroy(r.u.name, a)...)
			}
		}
		if back != nil && sl.mayStart(back) {
			r.relaunch(unitSet{back})
		}
	}
	return kept
}

// fallback is the old fleet unit of a slot that a failed rollout runs
// again: the deployed version's, else one still launched (it was
// serving), else the first (fleet does not say which version is newer).
// nil when the slot has none with a unit file.
func (r *rollout) fallback(olds unitSet) *actualUnit {
	var back *actualUnit
	for _, a := range olds {
		switch {
		case a.unit == nil:
		case a.id.SpecHash == r.st.Deployed && r.st.Deployed != "":
			return a
		case back == nil || a.target() == targetLaunched && back.target() != targetLaunched:
			back = a
		}
	}
	return back
}

// park stops fleet units, keeping them loaded in fleet.
func (r *rollout) park(units unitSet) {
	for _, a := range units {
		if a.unit != nil && a.target() == targetLaunched && !r.holdStop(r.u.name, a) {
			r.ops = append(r.ops, op{kind: opStop, owner: r.u.name, name: a.name()})
		}
	}
}

// relaunch starts parked old fleet units again.
func (r *rollout) relaunch(units unitSet) {
	for _, a := range units {
		if a.unit != nil && a.target() != targetLaunched {
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
