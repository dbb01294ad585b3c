package fleet

import (
	"strings"
	"time"

	"github.com/coreos/fleet/schema"
)

// A fleet agent publishes each unit state when it changes, and again,
// unchanged, every 4/5 of its TTL (agent_ttl); etcd drops a state its
// agent is late to publish again. On a loaded etcd that happens to many
// at once: at 1,000 units × 3 on 10 simulated machines, fleet's own states
// expired at up to 300 a second with every replica still running on its
// machine (docs/benchmarks.md), and Kaylee's statuses went from 3 to 2
// running and back every minute, each flap three status writes, and
// each a replica that had to be watched for minReady afresh.
//
// So a state that vanished stands for a while: for a fleet unit still
// scheduled, to be launched, on the same live machine, the last state seen
// counts for up to stateHold after it was last seen. The machine is the
// bound that matters: its agent renews the machine's presence with the
// same TTL, so an agent that died takes its machine out of fleet's list
// (and its states are not held) as soon as its states would have expired;
// one still listed is alive and only late to publish. A real change is
// published at once (a stop, a crash, a restart: a state of its own); a
// unit fleet moves or unschedules has another machine or none, and what
// was seen of it there is forgotten; a fleet
// unit Kaylee created again under the same name (the same spec and
// index) has none of its predecessor's states held.
//
// And a state fleet's agent removed is not held: it unloaded the unit
// (unscheduled, or in conflict with a unit loaded before it on that
// machine) and deleted the unit's states, where an expired state is
// etcd's doing. Only the registry's watch tells the two apart
// (StateRemovalTracker); a removal it missed (etcd's event history
// passed under load) leaves the state held, stateHold at most.

// removedSince says whether fleet's agent removed the unit's state on
// machineID (or all of its states) at or after t.
func removedSince(removed map[string]time.Time, name, machineID string, t time.Time) bool {
	for _, k := range []string{name, name + "/" + machineID} {
		if at, ok := removed[k]; ok && !at.Before(t) {
			return true
		}
	}
	return false
}

// stateHold is how long at most a vanished state stands while its machine
// stays listed: four of fleet's default agent_ttl. At 1,000 units × 3 on
// 10 simulated machines, with every replica running, each of the 3,000
// states vanished at some point over 3 minutes, 2,164 of them for more
// than 30 s, 144 for more than 60 s, the longest for 75 s; a hold of 30 s
// left 20 units "progressing" at any time (docs/benchmarks.md, run 9).
const stateHold = 2 * time.Minute

// seenState is a state as last published, and when it was last seen.
type seenState struct {
	state *schema.UnitState
	at    time.Time
}

// holdStates returns states with the vanished ones that still stand
// added, and when the first of those stops standing (zero: none held). It
// remembers every state of prefix's fleet units it sees, in mem.published.
func holdStates(prefix string, fleetUnits []*schema.Unit, states []*schema.UnitState, removed map[string]time.Time, live map[string]string, mem *memory, now time.Time) ([]*schema.UnitState, time.Time) {
	ours := func(name string) bool { return strings.HasPrefix(name, prefix+":") }
	key := func(name, machineID string) string { return name + "\x00" + machineID }
	seen := make(map[string]bool, len(states))
	for _, s := range states {
		if ours(s.Name) {
			k := key(s.Name, s.MachineID)
			seen[k] = true
			mem.published[k] = seenState{state: s, at: now}
		}
	}
	out := states
	var until time.Time
	placed := make(map[string]bool, len(fleetUnits)) // scheduled, to be launched, there
	for _, u := range fleetUnits {
		if !ours(u.Name) || u.MachineID == "" || u.DesiredState != targetLaunched {
			continue
		}
		k := key(u.Name, u.MachineID)
		placed[k] = true
		last, ok := mem.published[k]
		if _, up := live[u.MachineID]; seen[k] || !ok || !up || now.Sub(last.at) >= stateHold {
			continue
		}
		if c, again := mem.created[u.Name]; again && !c.Before(last.at) {
			continue // created (again) since: that state was its predecessor's
		}
		if removedSince(removed, u.Name, u.MachineID, last.at) {
			continue // fleet's agent removed it: it unloaded the unit
		}
		if len(out) == len(states) { // copy before the first addition: states is the snapshot's
			out = append(make([]*schema.UnitState, 0, len(states)+1), states...)
		}
		out = append(out, last.state)
		if end := last.at.Add(stateHold); until.IsZero() || end.Before(until) {
			until = end
		}
	}
	for k, s := range mem.published {
		if now.Sub(s.at) >= stateHold || !seen[k] && !placed[k] {
			delete(mem.published, k) // too old, or its unit left that machine
		}
	}
	return out, until
}
