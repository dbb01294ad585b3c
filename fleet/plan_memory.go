package fleet

import (
	"time"

	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// memory is what the leader remembers between passes of one term. A new
// leader starts empty: it waits MinReady afresh, which is only slower.
type memory struct {
	// published: fleet unit and machine → the state fleet last published
	// there, and when it was seen, for stateHold (see plan_held.go).
	published   map[string]seenState
	readySince  map[string]time.Time // fleet unit → first seen running
	stopping    map[string]time.Time // fleet unit → when it was set loaded
	unscheduled map[string]time.Time // fleet unit → first seen with no machine
	// placed: when a fleet unit (any unit's) was last seen going from
	// no machine to one: fleet's engine at work on a backlog.
	placed time.Time
	// couldPlace: fleet unit → when fleet\'s own test last said a live
	// machine could take it (plan_placeable.go).
	couldPlace map[string]time.Time
	failedAt   map[string]time.Time               // fleet unit of a deployed spec → when seen failed
	restarts   map[string]map[string]*restartSeen // fleet unit → machine → restarts seen
	created    map[string]time.Time               // fleet unit → when created, until seen in a state other than failed
	sent       map[string]*sentTarget             // fleet unit → target state sent, until fleet's agent acts on it
	// replacing: fleet units being stopped because they failed: current
	// ones, or the previous version's after a failed rollout (any other
	// stopped unit of these, such as an old one that is current again
	// after a rollback, is launched again).
	replacing map[string]bool
	// ips: machine ID → the public IP fleet last reported for it, kept
	// after the machine leaves (a stateful member waiting for its machine
	// names it).
	ips map[string]string
	// Machine loss (stateful units): goneSince: machine ID → when a
	// machine some fleet unit is pinned to was first seen gone, until it
	// is back or nothing is pinned to it (a new leader starts the grace
	// again); meta: machine ID → the metadata fleet last reported for
	// it, kept while it is gone (a member that moves stays in its zone);
	// moves: unit → member ordinal → its move, until it is ready on its
	// new machine.
	goneSince map[string]time.Time
	meta      map[string]map[string]string
	moves     map[string]map[int]*memberMove
	// primary: Kaylee unit → the order of its stateful rollout, once
	// asked of its primary probes (see decideOrder).
	primary map[string]*primaryDecision
	// draining: fleet unit that serves → when its drain began (it left
	// the instance registry), while the plan stops it (see drain.go).
	draining map[string]time.Time
	// evidence: Kaylee unit → the failed rollout whose failing replica's
	// evidence is asked for, until found or evidenceWait has passed.
	evidence map[string]*evidenceWant
}

// sentTarget is a target state Kaylee set (create: launched; launch;
// stop: loaded) that fleet's agent has not acted on yet.
type sentTarget struct {
	target string
	at     time.Time // sent, or last nudged
	nudges int
}

// restartSeen counts, for a fleet unit on one machine, how many times it
// was seen entering activating/auto-restart since it was last ready:
// systemd restarts a unit under Restart=always forever, so a crash loop
// never shows as failed. It also counts the entries (into auto-restart,
// or failed) that followed activating/start-post: a health check, which
// Kaylee renders as ExecStartPost, that did not pass at start.
type restartSeen struct {
	last    string    // active/sub state at the last pass
	n       int       // restarts seen
	counted time.Time // when the last one was counted
	// inStartPost: seen in activating/start-post, and since then only in
	// it or in deactivating/* (systemd stops the unit, running ExecStop
	// and ExecStopPost, between a failed ExecStartPost and auto-restart).
	inStartPost bool
	unhealthy   int // entries into auto-restart or failed with inStartPost
}

func newMemory() *memory {
	return &memory{
		readySince:  map[string]time.Time{},
		stopping:    map[string]time.Time{},
		unscheduled: map[string]time.Time{},
		couldPlace:  map[string]time.Time{},
		failedAt:    map[string]time.Time{},
		restarts:    map[string]map[string]*restartSeen{},
		created:     map[string]time.Time{},
		sent:        map[string]*sentTarget{},
		replacing:   map[string]bool{},
		ips:         map[string]string{},
		goneSince:   map[string]time.Time{},
		meta:        map[string]map[string]string{},
		moves:       map[string]map[int]*memberMove{},
		primary:     map[string]*primaryDecision{},
		draining:    map[string]time.Time{},
		evidence:    map[string]*evidenceWant{},
		published:   map[string]seenState{},
	}
}

// forget drops what concerns fleet units that are gone.
func (m *memory) forget(present map[string]bool, now time.Time, keepFailed time.Duration) {
	for _, mp := range []map[string]time.Time{m.readySince, m.stopping, m.unscheduled, m.couldPlace} {
		for k := range mp {
			if !present[k] {
				delete(mp, k)
			}
		}
	}
	for k, t := range m.failedAt {
		if !present[k] && now.Sub(t) > keepFailed {
			delete(m.failedAt, k)
		}
	}
	for k := range m.restarts {
		if !present[k] {
			delete(m.restarts, k)
		}
	}
	for k := range m.sent {
		if !present[k] {
			delete(m.sent, k)
		}
	}
	for k := range m.replacing {
		if !present[k] {
			delete(m.replacing, k)
		}
	}
	for k, t := range m.created {
		if now.Sub(t) > staleFailedGrace {
			delete(m.created, k)
		}
	}
}

// staleFailedGrace: for this long after Kaylee creates a fleet unit under
// a name used before (a replaced or re-created replica), a "failed" state
// is not believed until the unit has been seen in any other state: fleet
// reports the state systemd kept for the name from its last run until the
// new start shows (seen on real systemd: a unit destroyed by hand while
// running ends failed, and its recreation showed failed for seconds while
// it started fine).
const staleFailedGrace = 15 * time.Second

// failedOn is actualUnit.failedOn, but for the state of a name's previous
// run in the grace after it was created again.
func (p *planner) failedOn(a *actualUnit) (*schema.UnitState, bool) {
	s, failed := a.failedOn()
	if !failed {
		return nil, false
	}
	if t, fresh := p.mem.created[a.name()]; fresh && p.now.Sub(t) < staleFailedGrace {
		return nil, false
	}
	return s, true
}

// observe updates what is remembered about a current replica.
func (p *planner) observe(a *actualUnit, global bool, minReady time.Duration) {
	name := a.name()
	p.observeRestarts(a)
	if _, failed := a.failedOn(); !failed && len(a.states) > 0 {
		delete(p.mem.created, name) // its state is its own now
	}
	if a.running() {
		if _, ok := p.mem.readySince[name]; !ok {
			p.mem.readySince[name] = p.now
		}
		delete(p.mem.failedAt, name) // a later failure waits RetryFailed again
	} else {
		delete(p.mem.readySince, name) // a restarting replica starts MinReady afresh
	}
	if p.ready(a, minReady) {
		delete(p.mem.restarts, name) // it ran for MinReady: no loop (any more)
	}
	if a.scheduled(global) {
		if _, was := p.mem.unscheduled[name]; was {
			p.mem.placed = p.now
		}
		delete(p.mem.unscheduled, name)
	} else if _, ok := p.mem.unscheduled[name]; !ok {
		p.mem.unscheduled[name] = p.now
	}
}

// restartSlack is how much longer than its RestartSec a unit must be seen
// in activating/auto-restart, without any other state seen in between,
// before that counts as one more restart: systemd waits exactly RestartSec
// there, and fleet's agent publishes a change within about a second.
const restartSlack = 3 * time.Second

// observeRestarts counts, per machine, the replica's entries into
// activating/auto-restart: a change from any other state seen at the last
// pass (or from none: first seen in it), and, since fleet's 1s state poll
// and the reconciler's poll can miss a short start-pre/running moment
// between two restarts, every stay in it longer than RestartSec plus
// restartSlack.
func (p *planner) observeRestarts(a *actualUnit) {
	name := a.name()
	byMachine := p.mem.restarts[name]
	for _, s := range a.states {
		if byMachine == nil {
			byMachine = map[string]*restartSeen{}
			p.mem.restarts[name] = byMachine
		}
		r := byMachine[s.MachineID]
		if r == nil {
			r = &restartSeen{}
			byMachine[s.MachineID] = r
		}
		state := s.SystemdActiveState + "/" + s.SystemdSubState
		entered := r.last != state
		switch {
		case state == stateAutoRestart:
			count := entered
			if !count {
				if sec, ok := restartSec(a.unit); ok && p.now.Sub(r.counted) >= sec+restartSlack {
					count = true
				}
			}
			if count {
				r.n++
				r.counted = p.now
			}
			if entered && r.inStartPost {
				r.unhealthy++
			}
			r.inStartPost = false
		case s.SystemdActiveState == "failed":
			if entered && r.inStartPost {
				r.unhealthy++
			}
			r.inStartPost = false
		case state == stateStartPost:
			r.inStartPost = true
		case s.SystemdActiveState == "deactivating":
			// on its way from a failed ExecStartPost to auto-restart, maybe
		default:
			r.inStartPost = false
		}
		r.last = state
	}
}

// systemd states the planner reads restarts and health checks from.
const (
	stateAutoRestart = "activating/auto-restart"
	stateStartPost   = "activating/start-post" // ExecStartPost: the health check, until it passes
)

// unhealthySeen is the machine where a replica was seen failing its
// health check at start (see restartSeen) since it was last ready, and
// how many times it was seen so there.
func (p *planner) unhealthySeen(a *actualUnit) (machineID string, n int) {
	for m, r := range p.mem.restarts[a.name()] {
		if r.unhealthy > n || r.unhealthy == n && n > 0 && m < machineID {
			machineID, n = m, r.unhealthy
		}
	}
	return machineID, n
}

// waitingForHealth counts the states of current replicas in
// activating/start-post: started, their health check not passed yet.
func waitingForHealth(current unitSet) int {
	n := 0
	for _, a := range current {
		for _, s := range a.states {
			if s.SystemdActiveState+"/"+s.SystemdSubState == stateStartPost && s.Hash == a.hash {
				n++
			}
		}
	}
	return n
}

// restartsSeen is the most restarts seen of a replica on one machine
// since it was last ready, and that machine.
func (p *planner) restartsSeen(a *actualUnit) (machineID string, n int) {
	for m, r := range p.mem.restarts[a.name()] {
		if r.n > n || r.n == n && n > 0 && m < machineID {
			machineID, n = m, r.n
		}
	}
	return machineID, n
}

// restartSec is the unit's RestartSec (systemd's default 100ms when it
// has none); false when the unit is not known or the value not read.
func restartSec(u *schema.Unit) (time.Duration, bool) {
	if u == nil {
		return 0, false
	}
	v := ""
	found := false
	for _, o := range u.Options {
		if o.Section == "Service" && o.Name == "RestartSec" {
			v, found = o.Value, true
		}
	}
	if !found {
		return 100 * time.Millisecond, true
	}
	return deploy.ParseTimespan(v)
}

// ready: running, and for minReady (the unit's, or MinReady) already.
func (p *planner) ready(a *actualUnit, minReady time.Duration) bool {
	t, ok := p.mem.readySince[a.name()]
	return ok && a.running() && p.now.Sub(t) >= minReady
}

// seeMachines keeps the memory of machine loss up to date: machines is
// fleet's machines (their metadata), live every machine ID fleet lists,
// actual the fleet units by Kaylee unit.
func (m *memory) seeMachines(machines []deploy.Machine, live map[string]string, actual map[string][]*actualUnit, now time.Time) {
	for _, mc := range machines {
		m.meta[mc.ID] = mc.Metadata
	}
	pinned := map[string]bool{}
	for _, as := range actual {
		for _, a := range as {
			if id := pinnedMachine(a.unit); id != "" {
				pinned[id] = true
			}
		}
	}
	for id := range pinned {
		if _, ok := live[id]; !ok {
			if _, seen := m.goneSince[id]; !seen {
				m.goneSince[id] = now
			}
		}
	}
	for id := range m.goneSince {
		if _, ok := live[id]; ok || !pinned[id] {
			delete(m.goneSince, id)
		}
	}
	for id := range m.meta {
		if _, ok := live[id]; !ok && !pinned[id] {
			delete(m.meta, id)
		}
	}
}
