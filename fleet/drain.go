package fleet

import (
	"fmt"
	"sort"
	"time"
)

// Draining (Options.DrainDelay). A replica that serves leaves the
// instance registry in the pass that decides to stop it (serving leaves
// out every fleet unit the pass stops, or holds), and routers following
// the registry stop sending to it; the stop itself (target loaded) is
// held until DrainDelay after the registry write that removed it. Every
// stop of a serving replica goes through holdStop: planner.destroy (the
// rollout's surplus, a scale down, a removed unit, a replacement in
// place, a drifted unit, a failed rollout's new replicas) and park (a
// slot of a rolling global or stateful unit).
//
// While held, nothing else changes for the planner: the replica is still
// launched and running, so the next pass decides to stop it again, and
// holds it until its time; it counts as up for maxSurge (see place) and,
// being active, for maxReplicasPerHost. A replica the plan no longer
// stops (the spec was put back) serves again and enters the registry
// again; a later stop starts its wait anew. A replica that does not serve
// (failed, restarting, starting, on a machine that left fleet) is not in
// the registry and is stopped at once.
//
// The wait is the leader's memory: a new leader's first pass does not
// list a replica it stops either (it writes the registry before any
// fleet call) and starts the wait again, so a change of leader only
// makes a drain longer.

// drainPass is what one pass decided about drains.
type drainPass struct {
	asked   map[string]bool     // fleet units the pass stops or holds, serving
	held    map[string]bool     // fleet units whose stop is held
	started []string            // fleet units whose drain starts in this pass
	notes   map[string][]string // Kaylee unit → its draining replicas, for its status
}

// holdStop reports whether the stop of fleet unit a, of Kaylee unit
// owner, is held: a serves and left the registry less than DrainDelay
// ago (a drain starts when first asked).
func (p *planner) holdStop(owner string, a *actualUnit) bool {
	name := a.name()
	if p.opts.DrainDelay <= 0 || a.target() != targetLaunched || a.runningCount() == 0 {
		delete(p.mem.draining, name)
		return false
	}
	d := p.drains()
	d.asked[name] = true
	since, ok := p.mem.draining[name]
	if !ok {
		since = p.now
		p.mem.draining[name] = since
		d.started = append(d.started, name)
	}
	until := since.Add(p.opts.DrainDelay)
	if !p.now.Before(until) {
		return false
	}
	d.held[name] = true
	p.wakeAt(until)
	d.notes[owner] = append(d.notes[owner], fmt.Sprintf("draining %s before it stops (%s left)", name, until.Sub(p.now).Round(100*time.Millisecond)))
	return true
}

func (p *planner) drains() *drainPass {
	if p.drain == nil {
		p.drain = &drainPass{asked: map[string]bool{}, held: map[string]bool{}, notes: map[string][]string{}}
	}
	return p.drain
}

// draining: the stop of fleet unit name is held in this pass.
func (p *planner) draining(name string) bool {
	return p.drain != nil && p.drain.held[name]
}

// drainNotes is the status note of owner's draining replicas.
func (p *planner) drainNotes(owner string) []string {
	if p.drain == nil {
		return nil
	}
	notes := p.drain.notes[owner]
	sort.Strings(notes)
	return notes
}

// heldNames is the fleet units whose stop the pass holds (nil for none).
func (p *planner) heldNames() map[string]bool {
	if p.drain == nil {
		return nil
	}
	return p.drain.held
}

// forgetDrains drops, after a pass, the drains of fleet units the pass
// did not stop or hold: stopped since, or no longer to stop.
func (m *memory) forgetDrains(d *drainPass) {
	for name := range m.draining {
		if d == nil || !d.asked[name] {
			delete(m.draining, name)
		}
	}
}

// dropDrains drops the drains of names: their registry write failed.
func (m *memory) dropDrains(names []string) {
	for _, name := range names {
		delete(m.draining, name)
	}
}

// drainsFrom starts the drains that began in a pass at the time its
// registry write was done (at), not when it was planned: the stop comes
// DrainDelay after the replica left the registry, however long the
// write took.
func (m *memory) drainsFrom(names []string, at time.Time) {
	for _, name := range names {
		if t, ok := m.draining[name]; ok && at.After(t) {
			m.draining[name] = at
		}
	}
}
