package fleet

import (
	"fmt"
	"slices"

	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// maxReplicasPerHost in Kaylee's own rolling updates. A replica's
// Conflicts name its group in every spec of its unit
// (deploy.GroupConflict: <prefix>:<name>:*:<group>:*.service), so fleet
// itself holds the limit across versions: it places a new replica only on
// a machine where no replica of its group runs, old or new, and a machine
// at the limit runs one of every group. Where some machine has room, the
// rollout surges as usual and fleet puts the new replica there.
//
// On a packed cluster (every machine a new replica may run on has an old
// replica of its group: as many machines as replicas at
// maxReplicasPerHost 1, say) no new replica can start beside the old
// ones. Rather than break the limit, one old replica of its group stops
// first and the new one takes its machine, one replica at a time, never
// while a replica is on its way up or down: serving dips by one for each
// step, as the limit leaves no other way, and the status says so. A
// failed rollout brings the stopped old replicas back (restorePrevious).
// The original's units (plan_adopt.go) follow the per-host rule of
// plan_perhost.go instead.

// blockedByGroup: new replica du has no machine to land on while old
// replicas of the unit serve: the rule applies (a replicated unit with
// maxReplicasPerHost and old replicas up that are Kaylee's), and every
// machine fleet may put du on is taken by a unit it conflicts with.
func (r *rollout) blockedByGroup(du *schema.Unit) bool {
	if !r.replicated || r.u.spec.MaxReplicasPerHost <= 0 || len(r.kept) == 0 || r.perHostRule() {
		return false
	}
	if r.groupLanded == nil {
		// New replicas that fleet has not placed yet take landing
		// machines too.
		r.groupLanded = map[string]int{}
		for _, a := range r.current {
			if a.unit != nil && a.target() == targetLaunched && len(r.unitMachines(a)) == 0 {
				r.groupLanded[groupOf(r.opts.UnitPrefix, a.unit)]++
			}
		}
	}
	return len(r.landing(du)) <= r.groupLanded[groupOf(r.opts.UnitPrefix, du)]
}

// landedInGroup counts a new replica created in the pass against its
// group's landing machines: fleet puts each on another one.
func (r *rollout) landedInGroup(du *schema.Unit) {
	if r.groupLanded != nil {
		r.groupLanded[groupOf(r.opts.UnitPrefix, du)]++
	}
}

// groupOf is the landing key of a rendered replica: its group and
// MachineMetadata (those of a spread zone differ).
func groupOf(prefix string, du *schema.Unit) string {
	id, _ := deploy.ParseUnitName(prefix, du.Name)
	return fmt.Sprintf("%s\x00%v", id.Group, metadataOf(du).Machine)
}

// replaceInPlace stops the highest old replica whose machine would take
// the first blocked new replica (its group's old member there is the only
// unit in the way), once nothing is on its way up or down. The new
// replica is created at a later pass, once that machine has room (place
// finds it a landing then).
func (r *rollout) replaceInPlace(blocked []*schema.Unit) {
	if len(blocked) == 0 {
		return
	}
	du := blocked[0]
	at := fmt.Sprintf("no machine has room for %s under maxReplicasPerHost (%d): every machine it may run on has an old replica of its group",
		du.Name, r.u.spec.MaxReplicasPerHost)
	// Up or starting: a new replica with a machine that is not ready yet
	// (one without a machine is waiting for room, as du is).
	settling := r.current.count(func(a *actualUnit) bool {
		return a.target() == targetLaunched && !r.planner.ready(a, r.pol.minReady) && len(r.unitMachines(a)) > 0
	})
	stopping := r.stale.count(func(a *actualUnit) bool { return a.unit != nil && a.target() != targetLaunched })
	if r.removing || r.inFlight || r.starting > 0 || settling > 0 || stopping > 0 {
		r.notes = append(r.notes, at+": one stops for it once the replicas on their way up or down are done")
		return
	}
	// Only from full strength, and only where the rollout can end: never
	// a second replica down, nor one for a spec the machines cannot hold.
	if serving := r.ready + r.staleUp; serving < r.n {
		r.notes = append(r.notes, fmt.Sprintf("%s: no old replica stops for it while %d of %d serve", at, serving, r.n))
		return
	}
	if room, need := r.roomFor(du); room < need {
		r.notes = append(r.notes, fmt.Sprintf("%s: the machines it may run on hold only %d of the %d replicas that may run there (maxReplicasPerHost %d): add machines or lower replicas",
			at, room, need, r.u.spec.MaxReplicasPerHost))
		return
	}
	pick, on := r.inPlaceOf(du)
	if pick == nil {
		r.notes = append(r.notes, at)
		return
	}
	r.ops = append(r.ops, r.destroy(r.u.name, pick)...)
	r.removing = true
	r.staleUp--
	r.notes = append(r.notes, fmt.Sprintf("%s: %s stops on %s and the new one takes its place (serving one fewer for this step; a machine with room avoids that)",
		at, pick.name(), r.machine(on)))
}

// roomFor is how many replicas like du the live machines that match its
// MachineMetadata (a spread zone's included) hold under
// maxReplicasPerHost, and how many of the spec's replicas have that
// MachineMetadata.
func (r *rollout) roomFor(du *schema.Unit) (room, need int) {
	want := metadataOf(du)
	for _, m := range r.conflicts.live {
		if want.Matches(deploy.Machine{ID: m, Metadata: r.mem.meta[m]}) {
			room += r.u.spec.MaxReplicasPerHost
		}
	}
	for _, u := range r.d.units {
		if slices.Equal(metadataOf(u).Machine, want.Machine) {
			need++
		}
	}
	return room, need
}

// stuckByGroup are the new replicas fleet holds unplaced because every
// machine they may run on has an old replica of their group (created
// while the original's units were adopted, or before their machine left):
// they wait for replaceInPlace as those not created yet do.
func (r *rollout) stuckByGroup() []*schema.Unit {
	if !r.replicated || r.u.spec.MaxReplicasPerHost <= 0 || len(r.kept) == 0 || r.perHostRule() {
		return nil
	}
	var out []*schema.Unit
	for _, a := range r.current {
		if a.unit != nil && a.target() == targetLaunched && len(r.unitMachines(a)) == 0 && len(r.landing(a.unit)) == 0 {
			out = append(out, a.unit)
		}
	}
	return out
}

// inPlaceOf is the old replica, and its machine, whose stop lets du land:
// on a live machine that matches du's MachineMetadata, where the units du
// conflicts with are that replica alone. The highest index goes first.
func (r *rollout) inPlaceOf(du *schema.Unit) (*actualUnit, string) {
	want := metadataOf(du)
	self := &placedUnit{name: du.Name, conflicts: conflictsOf(du.Options)}
	var pick *actualUnit
	pickOn := ""
	for _, a := range r.kept {
		for _, m := range r.unitMachines(a) {
			if !want.Matches(deploy.Machine{ID: m, Metadata: r.mem.meta[m]}) || !r.onlyInTheWay(self, a, m) {
				continue
			}
			if pick == nil || a.id.Index > pick.id.Index {
				pick, pickOn = a, m
			}
		}
	}
	return pick, pickOn
}

// onlyInTheWay: on machine m, old replica a is the one unit that
// conflicts with self.
func (r *rollout) onlyInTheWay(self *placedUnit, a *actualUnit, m string) bool {
	found := false
	for _, o := range r.conflicts.on[m] {
		if o.name == self.name || !conflict(self, o) {
			continue
		}
		if o.name != a.name() {
			return false
		}
		found = true
	}
	return found
}

// metadataOf is a fleet unit's MachineMetadata (a spread zone's
// included), as a spec that Matches machines.
func metadataOf(du *schema.Unit) *deploy.Spec {
	want := &deploy.Spec{}
	for _, o := range du.Options {
		if o.Section == "X-Fleet" && o.Name == "MachineMetadata" {
			want.Machine = append(want.Machine, o.Value)
		}
	}
	return want
}
