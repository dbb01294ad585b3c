package fleet

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// Fleet target states Kaylee sends. fleet accepts any string and a bad one
// wedges the unit, so these are the only ones used.
const (
	targetLaunched = "launched"
	targetLoaded   = "loaded"
)

type opKind int

const (
	opCreate  opKind = iota // create the unit, launched
	opLaunch                // set target launched (repair a unit stopped by hand)
	opStop                  // set target loaded: the agent stops it, keeps it loaded
	opDestroy               // destroy (only once stopped, or after StopTimeout)
)

func (k opKind) String() string {
	return [...]string{"create", "launch", "stop", "destroy"}[k]
}

// op is one fleet call.
type op struct {
	kind  opKind
	owner string // Kaylee unit
	name  string // fleet unit
	unit  *schema.Unit
	// staged: created loaded, or launched once so created (the per-host
	// rule, see plan_perhost.go), for its event.
	staged bool
}

// planner decides, for one Kaylee unit at a time, the fleet calls of this
// pass and the unit's status. It never waits: waiting is deciding nothing
// and looking again next pass, so one slow unit holds up no other.
type planner struct {
	opts     Options
	mem      *memory
	now      time.Time
	machines map[string]string // machine ID → public IP
	// conflicts: every fleet unit with its Conflicts and machines, to
	// name the unit in the way of a replica fleet does not run.
	conflicts *conflictView
	// agents: fleet's view of its machines, made when a replica first
	// needs it in this pass (plan_placeable.go).
	agents *fleetAgents
	// next is the earliest time a decision of this pass changes with no
	// change in fleet (a replica becomes ready, a failed one may be
	// replaced): the reconciler looks again then.
	next time.Time
	// events: what this pass decided that its fleet calls do not tell.
	events []store.Event
	// drain: the stops of serving replicas this pass holds (drain.go).
	drain *drainPass
	// evidence: the failed rollouts whose failing replica's evidence the
	// apply step reads (evidence.go).
	evidence []evidenceWant
}

// wakeAt asks for a pass at t.
func (p *planner) wakeAt(t time.Time) {
	if t.After(p.now) && (p.next.IsZero() || t.Before(p.next)) {
		p.next = t
	}
}

// plan is the planner's entry point: a unit whose stored value is invalid
// is left alone, a removed one is taken down, any other is rolled out
// (see rollout for the phases).
func (p *planner) plan(u *unitInput) ([]op, *store.Status) {
	var ops []op
	var st *store.Status
	switch {
	case u.suspended != nil:
		return p.planSuspended(u)
	case u.specErr != nil:
		return p.planInvalid(u)
	case u.spec == nil:
		ops, st = p.planRemoved(u)
	case u.wait != nil:
		ops, st = p.planWaiting(u)
	default:
		ops, st = p.newRollout(u).compute()
	}
	if notes := p.drainNotes(u.name); st != nil && len(notes) > 0 && st.Phase != store.PhaseFailed {
		// (A failed status's message is kept from pass to pass as it is.)
		st.Message += "; " + strings.Join(notes, "; ")
	}
	if st != nil && len(u.warnings) > 0 {
		st.Message += "; the stored JSON has fields Kaylee ignores: " + strings.Join(u.warnings, "; ")
	}
	return p.nudge(u.name, append(append(unitSet(nil), u.actual...), u.probes...), ops), st
}

// fleet's agents and engine react to a target state change through an
// etcd v2 watch that they re-create one second after each event they
// see (fleet's registry event stream), so a change made in that second
// is only acted on at their next periodic reconcile: 5s for an agent, 2s
// (engine_reconcile_interval) for the engine. Measured on fleet's own
// engine and agents: a created unit reached running after 6 to 8s this
// way, and after 3s when its target state was set again 1.2s after the
// create. So a target state fleet has not acted on within nudgeAfter is
// set again (the same value: idempotent), at most maxNudges times.
const (
	nudgeAfter = 1200 * time.Millisecond
	maxNudges  = 3
)

// nudge sets again the target states that fleet has not acted on, and
// remembers the ones this pass sets.
func (p *planner) nudge(owner string, actual unitSet, ops []op) []op {
	touched := map[string]bool{}
	for _, o := range ops {
		touched[o.name] = true
	}
	for _, a := range actual {
		sent := p.mem.sent[a.name()]
		if sent == nil || touched[a.name()] {
			continue
		}
		if a.unit == nil || a.target() != sent.target || actedOn(a, sent.target) {
			delete(p.mem.sent, a.name())
			continue
		}
		if p.now.Sub(sent.at) < nudgeAfter {
			p.wakeAt(sent.at.Add(nudgeAfter))
			continue
		}
		if sent.nudges >= maxNudges {
			continue
		}
		sent.nudges++
		sent.at = p.now
		p.wakeAt(p.now.Add(nudgeAfter))
		kind := opLaunch
		if sent.target == targetLoaded {
			kind = opStop
		}
		ops = append(ops, op{kind: kind, owner: owner, name: a.name()})
	}
	for _, o := range ops {
		target := targetLaunched
		switch {
		case o.kind == opStop, o.kind == opCreate && o.unit.DesiredState == targetLoaded:
			target = targetLoaded
		case o.kind == opDestroy:
			delete(p.mem.sent, o.name)
			continue
		}
		if s := p.mem.sent[o.name]; s == nil || s.target != target {
			p.mem.sent[o.name] = &sentTarget{target: target, at: p.now}
		}
	}
	return ops
}

// actedOn: fleet's agent has acted on the target state: for launched, a
// state of the submitted unit file in which systemd has started it (or
// failed it); for loaded, nothing left active.
func actedOn(a *actualUnit, target string) bool {
	if target == targetLoaded {
		return !a.active()
	}
	for _, s := range a.states {
		if s.Hash == a.hash && s.SystemdActiveState != "inactive" {
			return true
		}
	}
	return false
}

// planSuspended: kaylee suspend; hands off its fleet units, whatever the
// store says, until it is resumed.
func (p *planner) planSuspended(u *unitInput) ([]op, *store.Status) {
	st := p.newStatus(u)
	st.Phase = store.PhaseSuspended
	if u.prev != nil {
		st.SpecHash, st.Desired, st.Ready = u.prev.SpecHash, u.prev.Desired, u.prev.Ready
	}
	for _, a := range u.actual {
		st.Running += a.runningCount()
	}
	st.Serving = servingCount(u.actual)
	by := ""
	if u.suspended.By != "" {
		by = " by " + u.suspended.By
	}
	st.Message = fmt.Sprintf("suspended%s at %s: the scheduler leaves its fleet units as they are (a replica that fails or is destroyed is not repaired) until kaylee resume %s",
		by, u.suspended.Time.UTC().Format(time.RFC3339), u.name)
	switch {
	case u.spec == nil && u.specErr == nil:
		st.Message += "; removed from the store meanwhile: its fleet units are destroyed on resume"
	case u.desired != nil && u.desired.hash != st.SpecHash:
		st.Message += fmt.Sprintf("; the stored spec %s is rolled out on resume", u.desired.hash)
	}
	return nil, p.finish(st, u.prev)
}

// planInvalid: the stored value does not decode; hands off its fleet units.
func (p *planner) planInvalid(u *unitInput) ([]op, *store.Status) {
	st := p.newStatus(u)
	st.Phase = store.PhaseFailed
	st.Message = fmt.Sprintf("the stored unit is invalid; its fleet units are left as they are: %v", u.specErr)
	if u.prev != nil {
		st.SpecHash = u.prev.SpecHash
	}
	for _, a := range u.actual {
		st.Running += a.runningCount()
	}
	st.Serving = servingCount(u.actual)
	return nil, p.finish(st, u.prev)
}

// planRemoved: gone from the store; its fleet units go, then its status.
func (p *planner) planRemoved(u *unitInput) ([]op, *store.Status) {
	ops := p.cleanProbes(u, "", true)
	if len(u.actual) == 0 {
		return ops, nil
	}
	if len(u.dependants) > 0 {
		return ops, p.removedAfter(u)
	}
	for _, a := range u.actual {
		ops = append(ops, p.destroy(u.name, a)...)
	}
	st := p.newStatus(u)
	st.Phase = store.PhaseDeleting
	st.Serving = servingCount(u.actual)
	st.Message = fmt.Sprintf("removed from the store: destroying %d fleet unit(s)", len(u.actual))
	return ops, p.finish(st, u.prev)
}

func (p *planner) newStatus(u *unitInput) *store.Status {
	st := &store.Status{Name: u.name, Engine: u.engine, Units: p.unitStatuses(u.actual)}
	if u.prev != nil {
		st.Deployed, st.DependsOn = u.prev.Deployed, u.prev.DependsOn
	}
	if u.spec != nil {
		st.DependsOn = u.spec.DependsOn
	}
	return st
}

// policy is a unit's rollout policy: its update block over the flags.
type policy struct {
	minReady time.Duration // a new replica is ready once it ran this long
	deadline time.Duration // a rollout with no replica ready for this long fails
	surge    int           // new replicas on top of the desired count
}

func (p *planner) policyOf(s *deploy.Spec, n int) policy {
	return policy{
		minReady: s.Update.MinReadyDuration(p.opts.MinReady),
		deadline: s.Update.ProgressDeadlineDuration(p.opts.RolloutTimeout),
		surge:    s.Update.SurgeOf(n),
	}
}

// rollout is one pass over a unit with a spec: the desired fleet units
// against the actual ones. compute runs its phases in order; each reads
// what the ones before it found and appends fleet calls and notes.
type rollout struct {
	*planner
	u          *unitInput
	d          *desiredUnits
	pol        policy
	n          int  // desired fleet units
	global     bool // one fleet unit with Global=true
	rolling    bool // a rolling global unit: one fleet unit per machine
	stateful   bool // a stateful unit: one fleet unit per member, pinned
	replicated bool // old and new replicas may run side by side
	deployed   bool // the spec's rollout completed before

	current unitSet // fleet units of the desired rendering
	stale   unitSet // every other fleet unit of the unit
	ready   int     // current units ready (running for minReady)

	serving  unitSet // old replicas that still serve (replicated units)
	kept     unitSet // those of serving this pass does not stop
	inFlight bool    // an old fleet unit is on its way down
	removing bool    // this pass stops an old serving replica
	staleUp  int     // old replicas that still serve after this pass (not being stopped)
	drifted  int     // stale units under a current name: another unit file
	created  int     // new replicas created this pass

	// The per-host rule and old units in the way (plan_perhost.go):
	// room, once computed in the pass; fitElsewhere, while old units keep
	// the new replicas off their machines, how many fit elsewhere (-1:
	// none do).
	room         *hostRoom
	roomDone     bool                // room is computed (nil: the rule does not apply)
	landings     map[string][]string // landing's answers in the pass
	fitElsewhere int
	// groupLanded: new replicas created in the pass, by groupOf.
	groupLanded map[string]int
	starting    int           // replicas launched or created launched this pass
	waiting     []*actualUnit // new replicas created loaded, on a machine without room

	// primary: the ordinal a stateful unit's members are updated around
	// (update.order), -1 for none; probing: its primary probes have not
	// all answered, no member is parked (see decideOrder).
	primary int
	probing bool

	st    *store.Status
	ops   []op
	notes []string
	// failing: the replica rolloutFailure names, whose evidence tells why.
	failing *failedReplica
}

func (p *planner) newRollout(u *unitInput) *rollout {
	n := len(u.desired.units)
	return &rollout{
		planner: p, u: u, d: u.desired, n: n, pol: p.policyOf(u.spec, n),
		global: u.spec.Global && !u.spec.Rolling(), rolling: u.spec.Rolling(), stateful: u.spec.Stateful,
		replicated: u.spec.Replicated() && !u.spec.Stateful, // a member never runs twice
		st:         p.newStatus(u),
		primary:    -1, fitElsewhere: -1,
	}
}

// compute runs the phases: partition, fail (a failed rollout ends the pass),
// repair, retire, place, replaceDrifted, summarize.
func (r *rollout) compute() ([]op, *store.Status) {
	r.partition()
	if r.fail() {
		r.ops = append(r.ops, r.cleanProbes(r.u, r.d.hash, true)...)
		return r.ops, r.finish(r.st, r.u.prev)
	}
	r.repair()
	if r.rolling || r.stateful {
		r.rollSlots()
	} else {
		r.retire()
		r.place()
		r.replaceDrifted()
	}
	r.adoptionNote()
	r.summarize()
	r.ops = append(r.ops, r.cleanProbes(r.u, r.d.hash, r.st.Phase == store.PhaseRunning)...)
	return r.ops, r.finish(r.st, r.u.prev)
}

// partition splits the actual fleet units into current (the desired
// rendering) and stale ones, and observes the current ones.
func (r *rollout) partition() {
	for _, a := range r.u.actual {
		if r.d.current(a) {
			r.current = append(r.current, a)
		} else {
			r.stale = append(r.stale, a)
		}
	}
	r.st.SpecHash = r.d.hash
	for _, a := range r.current {
		r.st.Running += a.runningCount()
		r.observe(a, r.global, r.pol.minReady)
	}
	r.ready = r.current.count(func(a *actualUnit) bool { return r.planner.ready(a, r.pol.minReady) })
	for _, a := range r.current {
		if since, ok := r.mem.readySince[a.name()]; ok && a.running() {
			r.wakeAt(since.Add(r.pol.minReady))
		}
	}
	r.st.Desired = r.n
	if r.global && len(r.current) == 1 && len(r.current[0].states) > 1 {
		r.st.Desired = len(r.current[0].states)
	}
	r.st.Ready = r.ready
	r.deployed = r.st.Deployed == r.d.hash
}

// fail handles a failed rollout: one held from an earlier pass (until the
// spec or its restart counter changes) or one that failed now. Either way
// the new fleet units go and the old ones stay. It reports whether the
// rollout failed.
func (r *rollout) fail() bool {
	prev := r.u.prev
	if r.deployed {
		return false
	}
	msg := ""
	switch {
	case prev != nil && prev.Phase == store.PhaseFailed && prev.SpecHash == r.d.hash:
		msg = prev.Message
		r.st.Evidence = prev.Evidence
		if prev.Evidence == nil {
			r.askEvidence(nil) // not published yet when it failed: ask on for a while
		}
	default:
		reason := r.rolloutFailure()
		if reason == "" {
			return false
		}
		msg = reason + failTail + " and the previous version (if any) keeps running. Fix the unit, or run kaylee restart " + r.u.name + " to try again"
		if r.failing != nil {
			r.askEvidence(r.failing)
		}
	}
	kept := 0
	if r.rolling || r.stateful {
		kept = r.failSlots()
	} else {
		for _, a := range r.current {
			r.ops = append(r.ops, r.destroy(r.u.name, a)...)
		}
		r.restorePrevious()
	}
	r.st.Phase, r.st.Message, r.st.Running, r.st.Serving = store.PhaseFailed, msg, servingOld(r.stale)+kept, servingCount(r.stale)+kept
	return true
}

// restorePrevious brings the previous version (the spec last rolled out)
// back to full strength after a failed rollout, at every pass while the
// failure is held. A rollout takes old replicas down before it can know
// it will fail: retire destroys at its start every old replica that is
// not running at that moment (restarting, moved by fleet, stopped by
// hand), and one old replica goes for each new one that became ready.
// fail then removes every new replica, so without this the unit was left
// short for good. This is drift repair for the previous spec's rendering:
// a replica of it that is stopped is launched again, one that failed is
// replaced (after RetryFailed, as create pauses), one that is gone is
// created again under its name once fleet has dropped its last state.
// Safety rule 5 holds: nothing serving is touched, and the old version
// only comes back up. The surge holds: a replica is launched or created
// only while fewer fleet units of the unit than the previous spec's count
// have target launched (old or new: the new ones are stopped in this pass
// and leave room at the next), so never more than desired + maxSurge.
func (r *rollout) restorePrevious() {
	prev := r.u.previous
	if prev == nil {
		return
	}
	byName := make(map[string]*actualUnit, len(r.stale))
	for _, a := range r.stale {
		byName[a.name()] = a
	}
	room := len(prev.units) - r.u.actual.count(func(a *actualUnit) bool { return a.target() == targetLaunched })
	for _, du := range prev.units {
		a := byName[du.Name]
		switch {
		case a == nil:
			if room > 0 && r.create(du) {
				room--
			}
		case a.unit == nil:
			// Destroyed a moment ago: the name is reused once fleet has
			// dropped its state.
		case r.mem.replacing[a.name()]:
			r.ops = append(r.ops, r.destroy(r.u.name, a)...)
		default:
			if _, failed := r.failedOn(a); failed {
				if _, ok := r.mem.failedAt[a.name()]; !ok {
					r.mem.failedAt[a.name()] = r.now
				}
				r.mem.replacing[a.name()] = true
				r.ops = append(r.ops, r.destroy(r.u.name, a)...)
				continue
			}
			if a.target() != targetLaunched && room > 0 {
				room--
				delete(r.mem.stopping, a.name())
				r.ops = append(r.ops, op{kind: opLaunch, owner: r.u.name, name: a.name()})
			}
		}
	}
}

// repair replaces current replicas that failed (after a pause, see place)
// and starts those stopped by hand again; it names restarting ones.
func (r *rollout) repair() {
	slotOf := r.currentSlots()
	for _, a := range r.current {
		if s, failed := r.failedOn(a); failed {
			if _, ok := r.mem.failedAt[a.name()]; !ok {
				r.mem.failedAt[a.name()] = r.now
			}
			r.notes = append(r.notes, fmt.Sprintf("replica %s failed on %s; replacing it", a.name(), r.machine(s.MachineID)))
			r.mem.replacing[a.name()] = true
			r.ops = append(r.ops, r.destroy(r.u.name, a)...)
			continue
		}
		// Stopped by hand, or by Kaylee as an old unit that is current
		// again (a rollback to the spec it runs, before it was destroyed):
		// launch it again, in its slot once the other units there are down
		// (rollSlot stops them).
		// With maxReplicasPerHost while old replicas run, place starts it
		// once its machine has room.
		if a.target() != targetLaunched && !r.mem.replacing[a.name()] && slotOf[a].mayStart(a) && !r.perHostRule() {
			delete(r.mem.stopping, a.name())
			r.ops = append(r.ops, op{kind: opLaunch, owner: r.u.name, name: a.name()})
		}
		// A restarting replica is left to systemd, which keeps trying;
		// during a rollout, rolloutFailure has its threshold.
		if m, n := r.restartsSeen(a); n > 0 {
			how := plural(n, "restart") + " seen"
			if rs := r.mem.restarts[a.name()][m]; rs != nil && rs.unhealthy > 0 {
				how += fmt.Sprintf(", %d after its health check did not pass at start", rs.unhealthy)
			}
			note := fmt.Sprintf("replica %s on %s is restarting (%s)", a.name(), r.machine(m), how)
			if g := r.mountGate(m); g != "" {
				note += "; " + g
			}
			r.notes = append(r.notes, note)
			continue
		}
		// Not started yet: with mount services, it may be waiting for them.
		if a.target() == targetLaunched && !a.running() {
			for _, s := range a.states {
				if g := r.mountGate(s.MachineID); g != "" && s.Hash == a.hash && s.SystemdActiveState != "active" && s.SystemdActiveState != "failed" {
					r.notes = append(r.notes, fmt.Sprintf("replica %s on %s is %s/%s; %s", a.name(), r.machine(s.MachineID), s.SystemdActiveState, s.SystemdSubState, g))
				}
			}
		}
	}
}

// currentSlots is, for a unit rolled slot by slot, the slot of each
// current fleet unit (nil for any other unit).
func (r *rollout) currentSlots() map[*actualUnit]*slot {
	if !r.rolling && !r.stateful {
		return nil
	}
	slots, _ := r.slots()
	slotOf := make(map[*actualUnit]*slot, len(slots))
	for _, sl := range slots {
		if sl.cur != nil {
			slotOf[sl.cur] = sl
		}
	}
	return slotOf
}

// mountGate says what a replica of the unit waits for on a machine when the
// unit has volumes of systemd mount services: rendered units start only
// once every one of them is active there (systemd's own state, which the
// planner cannot see), "" when it has none.
func (r *rollout) mountGate(machineID string) string {
	deps := r.u.spec.MountServices()
	if len(deps) == 0 {
		return ""
	}
	all, verb := deps[0], "is"
	if n := len(deps); n > 1 {
		all, verb = strings.Join(deps[:n-1], ", ")+" and "+deps[n-1], "are"
	}
	return fmt.Sprintf("it starts only once %s %s active on %s (systemctl status %s)", all, verb, r.machine(machineID), strings.Join(deps, " "))
}

// retire takes old fleet units down. Units that cannot overlap (no
// replicas, global, machineId) stop first. Replicated ones that still
// serve are kept while needed: they go only as new replicas become ready,
// so that ready new plus serving old never drop below the desired count.
func (r *rollout) retire() {
	for _, a := range r.stale {
		if a.unit != nil && isDrifted(r.d, a) {
			r.drifted++
		}
		if r.replicated && a.running() && a.target() == targetLaunched {
			r.serving = append(r.serving, a)
			continue
		}
		if a.active() {
			r.inFlight = true
		}
		r.ops = append(r.ops, r.destroy(r.u.name, a)...)
	}
	// Surplus: those of an old spec go first, highest index first; a
	// drifted one is only replaced in place (replaceDrifted).
	sort.Slice(r.serving, func(i, j int) bool {
		if di, dj := isDrifted(r.d, r.serving[i]), isDrifted(r.d, r.serving[j]); di != dj {
			return dj
		}
		return r.serving[i].id.Index > r.serving[j].id.Index
	})
	surplus := max(min(r.ready+len(r.serving)-r.n, len(r.serving)), 0)
	for _, a := range r.serving[:surplus] {
		r.ops = append(r.ops, r.destroy(r.u.name, a)...)
		r.removing = true
	}
	r.staleUp = len(r.serving) - surplus
	r.kept = r.serving[surplus:]
	r.retireBlockers()
}

// place creates new replicas: all at once when nothing old is left, else
// within the surge: at most n + surge replicas up or starting, new ones
// and old ones that still serve (an old one being stopped no longer
// counts, as in Kubernetes' maxSurge: its stop overlaps the next start).
// A replica that failed is replaced only after RetryFailed. With
// maxReplicasPerHost, a new replica that may land on a machine without
// room is created loaded and started once its machine has room (see
// plan_perhost.go), and one whose group has an old replica on every
// machine replaces one of them in place (see plan_inplace.go).
func (r *rollout) place() {
	budget := 0
	switch {
	case len(r.stale) == 0:
		budget = r.n
	case r.replicated:
		// An old replica that drains is still up (see drain.go).
		draining := r.stale.count(func(a *actualUnit) bool { return r.draining(a.name()) })
		budget = r.n + r.pol.surge - (len(r.current) + r.staleUp + draining)
	}
	if r.fitElsewhere >= 0 {
		// Old units keep the new replicas off their machines: only those
		// that fit elsewhere are created while they serve.
		budget = min(budget, r.fitElsewhere-len(r.current))
	}
	if r.perHostRule() {
		r.launchStaged()
	}
	occupied := r.u.actual.names()
	var held []*schema.Unit    // may land on a machine without room
	var blocked []*schema.Unit // its group has an old replica on every machine it may run on
	for _, du := range r.d.units {
		if budget <= 0 {
			break
		}
		if occupied[du.Name] {
			continue
		}
		ok, landing := r.hostGate(du)
		if !ok {
			held = append(held, du) // another replica (of another group) may have room
			continue
		}
		if r.blockedByGroup(du) {
			blocked = append(blocked, du)
			continue
		}
		if r.create(du) {
			budget--
			r.landed(landing)
			r.landedInGroup(du)
		}
	}
	for _, du := range held {
		if budget <= 0 || r.leaving() {
			break
		}
		loaded := *du
		loaded.DesiredState = targetLoaded
		if r.create(&loaded) {
			budget--
		}
	}
	waiting := r.stuckByGroup()
	if budget > 0 {
		waiting = append(waiting, blocked...)
	}
	r.replaceInPlace(waiting)
	r.makeRoom()
}

// create creates a desired fleet unit, unless it failed a moment ago (a
// failed replica is replaced only after RetryFailed). It reports whether
// it did.
func (r *rollout) create(du *schema.Unit) bool {
	if t, ok := r.mem.failedAt[du.Name]; ok && r.now.Sub(t) < r.opts.RetryFailed {
		r.wakeAt(t.Add(r.opts.RetryFailed))
		r.notes = append(r.notes, fmt.Sprintf("replacing %s in %s", du.Name, (r.opts.RetryFailed-r.now.Sub(t)).Round(time.Second)))
		return false
	}
	r.ops = append(r.ops, op{kind: opCreate, owner: r.u.name, name: du.Name, unit: du, staged: du.DesiredState == targetLoaded})
	r.mem.created[du.Name] = r.now
	r.created++
	if du.DesiredState != targetLoaded {
		r.starting++
	}
	return true
}

// replaceDrifted: a fleet unit under a current name with another unit
// file (edited in fleet, or rendered by another version of Kaylee) cannot
// be replaced with a surge, as its replacement has its name: stop it,
// destroy it and create it again, one replica at a time, and only while
// every other replica serves. Units that cannot overlap were stopped by
// retire.
func (r *rollout) replaceDrifted() {
	allCurrentReady := r.ready == len(r.current)
	if r.replicated && r.drifted > 0 && !r.inFlight && !r.removing && r.created == 0 && allCurrentReady && r.ready+len(r.serving) >= r.n {
		for _, a := range r.serving {
			if isDrifted(r.d, a) {
				r.ops = append(r.ops, r.destroy(r.u.name, a)...)
				break
			}
		}
	}
	if r.drifted > 0 {
		how := "stopping, then creating again"
		if r.replicated {
			how = "replacing one at a time"
		}
		r.notes = append(r.notes, fmt.Sprintf("%s under a current name with another unit file (edited in fleet, or rendered by another Kaylee version): %s",
			plural(r.drifted, "fleet unit"), how))
	}
}

// summarize sets the phase, the replicas that serve and the message.
func (r *rollout) summarize() {
	st := r.st
	st.Serving = st.Running + servingCount(r.stale)
	down := r.stale.count(goingDown)
	switch {
	case down == len(r.stale) && len(r.current) == r.n && r.ready == r.n:
		// Rolled out: old fleet units that are still on their way down
		// (stopped, or a state fleet has not cleaned up yet) serve no more.
		st.Phase, st.Deployed = store.PhaseRunning, r.d.hash
		st.Message = fmt.Sprintf("%d of %d running", st.Running, st.Desired)
		if n := r.stale.count(inFleet); n > 0 {
			st.Message += fmt.Sprintf("; %s of the old version on its way out", plural(n, "fleet unit"))
		}
	case len(r.current) == 0 && !r.deployed:
		st.Phase = store.PhasePending
		st.Message = "waiting to start"
		switch {
		case len(r.stale) > 0 && r.replicated:
			st.Message = "rolling out: starting the first new replica"
		case len(r.stale) > 0 && r.stateful:
			// Only the members being replaced stop; the others serve.
			st.Message = fmt.Sprintf("rolling out: each member stops before its new version starts; %d of %d serving the old version",
				servingCount(r.stale), st.Desired)
		case len(r.stale) > 0:
			st.Message = fmt.Sprintf("waiting for %d old fleet unit(s) to stop before starting the new one", len(r.stale))
		}
	default:
		st.Phase = store.PhaseProgressing
		st.Message = fmt.Sprintf("%d of %d running the current spec, %d ready", st.Running, st.Desired, r.ready)
		switch w := waitingForHealth(r.current); {
		case w == 1:
			st.Message += ", 1 waiting for its health check"
		case w > 1:
			st.Message += fmt.Sprintf(", %d waiting for their health checks", w)
		}
		if len(r.stale) > 0 {
			st.Message += fmt.Sprintf("; %d old still to replace", len(r.stale))
			if st.Serving != st.Running {
				st.Message += fmt.Sprintf(", %d serving", st.Serving) // old and new
			}
		}
	}
	if st.Phase != store.PhaseRunning {
		r.notes = append(r.notes, r.conflictNotes()...)
	}
	if len(r.notes) > 0 {
		st.Message += "; " + strings.Join(r.notes, "; ")
	}
}

// rolloutFailure says why the rollout of a spec not yet deployed failed,
// or "" while it may still succeed.
func (r *rollout) rolloutFailure() string {
	hash := r.d.hash
	// A new replica whose health check did not pass at start fails the
	// rollout at once: the check had its startPeriod, and systemd would
	// only try again (under Restart=always) with the same image.
	for _, a := range r.current {
		if m, n := r.unhealthySeen(a); n > 0 {
			r.failing = &failedReplica{fleetUnit: a.name(), machine: m}
			return fmt.Sprintf("rollout of %s failed: replica %s on %s did not become healthy (its health check did not pass within startPeriod; see its journal on that machine)",
				hash, a.name(), r.machine(m))
		}
	}
	for _, a := range r.current {
		if s, failed := r.failedOn(a); failed {
			r.failing = &failedReplica{fleetUnit: a.name(), machine: s.MachineID}
			return fmt.Sprintf("rollout of %s failed: replica %s failed on %s", hash, a.name(), r.machine(s.MachineID))
		}
	}
	for _, a := range r.current {
		if m, n := r.restartsSeen(a); n >= r.opts.MaxRestarts {
			r.failing = &failedReplica{fleetUnit: a.name(), machine: m}
			msg := fmt.Sprintf("rollout of %s failed: replica %s on %s is in a restart loop: systemd restarted it %s (activating/auto-restart; see its journal on that machine)",
				hash, a.name(), r.machine(m), plural(n, "time"))
			if g := r.mountGate(m); g != "" {
				msg += "; " + g
			}
			return msg
		}
	}
	for _, a := range r.current {
		// Counted from when fleet's engine last placed a unit, if later:
		// an engine placing others is working through a backlog (3,000
		// fleet units created at once), not unable to place this one.
		if t, ok := r.mem.unscheduled[a.name()]; ok && !a.scheduled(r.global) && r.now.Sub(r.placedSince(t)) >= r.opts.Unschedulable &&
			!r.fleetCouldPlace(a.name()) {
			why := "check machine, machineId, maxReplicasPerHost and conflicts against the machines in fleet"
			if w := r.inTheWay(a, r.global); w != "" {
				why = w
			}
			return fmt.Sprintf("rollout of %s failed: %s is unschedulable: no machine has been found for it in %s (%s)",
				hash, a.name(), r.opts.Unschedulable, why)
		}
	}
	if since, ok := r.lastProgress(); ok && r.now.Sub(since) >= r.pol.deadline && !r.readySoon() && !r.progressedNow() {
		for _, a := range r.current {
			// A replica that restarted tells why none became ready.
			if m, n := r.restartsSeen(a); n > 0 {
				r.failing = &failedReplica{fleetUnit: a.name(), machine: m}
				break
			}
		}
		running := r.current.count((*actualUnit).running)
		detail := ""
		if what := r.whatNewDo(r.current, r.n, r.global, r.mountGate); what != "" {
			detail = "; " + what
		}
		return fmt.Sprintf("rollout of %s failed: no new replica became ready for %s, the progress deadline (update.progressDeadline, or the scheduler's rollout timeout) (%d of %d new replicas running%s)",
			hash, r.pol.deadline, running, r.n, detail)
	}
	return ""
}

// later is the later of two times.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// readySoon: a new replica runs and has not been watched for minReady
// yet. Past the deadline it is no sign of failure: the passes that would
// have seen it earlier were slow (hundreds of units on a loaded etcd), or
// it started just now. It fails if it stops (restarts are counted apart).
func (r *rollout) readySoon() bool {
	for _, a := range r.current {
		if a.running() && !r.planner.ready(a, r.pol.minReady) {
			return true
		}
	}
	return false
}

// progressedNow: more new replicas are ready in this pass than the last
// status said (finish moves Progressed for it). Past the deadline that is
// progress made now, not none for the deadline: passes minutes apart (1,000
// units on a loaded fleet) saw the replicas running in one pass and ready
// only in the next.
func (r *rollout) progressedNow() bool {
	prev := r.u.prev
	return prev != nil && prev.SpecHash == r.d.hash && r.ready > prev.Ready
}

// lastProgress is when the rollout last made progress: when it started,
// or when a new replica last became ready (both kept in the status, so
// they survive a change of leader).
func (r *rollout) lastProgress() (time.Time, bool) {
	prev := r.u.prev
	if prev == nil || prev.SpecHash != r.d.hash || prev.Phase == store.PhaseFailed || prev.Phase == store.PhaseSuspended || prev.Since.IsZero() ||
		prev.WaitingFor != "" { // waiting for its dependencies: the rollout starts now
		return time.Time{}, false
	}
	t := prev.Since
	if prev.Progressed.After(t) {
		t = prev.Progressed
	}
	return t, true
}

// destroy is the safe way down: set the target to loaded so the agent
// stops the unit (running ExecStop), wait until systemd has it inactive
// (at most StopTimeout), then destroy it.
func (p *planner) destroy(owner string, a *actualUnit) []op {
	if a.unit == nil {
		return nil // only a state is left: fleet is still cleaning up
	}
	name := a.name()
	if a.target() == targetLaunched {
		if p.holdStop(owner, a) {
			return nil
		}
		p.mem.stopping[name] = p.now
		return []op{{kind: opStop, owner: owner, name: name}}
	}
	t, ok := p.mem.stopping[name]
	if !ok {
		p.mem.stopping[name], t = p.now, p.now
	}
	if a.active() && p.now.Sub(t) < p.opts.StopTimeout {
		return nil
	}
	return []op{{kind: opDestroy, owner: owner, name: name}}
}
