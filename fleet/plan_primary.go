package fleet

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// A stateful unit with a primary probe and update.order primary-last or
// primary-first asks its members which is the primary once per rollout,
// before it stops any member: one probe fleet unit per running member,
// pinned to its machine (deploy.RenderProbe), whose state is the answer
// (active/exited: the primary; failed: not). Exactly one member that
// answers so is the primary; none, several, or no answer from every
// probe within primaryProbeBound and the members go highest ordinal
// first. The decision is kept in memory; the probe units stay in fleet
// until the rollout ends, so a new leader reads the same answers from
// them (and asks again only those it cannot find). They are destroyed
// when the rollout is done or failed, when another rollout starts, and
// with the unit.

// primaryProbeBound is the longest the probes are waited for (at most
// half the progress deadline).
const primaryProbeBound = 60 * time.Second

// primaryDecision is the order of one rollout of a stateful unit.
type primaryDecision struct {
	hash    string    // the spec rolled out
	asked   time.Time // when this term first asked
	decided bool
	primary int    // the primary's ordinal, -1: none (highest-first)
	note    string // why none, "" with a primary
}

// primaryOrdered: the unit's members are updated around their primary.
func primaryOrdered(s *deploy.Spec) bool {
	return s.Stateful && s.Primary != nil && s.Update.OrderName() != deploy.OrderHighestFirst
}

// answer is what a probe said: "yes" (active/exited), "no" (failed), or
// "" (not yet).
func probeAnswer(a *actualUnit) string {
	for _, s := range a.states {
		switch {
		case s.Hash != a.hash:
		case s.SystemdActiveState == "active" && s.SystemdSubState == "exited":
			return "yes"
		case s.SystemdActiveState == "failed":
			return "no"
		}
	}
	return ""
}

// decideOrder sets r.primary, the ordinal the members are updated
// around (-1: highest-first), for a unit with members to replace,
// creating the probes that ask it; r.probing holds parking while they
// have not all answered.
func (r *rollout) decideOrder(slots []*slot) {
	r.primary = -1
	if !primaryOrdered(r.u.spec) || r.deployed || !membersLeft(slots, r) {
		return
	}
	dec := r.mem.primary[r.u.name]
	if dec == nil || dec.hash != r.d.hash {
		dec = &primaryDecision{hash: r.d.hash, asked: r.now, primary: -1}
		r.mem.primary[r.u.name] = dec
	}
	if !dec.decided {
		r.askPrimary(dec, slots)
	}
	if !dec.decided {
		r.probing = true
		return
	}
	r.primary = dec.primary
	if dec.note != "" {
		r.notes = append(r.notes, dec.note)
		return
	}
	r.notes = append(r.notes, orderNote(r.u.spec.Update.OrderOf(r.n, dec.primary), dec.primary))
}

// membersLeft: a member is still to be replaced (not yet running the
// spec for minReady).
func membersLeft(slots []*slot, r *rollout) bool {
	for _, sl := range slots {
		if len(sl.olds) > 0 && (sl.cur == nil || !r.planner.ready(sl.cur, r.pol.minReady)) {
			return true
		}
	}
	return false
}

// askPrimary creates the probes not in fleet yet, reads the answers, and
// decides once every probe answered or the bound passed.
func (r *rollout) askPrimary(dec *primaryDecision, slots []*slot) {
	byOrdinal := map[int]*actualUnit{}
	for _, a := range r.u.probes {
		if a.probe.SpecHash == r.d.hash {
			byOrdinal[a.probe.Index] = a
		}
	}
	var yes, waiting []int
	asked := 0
	for _, sl := range slots {
		a := byOrdinal[sl.ordinal]
		if a == nil {
			if !r.createProbe(sl) {
				continue
			}
			waiting = append(waiting, sl.ordinal)
			asked++
			continue
		}
		asked++
		switch probeAnswer(a) {
		case "yes":
			yes = append(yes, sl.ordinal)
		case "":
			waiting = append(waiting, sl.ordinal)
		}
	}
	bound := min(primaryProbeBound, r.pol.deadline/2)
	switch {
	case len(waiting) == 0 || asked == 0:
		dec.decided = true
	case r.now.Sub(dec.asked) >= bound:
		dec.decided = true
		dec.note = fmt.Sprintf("primary probe: %s did not answer within %s; highest ordinal first", membersList(waiting), bound)
		return
	default:
		r.wakeAt(dec.asked.Add(bound))
		r.notes = append(r.notes, fmt.Sprintf("primary probe: waiting for %s to answer; no member is stopped before", membersList(waiting)))
		return
	}
	switch len(yes) {
	case 1:
		dec.primary = yes[0]
	case 0:
		dec.note = "primary probe: no member answered as primary; highest ordinal first"
	default:
		dec.note = fmt.Sprintf("primary probe: %s answered as primary; highest ordinal first", membersList(yes))
	}
}

// createProbe creates the probe of a slot's member, against its running
// fleet unit, on its machine; false when it has none running there (it
// is not asked) or the probe does not render.
func (r *rollout) createProbe(sl *slot) bool {
	m := r.memberMachine(sl.ordinal)
	if _, live := r.machines[m]; !live {
		return false
	}
	var running *actualUnit
	for _, a := range append(unitSet{sl.cur}, sl.olds...) {
		if a != nil && a.unit != nil && a.target() == targetLaunched && a.running() {
			running = a
		}
	}
	if running == nil {
		return false
	}
	name := deploy.ProbeName{Prefix: r.opts.UnitPrefix, Name: r.u.name, SpecHash: r.d.hash, Index: sl.ordinal}
	u, err := deploy.RenderProbe(r.u.spec, name, running.id, m)
	if err != nil {
		r.notes = append(r.notes, fmt.Sprintf("primary probe of member %d: %v", sl.ordinal, err))
		return false
	}
	r.ops = append(r.ops, op{kind: opCreate, owner: r.u.name, name: u.Name, unit: u})
	return true
}

// orderSlots sorts a stateful unit's slots in update order.
func (r *rollout) orderSlots(slots []*slot) {
	rank := map[int]int{}
	for i, o := range r.u.spec.Update.OrderOf(r.n, r.primary) {
		rank[o] = i
	}
	sort.SliceStable(slots, func(i, j int) bool { return rank[slots[i].ordinal] < rank[slots[j].ordinal] })
}

// cleanProbes destroys the unit's probes that are done with: another
// rollout's, and all of them once the rollout is over (done: running;
// failed) or no longer ordered by its primary.
func (p *planner) cleanProbes(u *unitInput, hash string, over bool) []op {
	keep := !over && u.spec != nil && primaryOrdered(u.spec)
	if over || u.spec == nil {
		delete(p.mem.primary, u.name)
	}
	var ops []op
	for _, a := range u.probes {
		if a.unit == nil || keep && a.probe.SpecHash == hash {
			continue
		}
		ops = append(ops, op{kind: opDestroy, owner: u.name, name: a.name()})
	}
	return ops
}

// orderNote says in which order the members are updated.
func orderNote(order []int, primary int) string {
	words := make([]string, len(order))
	for i, o := range order {
		words[i] = strconv.Itoa(o)
		if o == primary && i == 0 {
			words[i] += " (the primary, first)"
		} else if o == primary {
			words[i] += " (the primary, last)"
		}
	}
	if len(words) == 1 {
		return "updating member " + words[0]
	}
	return "updating members " + strings.Join(words[:len(words)-1], ", ") + ", then " + words[len(words)-1]
}

// membersList is "member 1" or "members 0, 1 and 2".
func membersList(ordinals []int) string {
	ordinals = append([]int(nil), ordinals...)
	sort.Ints(ordinals)
	words := make([]string, len(ordinals))
	for i, o := range ordinals {
		words[i] = strconv.Itoa(o)
	}
	if len(words) == 1 {
		return "member " + words[0]
	}
	return "members " + strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}
