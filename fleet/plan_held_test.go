package fleet

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coreos/fleet/machine"
	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/store"
)

// A replica's state vanishes from fleet (its agent was late to publish it
// again) while it stays scheduled on its live machine: the status does
// not flap. The state stands for stateHold after it was last seen, and a
// pass is asked for when it stops standing; not when the machine is gone,
// the unit moved or is stopped, was created again since, fleet's agent
// removed the state (it unloaded the unit), or the hold is over.
func TestPlanHoldsVanishedState(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v1 := storedUnit(t, `{"name":"web","replicas":3,"apps":[{"image":"docker://web:1"}]}`)
	units := render(t, &v1.Spec)
	on := []string{"m0", "m1", "m2"}
	full := func() *snapshot {
		s := (&snapshot{units: []*store.Unit{v1}, statuses: map[string]*store.Status{},
			registry: &registry{written: map[string]*store.Instance{}, left: map[string]bool{}, since: map[string]time.Time{}}}).
			on(units, on, "launched", "active", "running")
		for _, id := range on {
			s.machines = append(s.machines, machine.MachineState{ID: id})
		}
		return s
	}
	// without replica 1's state, after change (nil: none)
	vanished := func(change func(s *snapshot)) *snapshot {
		s := full()
		var keep []*schema.UnitState
		for _, st := range s.states {
			if st.Name != units[1].Name {
				keep = append(keep, st)
			}
		}
		s.states = keep
		if change != nil {
			change(s)
		}
		return s
	}
	tests := []struct {
		name     string
		at       time.Duration // of the pass without the state; the last full pass is at 20s
		snap     *snapshot
		want     string // phase and running count
		wantOps  string
		wantWake time.Duration // after t0 (0: not checked)
	}{
		{"still scheduled on its live machine: stands", 25 * time.Second, vanished(nil), "running 3", "", 20*time.Second + stateHold},
		{"stands still, the pass before the hold ends", 20*time.Second + stateHold - time.Second, vanished(nil), "running 3", "", 20*time.Second + stateHold},
		{"the hold is over", 20*time.Second + stateHold, vanished(nil), "progressing 2", "", 0},
		{"its machine is gone", 25 * time.Second, vanished(func(s *snapshot) { s.machines = s.machines[:1] }), "progressing", "", 0},
		{"fleet moved it", 25 * time.Second, vanished(func(s *snapshot) { s.fleetUnits[1].MachineID = "m0" }), "progressing 2", "", 0},
		{"it is being stopped", 25 * time.Second, vanished(func(s *snapshot) { s.fleetUnits[1].DesiredState = "loaded" }), "progressing", "launch:1", 0},
		{"fleet unscheduled it", 25 * time.Second, vanished(func(s *snapshot) { s.fleetUnits[1].MachineID = "" }), "progressing 2", "", 0},
		{"created again since it was seen", 25 * time.Second, vanished(nil), "progressing 2", "", 0},
		{"fleet's agent removed it (unloaded)", 25 * time.Second, vanished(func(s *snapshot) {
			s.removed = map[string]time.Time{units[1].Name: t0.Add(22 * time.Second)}
		}), "progressing 2", "", 0},
		{"removed on that machine", 25 * time.Second, vanished(func(s *snapshot) {
			s.removed = map[string]time.Time{units[1].Name + "/" + s.fleetUnits[1].MachineID: t0.Add(22 * time.Second)}
		}), "progressing 2", "", 0},
		{"removed before it was last seen: stands", 25 * time.Second, vanished(func(s *snapshot) {
			s.removed = map[string]time.Time{units[1].Name: t0.Add(5 * time.Second)}
		}), "running 3", "", 20*time.Second + stateHold},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pp := newPassPlanner(Options{}.withDefaults()) // MinReady 10s
			snap := full()
			settlePlan(pp, snap, t0)
			if st := settlePlan(pp, snap, t0.Add(20*time.Second)).statuses[0].status; st.Phase != store.PhaseRunning {
				t.Fatalf("before: %s %q", st.Phase, st.Message)
			}
			tc.snap.statuses, tc.snap.registry = snap.statuses, snap.registry
			if strings.HasPrefix(tc.name, "created again") { // destroyed and created under its name at 22s
				pp.mem.created[units[1].Name] = t0.Add(22 * time.Second)
			}
			plan := pp.plan(tc.snap, t0.Add(tc.at))
			st := plan.statuses[0].status
			got := fmt.Sprintf("%s %d", st.Phase, st.Running)
			if len(got) < len(tc.want) || got[:len(tc.want)] != tc.want {
				t.Errorf("status %s (%q), want %s", got, st.Message, tc.want)
			}
			if ops := opsString(plan.ops, v1.Spec.Hash(0)); ops != tc.wantOps {
				t.Errorf("ops %q, want %q", ops, tc.wantOps)
			}
			if tc.wantWake != 0 && !plan.wakeAt.Equal(t0.Add(tc.wantWake)) {
				t.Errorf("next pass asked for at %s, want %s", plan.wakeAt.Sub(t0), tc.wantWake)
			}
		})
	}
}
