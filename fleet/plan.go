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
	readySince  map[string]time.Time // fleet unit → first seen running
	stopping    map[string]time.Time // fleet unit → when it was set loaded
	unscheduled map[string]time.Time // fleet unit → first seen with no machine
	failedAt    map[string]time.Time // fleet unit of a deployed spec → when seen failed
}

func newMemory() *memory {
	return &memory{
		readySince:  map[string]time.Time{},
		stopping:    map[string]time.Time{},
		unscheduled: map[string]time.Time{},
		failedAt:    map[string]time.Time{},
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
		if s, failed := a.failedOn(); failed {
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
	for _, a := range stale {
		if a.unit != nil {
			staleUnits++
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
	if !inFlight && len(serving) > 0 && ready+len(serving) > n {
		sort.Slice(serving, func(i, j int) bool { return serving[i].id.Index > serving[j].id.Index })
		ops = append(ops, p.destroy(u.name, serving[0])...)
	}

	// New replicas.
	occupied := make(map[string]bool, len(u.actual))
	for _, a := range u.actual {
		occupied[a.name()] = true
	}
	allCurrentReady := ready == len(current)
	budget := 0
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
		budget--
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
		if len(stale) > 0 {
			st.Message += fmt.Sprintf("; %d old still to replace", len(stale))
		}
	}
	if len(notes) > 0 {
		st.Message += "; " + strings.Join(notes, "; ")
	}
	return ops, p.finish(st, u.prev)
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
	if a.running() {
		if _, ok := p.mem.readySince[name]; !ok {
			p.mem.readySince[name] = p.now
		}
		delete(p.mem.failedAt, name) // a later failure waits RetryFailed again
	} else {
		delete(p.mem.readySince, name)
	}
	if a.scheduled(global) {
		delete(p.mem.unscheduled, name)
	} else if _, ok := p.mem.unscheduled[name]; !ok {
		p.mem.unscheduled[name] = p.now
	}
}

// ready: running, and for MinReady already.
func (p *planner) ready(a *actualUnit) bool {
	t, ok := p.mem.readySince[a.name()]
	return ok && a.running() && p.now.Sub(t) >= p.opts.MinReady
}

// rolloutFailure says why the rollout of a spec not yet deployed failed,
// or "" while it may still succeed.
func (p *planner) rolloutFailure(u *unitInput, current []*actualUnit, global bool) string {
	for _, a := range current {
		if s, failed := a.failedOn(); failed {
			return fmt.Sprintf("rollout of %s failed: replica %s failed on %s", u.desired.hash, a.name(), p.machine(s.MachineID))
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
		return fmt.Sprintf("rollout of %s failed: not done after --rollout-timeout %s (%d of %d new replicas running)",
			u.desired.hash, p.opts.RolloutTimeout, running, len(u.desired.units))
	}
	return ""
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
