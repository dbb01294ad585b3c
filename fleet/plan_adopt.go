package fleet

import (
	"fmt"
	"sort"

	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// Adoption (see original.go) in a rollout. The original's fleet units of
// a unit are stale units like any other: retire keeps those that serve
// while new replicas become ready (replicated units) or stops them first
// (units that cannot overlap: without replicas, machineId, global — the
// original gave those Conflicts=<prefix>:<name>:*.service, which keeps
// Kaylee's replacement off their machine anyway). Two things differ:
//
//   - maxReplicasPerHost. Kaylee's replicas of one spec conflict within
//     their group only, so an old and a new version may share a machine
//     beyond the limit while a rollout runs; the original's groups are
//     random, so nothing keeps its replicas and Kaylee's apart either.
//     While adopting, a new replica is created only when every machine it
//     may land on (its machine metadata matches, no replica of its group
//     holds it) has room under the limit, counting old and new; when one
//     has none and nothing else is on its way up or down, an original
//     replica there stops first (serving dips by one: the limit wins).
//   - the status says the original's units are being replaced.

// adopting: the unit has fleet units the original created.
func (r *rollout) adopting() bool {
	for _, a := range r.stale {
		if a.original && a.unit != nil {
			return true
		}
	}
	return false
}

// adoptionNote says what is left of the original's units.
func (r *rollout) adoptionNote() {
	up, stopping := 0, 0
	for _, a := range r.stale {
		switch {
		case !a.original || a.unit == nil:
		case a.target() == targetLaunched:
			up++
		default:
			stopping++
		}
	}
	what := "fleet unit"
	if r.replicated {
		what = "replica"
	}
	if up > 0 {
		r.notes = append(r.notes, fmt.Sprintf("replacing %s of monder/kaylee", plural(up+stopping, what)))
	} else if stopping > 0 {
		r.notes = append(r.notes, fmt.Sprintf("%s of monder/kaylee stopping", plural(stopping, "fleet unit")))
	}
}

// hostGate says whether new fleet unit du may be created now while
// adopting a replicated unit with maxReplicasPerHost: ok when every
// machine fleet may put it on has room; else full holds the machines
// without room (none when a replica's machine is not known yet: wait).
func (r *rollout) hostGate(du *schema.Unit) (ok bool, full []string) {
	limit := r.u.spec.MaxReplicasPerHost
	if !r.replicated || limit <= 0 || !r.adopting() {
		return true, nil
	}
	id, _ := deploy.ParseUnitName(r.opts.UnitPrefix, du.Name)
	count := map[string]int{}
	held := map[string]bool{} // machines holding a new replica of du's group
	for _, a := range r.u.actual {
		if a.unit == nil || a.target() != targetLaunched && !a.active() {
			continue
		}
		ms := unitMachines(a)
		if len(ms) == 0 {
			return false, nil // placed by fleet any moment now: wait
		}
		for _, m := range ms {
			count[m]++
			if !a.original && a.id.SpecHash == id.SpecHash && a.id.Group == id.Group {
				held[m] = true
			}
		}
	}
	for m := range r.machines {
		if !held[m] && r.u.spec.Matches(deploy.Machine{ID: m, Metadata: r.mem.meta[m]}) && count[m] >= limit {
			full = append(full, m)
		}
	}
	sort.Strings(full)
	return len(full) == 0, full
}

// unitMachines are the machines a fleet unit is on: where it has a state,
// and where the engine scheduled it.
func unitMachines(a *actualUnit) []string {
	var ms []string
	seen := map[string]bool{}
	for _, s := range a.states {
		if !seen[s.MachineID] {
			seen[s.MachineID] = true
			ms = append(ms, s.MachineID)
		}
	}
	if a.unit != nil && a.unit.MachineID != "" && !seen[a.unit.MachineID] {
		ms = append(ms, a.unit.MachineID)
	}
	return ms
}

// makeRoom stops one original replica that serves on a full machine, the
// highest index first, unless a replica is on its way up or down (its
// effect on the machines is not known yet).
func (r *rollout) makeRoom(full []string) {
	fullSet := map[string]bool{}
	for _, m := range full {
		fullSet[m] = true
	}
	if r.removing || r.inFlight || r.ready < len(r.current) || r.stale.count(func(a *actualUnit) bool { return a.target() != targetLaunched && a.active() }) > 0 {
		r.notes = append(r.notes, fmt.Sprintf("%s at maxReplicasPerHost (%d) counting old and new replicas: the next new replica waits",
			r.machineList(full), r.u.spec.MaxReplicasPerHost))
		return
	}
	var pick *actualUnit
	for _, a := range r.kept {
		if !a.original {
			continue
		}
		for _, m := range unitMachines(a) {
			if fullSet[m] && (pick == nil || a.id.Index > pick.id.Index) {
				pick = a
			}
		}
	}
	if pick == nil {
		return
	}
	r.ops = append(r.ops, r.destroy(r.u.name, pick)...)
	r.removing = true
	r.staleUp--
	r.notes = append(r.notes, fmt.Sprintf("%s at maxReplicasPerHost (%d) counting old and new replicas: %s stops before the next new replica starts",
		r.machineList(full), r.u.spec.MaxReplicasPerHost, pick.name()))
}

// machineList names machines for a status message.
func (r *rollout) machineList(ids []string) string {
	out := ""
	for i, id := range ids {
		if i > 0 {
			out += ", "
		}
		out += r.machine(id)
	}
	if len(ids) == 1 {
		return out + " is"
	}
	return out + " are"
}
