package fleet

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kaylee-gitops/kaylee/store"
)

// plural is "1 restart", "2 restarts".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// whatNewDo says what the new replicas that do not run are doing, so
// that a timed-out rollout shows a replica stuck in start-pre (an image
// pull, say), restarting, or kept off its machines by a conflict. gate
// says what a replica waits for on a machine before it can start ("" for
// nothing).
func (p *planner) whatNewDo(current unitSet, desired int, global bool, gate func(machineID string) string) string {
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
		if w := p.inTheWay(a, global); w != "" {
			add(w)
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
			if g := gate(s.MachineID); g != "" && s.SystemdActiveState != "failed" {
				w += ", and " + g
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

func (p *planner) unitStatuses(actual unitSet) []store.UnitStatus {
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

// finish keeps Since across passes while the spec hash and the failed-,
// deleting-, suspended- or waiting-ness stay, stamps the time, and moves Progressed when more replicas are
// ready than at the last pass.
func (p *planner) finish(st, prev *store.Status) *store.Status {
	st.Since, st.Time = p.now, p.now
	same := func(phase string) bool { return (prev.Phase == phase) == (st.Phase == phase) }
	if prev != nil && prev.SpecHash == st.SpecHash && same(store.PhaseFailed) && same(store.PhaseDeleting) && same(store.PhaseSuspended) &&
		(prev.WaitingFor == "") == (st.WaitingFor == "") { // a rollout's time counts from its end of waiting
		st.Since = prev.Since
		st.Progressed = prev.Progressed
		if st.Ready > prev.Ready {
			st.Progressed = p.now
		}
	}
	return st
}
