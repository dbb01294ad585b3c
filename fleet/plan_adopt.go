package fleet

import (
	"fmt"
)

// Adoption (see original.go) in a rollout. The original's fleet units of
// a unit are stale units like any other: retire keeps those that serve
// while new replicas become ready (replicated units) or stops them first
// (units that cannot overlap: without replicas, machineId, global — the
// original gave those Conflicts=<prefix>:<name>:*.service, which keeps
// Kaylee's replacement off their machine anyway). maxReplicasPerHost
// counts them like Kaylee's own old replicas (see plan_perhost.go), and
// one the original rendered without replicas, now stored with replicas,
// is replaced as any old unit whose Conflicts keep every new replica off
// its machine. What differs is the status: it says the original's units
// are being replaced.

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
