package fleet

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// A stateful unit's members keep their machines: Kaylee, not fleet,
// places each member once, on its first rendering, and pins it there
// (X-Fleet MachineID), so fleet never moves it and every later rendering
// (an update, a restart) is pinned to the same machine. Its rollout is the
// rolling machinery's (rollSlots), one slot per member ordinal: a member
// is stopped before its new fleet unit starts, so it never runs twice.

// memberLoss is what placement knows of lost machines, for a unit with
// onMachineLoss move (empty for any other).
type memberLoss struct {
	// leave: the machines gone for longer than the grace, whose members
	// leave them, with the metadata fleet last reported for each (nil
	// when never seen: the zone of its members is not known).
	leave map[string]map[string]string
	// to: by ordinal, the machine a member that moves was given in an
	// earlier pass (kept once its old fleet unit is gone).
	to map[int]string
}

// memberPlacement is where placeMembers puts a stateful unit's members.
type memberPlacement struct {
	members []string       // by ordinal, the machine ("": none fits yet)
	zones   []string       // by ordinal, the spread zone (nil without spread)
	stuck   map[int]string // by ordinal, why a member cannot leave its gone machine
}

// key identifies a placement in a rendering's cache key.
func (pl memberPlacement) key() string {
	k := "\x00members=" + strings.Join(pl.members, ",") + "\x00zones=" + strings.Join(pl.zones, ",")
	ords := make([]int, 0, len(pl.stuck))
	for i := range pl.stuck {
		ords = append(ords, i)
	}
	sort.Ints(ords)
	for _, i := range ords {
		k += fmt.Sprintf("\x00stuck%d=%s", i, pl.stuck[i])
	}
	return k
}

// placeMembers gives each member of a stateful unit its machine, by
// ordinal, and the spread zone of each (nil without spread). A member
// whose fleet units are pinned keeps that machine, live or not (a member
// whose machine is gone waits for it: its data is there), unless the
// machine is one loss.leave has (onMachineLoss move, gone past the
// grace): then it moves to a live machine of the zone it had, and waits
// on its old machine (loss.stuck says why) when none fits. A member that
// moved keeps the machine loss.to gave it. Any other gets a live machine
// that matches the unit's machine metadata, in its zone (see
// deploy.AssignZones) with spread, with fewer than maxReplicasPerHost
// members of the unit; the one with fewest members of the unit, then the
// lowest ID. A member no machine fits gets "".
func placeMembers(s *deploy.Spec, hash string, machines []deploy.Machine, actual unitSet, loss memberLoss) memberPlacement {
	pl := memberPlacement{members: pinnedMembers(s.Members(), hash, actual), stuck: map[int]string{}}
	byID := append([]deploy.Machine(nil), machines...)
	sort.Slice(byID, func(i, j int) bool { return byID[i].ID < byID[j].ID })
	live := map[string]bool{}
	for _, m := range machines {
		live[m.ID] = true
	}
	for i, m := range pl.members {
		if to := loss.to[i]; m == "" && live[to] {
			pl.members[i] = to
		}
	}
	pl.zones = memberZones(s, machines, pl.members, loss.leave)
	leaving := map[int]string{}
	for i, m := range pl.members {
		if _, gone := loss.leave[m]; !gone || m == "" {
			continue
		}
		if s.Spread != nil && pl.zones[i] == "" {
			pl.stuck[i] = fmt.Sprintf("the %s of machine %.8s is not known (it left before this scheduler started)", s.Spread.Key, m)
			continue
		}
		leaving[i], pl.members[i] = m, ""
	}
	count := map[string]int{}
	for _, m := range pl.members {
		if m != "" {
			count[m]++
		}
	}
	for i := range pl.members {
		if pl.members[i] != "" {
			continue
		}
		zone := ""
		if pl.zones != nil {
			zone = pl.zones[i]
		}
		m := pickMachine(s, byID, zone, count)
		if m == "" && leaving[i] != "" {
			m, pl.stuck[i] = leaving[i], noMachine(s, byID, zone)
		}
		if m != "" {
			pl.members[i] = m
			count[m]++
		}
	}
	return pl
}

// noMachine says why no machine fits a member that would move to zone.
func noMachine(s *deploy.Spec, machines []deploy.Machine, zone string) string {
	where := "that matches its machine metadata"
	if zone != "" {
		where = "in " + s.Spread.Key + "=" + zone
	}
	for _, m := range machines {
		if s.Matches(m) && (zone == "" || m.Metadata[s.Spread.Key] == zone) {
			return fmt.Sprintf("no machine %s with room (maxReplicasPerHost %d)", where, s.MaxReplicasPerHost)
		}
	}
	return "no machine " + where
}

// pinnedMembers reads the machine each of n members is pinned to from
// its fleet units, of any spec hash (the current one's first).
func pinnedMembers(n int, hash string, actual unitSet) []string {
	members := make([]string, n)
	for _, a := range actual {
		i := a.id.Index
		if a.unit == nil || i < 0 || i >= n {
			continue
		}
		if m := pinnedMachine(a.unit); m != "" && (members[i] == "" || a.id.SpecHash == hash) {
			members[i] = m
		}
	}
	return members
}

// memberZones is the zone of each member of a spread unit: a placed
// member's is its machine's (kept whatever the skew: it does not move;
// for a machine gone, the metadata last seen of it in gone, "" when not
// known); the others are given zones by deploy.AssignZones around them.
func memberZones(s *deploy.Spec, machines []deploy.Machine, members []string, gone map[string]map[string]string) []string {
	if s.Spread == nil {
		return nil
	}
	zoneOf := map[string]string{}
	for id, md := range gone {
		zoneOf[id] = md[s.Spread.Key]
	}
	for _, m := range machines {
		zoneOf[m.ID] = m.Metadata[s.Spread.Key]
	}
	prev := make([]string, len(members))
	for i, m := range members {
		prev[i] = zoneOf[m]
	}
	zones := deploy.AssignZones(len(members), deploy.Zones(s, machines), prev, s.Spread.Skew())
	for i, m := range members {
		if m != "" {
			zones[i] = prev[i]
		}
	}
	return zones
}

// pickMachine chooses the machine of an unplaced member (see
// placeMembers); machines are in ID order, count holds the members of
// the unit per machine.
func pickMachine(s *deploy.Spec, machines []deploy.Machine, zone string, count map[string]int) string {
	best := ""
	for _, m := range machines {
		if !s.Matches(m) || zone != "" && m.Metadata[s.Spread.Key] != zone {
			continue
		}
		if s.MaxReplicasPerHost > 0 && count[m.ID] >= s.MaxReplicasPerHost {
			continue
		}
		if best == "" || count[m.ID] < count[best] {
			best = m.ID
		}
	}
	return best
}

// memberMachine is the machine a stateful unit's member is placed on.
func (r *rollout) memberMachine(ordinal int) string {
	if ordinal < 0 || ordinal >= len(r.d.members) {
		return ""
	}
	return r.d.members[ordinal]
}

// memberLost: the member's machine is not among fleet's machines. The
// member stays pinned there (fleet keeps its unit unscheduled) and waits,
// unless it moves (onMachineLoss move, see moveSlot).
func (r *rollout) memberLost(ordinal int) bool {
	m := r.memberMachine(ordinal)
	_, live := r.machines[m]
	return m != "" && !live
}

// lostNote says why a member waits for its machine: with onMachineLoss
// move, when it moves (and a wake-up is set then), or why it cannot.
func (r *rollout) lostNote(ordinal int) string {
	m := r.memberMachine(ordinal)
	where := fmt.Sprintf("machine %.8s", m)
	if ip := r.mem.ips[m]; ip != "" {
		where += " (" + ip + ")"
	}
	if why, ok := r.d.stuck[ordinal]; ok {
		return fmt.Sprintf("member %d cannot move: %s; it waits for %s", ordinal, why, where)
	}
	note := fmt.Sprintf("member %d waits for %s, its data is there", ordinal, where)
	if r.u.spec.MachineLoss() == deploy.MachineLossMove {
		grace := r.opts.MachineLossGrace
		if since, ok := r.mem.goneSince[m]; ok {
			r.wakeAt(since.Add(grace))
		}
		note += fmt.Sprintf(" (onMachineLoss move: it moves once its machine is gone %s)", grace)
	}
	return note
}

// memberMove is a member moving off its gone machine (onMachineLoss
// move), remembered from the pass that destroys its old fleet unit until
// its new one is ready on the machine it moves to.
type memberMove struct {
	from, to string
	gone     time.Duration // how long from had been gone
}

func (mv *memberMove) String(ordinal int) string {
	return fmt.Sprintf("member %d moved from machine %.8s (gone %s) to %.8s", ordinal, mv.from, mv.gone, mv.to)
}

// moveSlot moves a member whose placement left its gone machine
// (placeMembers, onMachineLoss move): its fleet units pinned to that
// machine are destroyed at once (there is nothing to stop: a machine
// gone runs nothing fleet knows of; one that comes back finds no unit
// scheduled to it, and its agent starts nothing), which is told once
// (an event, and the status until the member is ready on its new
// machine); the new unit is created, pinned there, once they are gone
// (rollSlot). It reports whether the slot waits for them.
func (r *rollout) moveSlot(sl *slot) bool {
	to := r.memberMachine(sl.ordinal)
	var left unitSet
	for _, a := range append(unitSet{sl.cur}, sl.olds...) {
		if a == nil || a.unit == nil {
			continue
		}
		m := pinnedMachine(a.unit)
		if _, live := r.machines[m]; m != "" && m != to && !live {
			left = append(left, a)
		}
	}
	mv := r.mem.moves[r.u.name][sl.ordinal]
	if len(left) == 0 {
		switch {
		case mv == nil:
		case mv.to != to || sl.cur != nil && r.planner.ready(sl.cur, r.pol.minReady):
			delete(r.mem.moves[r.u.name], sl.ordinal)
		default:
			r.notes = append(r.notes, mv.String(sl.ordinal))
		}
		return false
	}
	if mv == nil || mv.to != to {
		from := pinnedMachine(left[0].unit)
		mv = &memberMove{from: from, to: to}
		if since, ok := r.mem.goneSince[from]; ok {
			mv.gone = r.now.Sub(since).Round(time.Second)
		}
		if r.mem.moves[r.u.name] == nil {
			r.mem.moves[r.u.name] = map[int]*memberMove{}
		}
		r.mem.moves[r.u.name][sl.ordinal] = mv
		r.events = append(r.events, store.Event{Kind: store.EventMemberMoved, Unit: r.u.name, Message: mv.String(sl.ordinal)})
	}
	for _, a := range left {
		r.ops = append(r.ops, op{kind: opDestroy, owner: r.u.name, name: a.name()})
	}
	r.notes = append(r.notes, mv.String(sl.ordinal))
	return true
}
