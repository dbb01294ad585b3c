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
}

// actualUnit is one fleet unit of a Kaylee unit as fleet reports it. unit
// is nil when only a state is left (a unit destroyed a moment ago).
type actualUnit struct {
	id     deploy.UnitName
	unit   *schema.Unit
	hash   string // unit file hash of unit's options
	states []*schema.UnitState
}

func (a *actualUnit) name() string { return a.id.String() }

func (a *actualUnit) target() string {
	if a.unit == nil {
		return ""
	}
	return a.unit.DesiredState
}

// running: fleet reports it active/running, with the submitted unit's hash,
// on every machine it is on (one for a normal unit, many for a global one).
func (a *actualUnit) running() bool {
	if len(a.states) == 0 {
		return false
	}
	for _, s := range a.states {
		if s.SystemdActiveState != "active" || s.SystemdSubState != "running" || s.Hash != a.hash {
			return false
		}
	}
	return true
}

func (a *actualUnit) runningCount() int {
	n := 0
	for _, s := range a.states {
		if s.SystemdActiveState == "active" && s.SystemdSubState == "running" && s.Hash == a.hash {
			n++
		}
	}
	return n
}

func (a *actualUnit) failedOn() (*schema.UnitState, bool) {
	for _, s := range a.states {
		if s.SystemdActiveState == "failed" {
			return s, true
		}
	}
	return nil, false
}

// active: systemd still has it up or on its way up or down.
func (a *actualUnit) active() bool {
	for _, s := range a.states {
		switch s.SystemdActiveState {
		case "active", "activating", "deactivating", "reloading":
			return true
		}
	}
	return false
}

func (a *actualUnit) scheduled(global bool) bool {
	if global {
		return len(a.states) > 0
	}
	return a.unit != nil && a.unit.MachineID != ""
}

// desiredUnits is a spec rendered, cached by its stored value.
type desiredUnits struct {
	key    string // raw JSON + restart counter
	hash   string // spec hash
	units  []*schema.Unit
	hashes map[string]string // fleet unit name → unit file hash
}

// unitInput is everything known about one Kaylee unit in a pass.
type unitInput struct {
	name    string
	spec    *deploy.Spec // nil when gone from the store
	specErr error        // the stored value does not decode: hands off
	desired *desiredUnits
	actual  []*actualUnit
	prev    *store.Status
}

// memory is what the leader remembers between passes of one term. A new
// leader starts empty: it waits MinReady afresh, which is only slower.
type memory struct {
	readySince  map[string]time.Time               // fleet unit → first seen running
	stopping    map[string]time.Time               // fleet unit → when it was set loaded
	unscheduled map[string]time.Time               // fleet unit → first seen with no machine
	failedAt    map[string]time.Time               // fleet unit of a deployed spec → when seen failed
	restarts    map[string]map[string]*restartSeen // fleet unit → machine → restarts seen
	created     map[string]time.Time               // fleet unit → when created, until seen in a state other than failed
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
		failedAt:    map[string]time.Time{},
		restarts:    map[string]map[string]*restartSeen{},
		created:     map[string]time.Time{},
	}
}

// forget drops what concerns fleet units that are gone.
func (m *memory) forget(present map[string]bool, now time.Time, keepFailed time.Duration) {
	for _, mp := range []map[string]time.Time{m.readySince, m.stopping, m.unscheduled} {
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

// planner decides, for one Kaylee unit at a time, the fleet calls of this
// pass and the unit's status. It never waits: waiting is deciding nothing
// and looking again next pass, so one slow unit holds up no other.
type planner struct {
	opts     Options
	mem      *memory
	now      time.Time
	machines map[string]string // machine ID → public IP
}

func (p *planner) plan(u *unitInput) ([]op, *store.Status) {
	st := &store.Status{Name: u.name, Units: p.unitStatuses(u.actual)}
	if u.prev != nil {
		st.Deployed = u.prev.Deployed
	}
	var ops []op
	switch {
	case u.specErr != nil:
		st.Phase = store.PhaseFailed
		st.Message = fmt.Sprintf("the stored unit is invalid; its fleet units are left as they are: %v", u.specErr)
		if u.prev != nil {
			st.SpecHash = u.prev.SpecHash
		}
		for _, a := range u.actual {
			st.Running += a.runningCount()
		}
		return nil, p.finish(st, u.prev)
	case u.spec == nil:
		if len(u.actual) == 0 {
			return nil, nil // gone: its status goes too
		}
		for _, a := range u.actual {
			ops = append(ops, p.destroy(u.name, a)...)
		}
		st.Phase = store.PhaseDeleting
		st.Message = fmt.Sprintf("removed from the store: destroying %d fleet unit(s)", len(u.actual))
		return ops, p.finish(st, u.prev)
	}

	d := u.desired
	global := u.spec.Global
	st.SpecHash = d.hash
	var current, stale []*actualUnit
	for _, a := range u.actual {
		if h, ok := d.hashes[a.name()]; ok && a.unit != nil && a.hash == h {
			current = append(current, a)
		} else {
			stale = append(stale, a)
		}
	}
	for _, a := range current {
		st.Running += a.runningCount()
		p.observe(a, global)
	}
	st.Desired = len(d.units)
	if global && len(current) == 1 && len(current[0].states) > 1 {
		st.Desired = len(current[0].states)
	}
	deployed := st.Deployed == d.hash

	// A failed rollout is held until the spec (or restart counter) changes:
	// its replicas go, the old ones stay.
	if !deployed && u.prev != nil && u.prev.Phase == store.PhaseFailed && u.prev.SpecHash == d.hash {
		for _, a := range current {
			ops = append(ops, p.destroy(u.name, a)...)
		}
		st.Phase, st.Message, st.Running = store.PhaseFailed, u.prev.Message, servingOld(stale)
		return ops, p.finish(st, u.prev)
	}
	if !deployed {
		if reason := p.rolloutFailure(u, current, global); reason != "" {
			for _, a := range current {
				ops = append(ops, p.destroy(u.name, a)...)
			}
			st.Phase = store.PhaseFailed
			st.Message = reason + "; the new replicas are removed and the previous version (if any) keeps running. Fix the unit, or run kaylee restart " + u.name + " to try again"
			st.Running = servingOld(stale)
			return ops, p.finish(st, u.prev)
		}
	}

	// Replicas of a deployed spec that failed are replaced after a pause;
	// replicas stopped by hand are started again.
	var notes []string
	for _, a := range current {
		if s, failed := p.failedOn(a); failed {
			if _, ok := p.mem.failedAt[a.name()]; !ok {
				p.mem.failedAt[a.name()] = p.now
			}
			notes = append(notes, fmt.Sprintf("replica %s failed on %s; replacing it", a.name(), p.machine(s.MachineID)))
			ops = append(ops, p.destroy(u.name, a)...)
			continue
		}
		if _, stopping := p.mem.stopping[a.name()]; !stopping && a.target() != targetLaunched {
			ops = append(ops, op{kind: opLaunch, owner: u.name, name: a.name()})
		}
		// A restarting replica is left to systemd, which keeps trying;
		// during a rollout, rolloutFailure has its threshold.
		if m, n := p.restartsSeen(a); n > 0 {
			how := plural(n, "restart") + " seen"
			if r := p.mem.restarts[a.name()][m]; r != nil && r.unhealthy > 0 {
				how += fmt.Sprintf(", %d after its health check did not pass at start", r.unhealthy)
			}
			notes = append(notes, fmt.Sprintf("replica %s on %s is restarting (%s)", a.name(), p.machine(m), how))
		}
	}

	// Old replicas. Units that cannot overlap (no replicas, global,
	// machineId) stop first; replicated ones roll, never dropping below the
	// desired count of serving replicas, with at most one extra.
	ready := 0
	for _, a := range current {
		if p.ready(a) {
			ready++
		}
	}
	n := len(d.units)
	replicated := u.spec.Replicated()
	var serving []*actualUnit
	inFlight := false
	staleUnits := 0 // stale units still in fleet (not just a state left over)
	drifted := 0    // stale units under a current name: another unit file
	for _, a := range stale {
		if a.unit != nil {
			staleUnits++
			if isDrifted(d, a) {
				drifted++
			}
		}
		if replicated && a.running() && a.target() == targetLaunched {
			serving = append(serving, a)
			continue
		}
		if a.active() {
			inFlight = true
		}
		ops = append(ops, p.destroy(u.name, a)...)
	}
	// Surplus: one old replica goes (those of an old spec first: a
	// drifted one is only replaced in place, below).
	sort.Slice(serving, func(i, j int) bool {
		if di, dj := isDrifted(d, serving[i]), isDrifted(d, serving[j]); di != dj {
			return dj
		}
		return serving[i].id.Index > serving[j].id.Index
	})
	removing := false
	if !inFlight && len(serving) > 0 && ready+len(serving) > n {
		ops = append(ops, p.destroy(u.name, serving[0])...)
		removing = true
	}

	// New replicas.
	occupied := make(map[string]bool, len(u.actual))
	for _, a := range u.actual {
		occupied[a.name()] = true
	}
	allCurrentReady := ready == len(current)
	budget, created := 0, 0
	switch {
	case len(stale) == 0:
		budget = n
	case replicated && allCurrentReady && len(current)+staleUnits < n+1:
		budget = 1
	}
	for _, du := range d.units {
		if budget == 0 {
			break
		}
		if occupied[du.Name] {
			continue
		}
		if t, ok := p.mem.failedAt[du.Name]; ok && p.now.Sub(t) < p.opts.RetryFailed {
			notes = append(notes, fmt.Sprintf("replacing %s in %s", du.Name, (p.opts.RetryFailed-p.now.Sub(t)).Round(time.Second)))
			continue
		}
		ops = append(ops, op{kind: opCreate, owner: u.name, name: du.Name, unit: du})
		p.mem.created[du.Name] = p.now
		budget--
		created++
	}

	// A fleet unit under a current name with another unit file (edited in
	// fleet, or rendered by another version of Kaylee) cannot be replaced
	// with a surge, as its replacement has its name: stop it, destroy it
	// and create it again, one replica at a time, and only while every
	// other replica serves. Units that cannot overlap were stopped above.
	if replicated && drifted > 0 && !inFlight && !removing && created == 0 && allCurrentReady && ready+len(serving) >= n {
		for _, a := range serving {
			if isDrifted(d, a) {
				ops = append(ops, p.destroy(u.name, a)...)
				break
			}
		}
	}
	if drifted > 0 {
		how := "stopping, then creating again"
		if replicated {
			how = "replacing one at a time"
		}
		notes = append(notes, fmt.Sprintf("%s under a current name with another unit file (edited in fleet, or rendered by another Kaylee version): %s",
			plural(drifted, "fleet unit"), how))
	}

	switch {
	case len(stale) == 0 && len(current) == n && ready == n:
		st.Phase, st.Deployed = store.PhaseRunning, d.hash
		st.Message = fmt.Sprintf("%d of %d running", st.Running, st.Desired)
	case len(current) == 0 && !deployed:
		st.Phase = store.PhasePending
		st.Message = "waiting to start"
		switch {
		case len(stale) > 0 && replicated:
			st.Message = "rolling out: starting the first new replica"
		case len(stale) > 0:
			st.Message = fmt.Sprintf("waiting for %d old fleet unit(s) to stop before starting the new one", len(stale))
		}
	default:
		st.Phase = store.PhaseProgressing
		st.Message = fmt.Sprintf("%d of %d running the current spec, %d ready", st.Running, st.Desired, ready)
		switch w := waitingForHealth(current); {
		case w == 1:
			st.Message += ", 1 waiting for its health check"
		case w > 1:
			st.Message += fmt.Sprintf(", %d waiting for their health checks", w)
		}
		if len(stale) > 0 {
			st.Message += fmt.Sprintf("; %d old still to replace", len(stale))
		}
	}
	if len(notes) > 0 {
		st.Message += "; " + strings.Join(notes, "; ")
	}
	return ops, p.finish(st, u.prev)
}

// isDrifted: a fleet unit that is not current but has the name of one of
// the spec's units, so another unit file.
func isDrifted(d *desiredUnits, a *actualUnit) bool {
	_, ok := d.hashes[a.name()]
	return ok && a.unit != nil && a.hash != d.hashes[a.name()]
}

// servingOld counts the replicas of an old version that run: after a
// failed rollout, Running says how many still serve.
func servingOld(stale []*actualUnit) int {
	n := 0
	for _, a := range stale {
		n += a.runningCount()
	}
	return n
}

// observe updates what is remembered about a current replica.
func (p *planner) observe(a *actualUnit, global bool) {
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
	if p.ready(a) {
		delete(p.mem.restarts, name) // it ran for MinReady: no loop (any more)
	}
	if a.scheduled(global) {
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
func waitingForHealth(current []*actualUnit) int {
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

// plural is "1 restart", "2 restarts".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// ready: running, and for MinReady already.
func (p *planner) ready(a *actualUnit) bool {
	t, ok := p.mem.readySince[a.name()]
	return ok && a.running() && p.now.Sub(t) >= p.opts.MinReady
}

// rolloutFailure says why the rollout of a spec not yet deployed failed,
// or "" while it may still succeed.
func (p *planner) rolloutFailure(u *unitInput, current []*actualUnit, global bool) string {
	// A new replica whose health check did not pass at start fails the
	// rollout at once: the check had its startPeriod, and systemd would
	// only try again (under Restart=always) with the same image.
	for _, a := range current {
		if m, n := p.unhealthySeen(a); n > 0 {
			return fmt.Sprintf("rollout of %s failed: replica %s on %s did not become healthy (its health check did not pass within startPeriod; see its journal on that machine)",
				u.desired.hash, a.name(), p.machine(m))
		}
	}
	for _, a := range current {
		if s, failed := p.failedOn(a); failed {
			return fmt.Sprintf("rollout of %s failed: replica %s failed on %s", u.desired.hash, a.name(), p.machine(s.MachineID))
		}
	}
	for _, a := range current {
		if m, n := p.restartsSeen(a); n >= p.opts.MaxRestarts {
			return fmt.Sprintf("rollout of %s failed: replica %s on %s is in a restart loop: systemd restarted it %s (activating/auto-restart; see its journal on that machine)",
				u.desired.hash, a.name(), p.machine(m), plural(n, "time"))
		}
	}
	for _, a := range current {
		if t, ok := p.mem.unscheduled[a.name()]; ok && !a.scheduled(global) && p.now.Sub(t) >= p.opts.Unschedulable {
			return fmt.Sprintf("rollout of %s failed: %s is unschedulable: no machine has been found for it in %s (check machine, machineId, maxReplicasPerHost and conflicts against the machines in fleet)",
				u.desired.hash, a.name(), p.opts.Unschedulable)
		}
	}
	if u.prev != nil && u.prev.SpecHash == u.desired.hash && u.prev.Phase != store.PhaseFailed &&
		!u.prev.Since.IsZero() && p.now.Sub(u.prev.Since) >= p.opts.RolloutTimeout {
		running := 0
		for _, a := range current {
			if a.running() {
				running++
			}
		}
		detail := ""
		if what := p.whatNewDo(current, len(u.desired.units)); what != "" {
			detail = "; " + what
		}
		return fmt.Sprintf("rollout of %s failed: not done after --rollout-timeout %s (%d of %d new replicas running%s)",
			u.desired.hash, p.opts.RolloutTimeout, running, len(u.desired.units), detail)
	}
	return ""
}

// whatNewDo says what the new replicas that do not run are doing, so
// that a timed-out rollout shows a replica stuck in start-pre (an image
// pull, say) or restarting.
func (p *planner) whatNewDo(current []*actualUnit, desired int) string {
	const most = 3
	var out []string
	more := 0
	add := func(s string) {
		if len(out) < most {
			out = append(out, s)
		} else {
			more++
		}
	}
	for _, a := range current {
		if a.running() {
			continue
		}
		if len(a.states) == 0 {
			switch {
			case a.unit == nil || a.unit.MachineID == "":
				add(a.name() + " has no machine")
			default:
				add(fmt.Sprintf("%s has no state yet on %s", a.name(), p.machine(a.unit.MachineID)))
			}
			continue
		}
		for _, s := range a.states {
			if s.SystemdActiveState == "active" && s.SystemdSubState == "running" && s.Hash == a.hash {
				continue
			}
			state := s.SystemdActiveState + "/" + s.SystemdSubState
			if state == stateStartPost {
				state += " (waiting for its health check)"
			}
			w := fmt.Sprintf("%s is %s on %s", a.name(), state, p.machine(s.MachineID))
			if s.Hash != a.hash {
				w += " with another unit file"
			}
			if r := p.mem.restarts[a.name()][s.MachineID]; r != nil && r.n > 0 {
				w += ", " + plural(r.n, "restart") + " seen"
			}
			add(w)
		}
	}
	if more > 0 {
		out = append(out, fmt.Sprintf("%d more", more))
	}
	if missing := desired - len(current); missing > 0 {
		out = append(out, fmt.Sprintf("%d not created yet", missing))
	}
	return strings.Join(out, "; ")
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

func (p *planner) machine(id string) string {
	if ip := p.machines[id]; ip != "" {
		return fmt.Sprintf("machine %s (%s)", shortID(id), ip)
	}
	return "machine " + shortID(id)
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func (p *planner) unitStatuses(actual []*actualUnit) []store.UnitStatus {
	out := make([]store.UnitStatus, 0, len(actual))
	for _, a := range actual {
		if len(a.states) == 0 {
			us := store.UnitStatus{Name: a.name()}
			if a.unit != nil {
				us.MachineID = a.unit.MachineID
				us.MachineIP = p.machines[us.MachineID]
			}
			out = append(out, us)
			continue
		}
		for _, s := range a.states {
			out = append(out, store.UnitStatus{Name: a.name(), MachineID: s.MachineID, MachineIP: p.machines[s.MachineID],
				ActiveState: s.SystemdActiveState, SubState: s.SystemdSubState})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].MachineID < out[j].MachineID
	})
	return out
}

// finish keeps Since across passes while the spec hash and the failed-ness
// stay, and stamps the time.
func (p *planner) finish(st, prev *store.Status) *store.Status {
	st.Since, st.Time = p.now, p.now
	if prev != nil && prev.SpecHash == st.SpecHash && (prev.Phase == store.PhaseFailed) == (st.Phase == store.PhaseFailed) &&
		(prev.Phase == store.PhaseDeleting) == (st.Phase == store.PhaseDeleting) {
		st.Since = prev.Since
	}
	return st
}
