package fleet

import (
	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// actualUnit is one fleet unit of a Kaylee unit as fleet reports it. unit
// is nil when only a state is left (a unit destroyed a moment ago).
type actualUnit struct {
	id     deploy.UnitName
	unit   *schema.Unit
	hash   string // unit file hash of unit's options
	states []*schema.UnitState
	// probe: the name of a primary probe's fleet unit (see plan_primary.go),
	// whose id is then zero; such units are only in unitInput.probes.
	probe *deploy.ProbeName
	// original: a fleet unit monder/kaylee created for the stored unit
	// (see original.go): id holds its 6-digit hash and its random group.
	original bool
	// fleetName: name(), made once by observe ("" for one made otherwise).
	fleetName string
}

func (a *actualUnit) name() string {
	if a.fleetName != "" {
		return a.fleetName
	}
	if a.probe != nil {
		return a.probe.String()
	}
	return a.id.String()
}

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
	// earlier: fleet unit name → the hash of its unit file as Kaylee
	// rendered it before it rendered the evidence step (see current).
	earlier map[string]string
	// members: for a stateful unit, the machine each member is placed on,
	// by ordinal ("": no machine for it yet; see placeMembers).
	members []string
	// zones: the spread zone of each member (nil without spread); stuck:
	// by ordinal, why a member cannot leave its gone machine (see
	// memberPlacement).
	zones []string
	stuck map[int]string
}

// unitInput is everything known about one Kaylee unit in a pass.
type unitInput struct {
	name    string
	spec    *deploy.Spec // nil when gone from the store
	specErr error        // the stored value does not decode: hands off
	// warnings: what the stored value holds that Kaylee ignores (unknown
	// fields of stored JSON), told at the end of the status message.
	warnings []string
	desired  *desiredUnits
	// previous is the rendering of the spec the unit last rolled out (its
	// status's Deployed hash, read back from its history) while another
	// one is desired; nil when there is none or it is not known. A failed
	// rollout brings it back to full strength (restorePrevious).
	previous *desiredUnits
	actual   unitSet
	// probes: the fleet units of the unit's primary probes (any rollout's).
	probes unitSet
	prev   *store.Status
	raw    []byte // the stored value
	// engine: the engine spec was given (the cluster's default, or a
	// rollback's), recorded in its history entry; "" when it names its
	// own or runs with rkt (see givenEngine).
	engine  string
	restart int64 // its restart counter
	// suspended: kaylee suspend; the scheduler changes none of its fleet units.
	suspended *store.Suspension
	// wait: the dependencies its rollout waits for (nil: none, or the
	// rollout is under way); dependants: for a removed unit, the removed
	// units that depend on it whose fleet units are not gone yet (see
	// plan_depends.go).
	wait       *depWait
	dependants []string
}

// current: a is one of the spec's fleet units with its unit file, or with
// the one Kaylee rendered before the evidence step (deploy.WithoutEvidence):
// such a unit gains the step at its unit's next rollout, and an upgrade of
// Kaylee restarts no unit for it.
func (d *desiredUnits) current(a *actualUnit) bool {
	h, ok := d.hashes[a.name()]
	return ok && a.unit != nil && (a.hash == h || a.hash == d.earlier[a.name()])
}

// isDrifted: a fleet unit that is not current but has the name of one of
// the spec's units, so another unit file.
func isDrifted(d *desiredUnits, a *actualUnit) bool {
	_, ok := d.hashes[a.name()]
	return ok && a.unit != nil && !d.current(a)
}

// servingCount counts the replicas that serve: running with their unit
// file and launched (one being stopped serves no more), as the instance
// registry lists them.
func servingCount(set unitSet) int {
	n := 0
	for _, a := range set {
		if a.target() == targetLaunched {
			n += a.runningCount()
		}
	}
	return n
}

// servingOld counts the replicas of an old version that run: after a
// failed rollout, Running says how many still serve.
func servingOld(stale unitSet) int {
	n := 0
	for _, a := range stale {
		n += a.runningCount()
	}
	return n
}

// unitSet is a list of fleet units of one Kaylee unit, in replica order.
type unitSet []*actualUnit

// filter returns the units for which keep is true.
func (s unitSet) filter(keep func(*actualUnit) bool) unitSet {
	var out unitSet
	for _, a := range s {
		if keep(a) {
			out = append(out, a)
		}
	}
	return out
}

// count returns how many units f is true of.
func (s unitSet) count(f func(*actualUnit) bool) int {
	n := 0
	for _, a := range s {
		if f(a) {
			n++
		}
	}
	return n
}

// names returns the set of the units' names.
func (s unitSet) names() map[string]bool {
	out := make(map[string]bool, len(s))
	for _, a := range s {
		out[a.name()] = true
	}
	return out
}

// inFleet: the unit is still in fleet (not just a state left over).
func inFleet(a *actualUnit) bool { return a.unit != nil }

// goingDown: an old fleet unit that serves no more: stopped (target
// loaded), or only a state left after it was destroyed, and not running.
func goingDown(a *actualUnit) bool {
	if a.unit == nil {
		return !a.running()
	}
	return a.target() != targetLaunched
}
