package fleet

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kaylee-gitops/kaylee/store"
)

// A unit's dependsOn holds its rollout (its first start and every
// update, restarts too) until each dependency runs its current spec: its
// status (the last pass's, read with the snapshot) is running for the
// hash this pass renders of its stored spec, so every replica of it is
// ready (health checked when it has a check). A rollout that is under
// way (a fleet unit of the new spec exists) is not held again, and a
// deployed spec's drift repair is never held. While it waits, the
// unit's status is pending with the reason, its old replicas (of an
// update) keep serving untouched, and no rollout time runs. A failed
// dependency holds it with the dependency's message. A removed unit is
// destroyed only once the removed units that depended on it (as their
// status remembers) are gone.

// depWait is why a unit's rollout waits: the dependencies it waits for
// and the message.
type depWait struct {
	on  []string
	msg string
}

// dependencyGates sets the wait of each unit whose rollout its
// dependencies hold, and the dependants of each removed unit.
func dependencyGates(inputs map[string]*unitInput) {
	var removed map[string][]string
	for _, in := range inputs {
		in.wait, in.dependants = nil, nil
		switch {
		case in.suspended != nil || in.specErr != nil:
		case in.spec == nil:
			if removed == nil {
				removed = removedByDependency(inputs)
			}
			in.dependants = removedDependants(in.name, inputs, removed[in.name])
		case in.desired != nil && len(in.spec.DependsOn) > 0 && !rolloutBegun(in):
			in.wait = waitFor(in, inputs)
		}
	}
}

// rolloutBegun: the desired spec is deployed (what is left is drift
// repair), or a fleet unit of it exists.
func rolloutBegun(in *unitInput) bool {
	if in.prev != nil && in.prev.Deployed == in.desired.hash {
		return true
	}
	for _, a := range in.actual {
		if in.desired.current(a) {
			return true
		}
	}
	return false
}

// waitFor says what in's rollout waits for, nil for nothing: a failed
// dependency holds it ("held: dependency db failed: …"), one not done
// makes it wait ("waiting for db (progressing: 1 of 3 running)").
func waitFor(in *unitInput, inputs map[string]*unitInput) *depWait {
	var held, waiting, on []string
	for _, name := range in.spec.DependsOn {
		dep := inputs[name]
		var st *store.Status
		if dep != nil {
			st = dep.prev
		}
		switch {
		case dep == nil || dep.spec == nil && dep.specErr == nil:
			waiting = append(waiting, name+" (no unit "+name+" is stored)")
		case st != nil && st.Phase == store.PhaseFailed:
			held = append(held, fmt.Sprintf("dependency %s failed: %s", name, st.Message))
		case dep.specErr != nil:
			held = append(held, fmt.Sprintf("dependency %s failed: its stored unit is invalid: %v", name, dep.specErr))
		case st == nil:
			waiting = append(waiting, name+" (not started yet)")
		case st.Phase == store.PhaseRunning && dep.desired != nil && st.SpecHash == dep.desired.hash:
			continue
		default:
			waiting = append(waiting, fmt.Sprintf("%s (%s: %s)", name, st.Phase, firstClause(st.Message)))
		}
		on = append(on, name)
	}
	var msg string
	switch {
	case len(held) > 0:
		msg = "held: " + strings.Join(held, "; ")
	case len(waiting) > 0:
		msg = "waiting for " + strings.Join(waiting, " and ")
	default:
		return nil
	}
	return &depWait{on: on, msg: msg}
}

// firstClause is a status message up to its first "; ", at most 100
// bytes: the gist of a dependency's state.
func firstClause(msg string) string {
	msg, _, _ = strings.Cut(msg, "; ")
	if len(msg) > 100 {
		msg = msg[:100] + "…"
	}
	return msg
}

// removedByDependency indexes, once per pass, the removed units whose
// fleet units are not all gone by each name their last status says they
// depend on (looking them up for each removed unit among every unit cost
// removed units × units: a source pruned of 1,000 units).
func removedByDependency(inputs map[string]*unitInput) map[string][]string {
	out := map[string][]string{}
	for other, in := range inputs {
		if in.spec != nil || in.specErr != nil || in.prev == nil || len(in.actual) == 0 {
			continue
		}
		for i, dep := range in.prev.DependsOn {
			if !slices.Contains(in.prev.DependsOn[:i], dep) {
				out[dep] = append(out[dep], other)
			}
		}
	}
	return out
}

// removedDependants names the removed units, their fleet units not all
// gone, whose last status says they depend on name (candidates, from
// removedByDependency); a dependant that name itself (through removed
// units) depends on is left out, so that a cycle (written to the store by
// hand) cannot hold a removal for ever.
func removedDependants(name string, inputs map[string]*unitInput, candidates []string) []string {
	var out []string
	for _, other := range candidates {
		if other != name && !removedDependsOn(name, other, inputs) {
			out = append(out, other)
		}
	}
	slices.Sort(out)
	return out
}

// removedDependsOn: from removed unit `from`, following the dependsOn of
// removed units, `to` is reached.
func removedDependsOn(from, to string, inputs map[string]*unitInput) bool {
	seen := map[string]bool{from: true}
	next := []string{from}
	for len(next) > 0 {
		n := next[0]
		next = next[1:]
		in := inputs[n]
		if in == nil || in.spec != nil || in.prev == nil {
			continue
		}
		for _, dep := range in.prev.DependsOn {
			if dep == to {
				return true
			}
			if !seen[dep] {
				seen[dep] = true
				next = append(next, dep)
			}
		}
	}
	return false
}

// planWaiting: the unit's rollout waits for its dependencies. Nothing of
// it changes in fleet: the old version's replicas (of an update) keep
// serving as they are.
func (p *planner) planWaiting(u *unitInput) ([]op, *store.Status) {
	st := p.newStatus(u)
	st.Phase, st.SpecHash, st.Desired = store.PhasePending, u.desired.hash, len(u.desired.units)
	st.WaitingFor = strings.Join(u.wait.on, ",")
	st.Serving = servingCount(u.actual)
	st.Message = u.wait.msg
	if len(u.actual) > 0 {
		st.Message += fmt.Sprintf("; the old version keeps running (%d serving) until then", st.Serving)
	}
	return nil, p.finish(st, u.prev)
}

// removedAfter: a removed unit whose removed dependants still have fleet
// units waits for them to go first.
func (p *planner) removedAfter(u *unitInput) *store.Status {
	st := p.newStatus(u)
	st.Phase = store.PhaseDeleting
	st.Serving = servingCount(u.actual)
	for _, a := range u.actual {
		st.Running += a.runningCount()
	}
	st.Message = fmt.Sprintf("removed from the store: its %d fleet unit(s) are destroyed once those of %s, which depended on it, are gone",
		len(u.actual), strings.Join(u.dependants, ", "))
	return p.finish(st, u.prev)
}
