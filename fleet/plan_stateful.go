package fleet

import (
	"fmt"
	"sort"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// A stateful unit's members keep their machines: Kaylee, not fleet,
// places each member once, on its first rendering, and pins it there
// (X-Fleet MachineID), so fleet never moves it and every later rendering
// (an update, a restart) is pinned to the same machine. Its rollout is the
// rolling machinery's (rollSlots), one slot per member ordinal: a member
// is stopped before its new fleet unit starts, so it never runs twice.

// placeMembers gives each member of a stateful unit its machine, by
// ordinal, and the spread zone of each (nil without spread). A member
// whose fleet units are pinned keeps that machine, live or not (a member
// whose machine is gone waits for it: its data is there). Any other gets
// a live machine that matches the unit's machine metadata, in its zone
// (see deploy.AssignZones) with spread, with fewer than
// maxReplicasPerHost members of the unit; the one with fewest members of
// the unit, then the lowest ID. A member no machine fits gets "".
func placeMembers(s *deploy.Spec, hash string, machines []deploy.Machine, actual unitSet) (members, zones []string) {
	n := s.Members()
	members = pinnedMembers(n, hash, actual)
	zones = memberZones(s, machines, members)
	byID := append([]deploy.Machine(nil), machines...)
	sort.Slice(byID, func(i, j int) bool { return byID[i].ID < byID[j].ID })
	count := map[string]int{}
	for _, m := range members {
		if m != "" {
			count[m]++
		}
	}
	for i := range members {
		if members[i] != "" {
			continue
		}
		zone := ""
		if zones != nil {
			zone = zones[i]
		}
		if m := pickMachine(s, byID, zone, count); m != "" {
			members[i] = m
			count[m]++
		}
	}
	return members, zones
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
// member's is its machine's (kept whatever the skew: it does not move);
// the others are given zones by deploy.AssignZones around them.
func memberZones(s *deploy.Spec, machines []deploy.Machine, members []string) []string {
	if s.Spread == nil {
		return nil
	}
	zoneOf := map[string]string{}
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
// member stays pinned there (fleet keeps its unit unscheduled) and waits.
func (r *rollout) memberLost(ordinal int) bool {
	m := r.memberMachine(ordinal)
	_, live := r.machines[m]
	return m != "" && !live
}

// waitNote says that a member waits for its machine.
func (r *rollout) waitNote(ordinal int) string {
	m := r.memberMachine(ordinal)
	where := fmt.Sprintf("machine %.8s", m)
	if ip := r.mem.ips[m]; ip != "" {
		where += " (" + ip + ")"
	}
	return fmt.Sprintf("member %d waits for %s, its data is there", ordinal, where)
}

// statefulNotes are the parts of a stateful unit's policy the scheduler
// does not apply yet.
func (r *rollout) statefulNotes() []string {
	var notes []string
	if r.u.spec.MachineLoss() == deploy.MachineLossMove {
		notes = append(notes, "onMachineLoss move: not applied yet, member waits")
	}
	return notes
}
