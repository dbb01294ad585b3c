package fleet

import (
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
)

// A new replica fleet has not placed for Unschedulable fails the rollout,
// unless fleet's engine has placed other fleet units meanwhile: then it
// is working through a backlog (1,000 units of 3 replicas took fleet's
// engine 100 s to place on 10 machines), not unable to place this one.
func TestPlanUnschedulableWhileFleetPlaces(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v1 := replicated(3, "docker://web:1")
	for _, tt := range []struct {
		name       string
		placedAgo  time.Duration // when fleet last placed a unit; 0: never seen
		wantPhase  string
		wantMsg    string
		wantStopAt bool
	}{
		{"fleet placed nothing since: unschedulable", 0, store.PhaseFailed, "is unschedulable: no machine has been found for it in 30s", true},
		{"fleet placed a unit 40s ago, before it: unschedulable", 40 * time.Second, store.PhaseFailed, "is unschedulable: no machine has been found for it in 30s", true},
		{"fleet placed a unit 5s ago: its engine is at work, the replica waits", 5 * time.Second, store.PhaseProgressing, "0 of 3 running the current spec", false},
		{"fleet placed a unit 29s ago: waits", 29 * time.Second, store.PhaseProgressing, "0 of 3 running the current spec", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, v1, 0).with(render(t, v1), "launched", "", "")
			for _, a := range w.act {
				a.unit.MachineID = ""
			}
			w.prev = &store.Status{Name: "web", Phase: store.PhasePending, SpecHash: v1.Hash(0), Since: now.Add(-time.Minute)}
			p := &planner{opts: Options{}.withDefaults(), mem: newMemory(), now: now, machines: map[string]string{"m0": "10.0.0.1"}}
			for _, a := range w.act {
				p.mem.unscheduled[a.name()] = now.Add(-45 * time.Second)
			}
			if tt.placedAgo > 0 {
				p.mem.placed = now.Add(-tt.placedAgo)
			}
			ops, st := p.plan(w.input())
			if st.Phase != tt.wantPhase || !strings.Contains(st.Message, tt.wantMsg) {
				t.Errorf("status %s %q, want %s containing %q", st.Phase, st.Message, tt.wantPhase, tt.wantMsg)
			}
			if stops := strings.Contains(opsString(ops, w.d.hash), "stop:"); stops != tt.wantStopAt {
				t.Errorf("ops %q: stops %v, want %v", opsString(ops, w.d.hash), stops, tt.wantStopAt)
			}
		})
	}
}

// A fleet unit seen with no machine, then with one, is a placement by
// fleet's engine: the memory keeps when.
func TestObservePlacement(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v1 := replicated(1, "docker://web:1")
	w := newWorld(t, v1, 0).with(render(t, v1), "launched", "", "")
	a := w.act[0]
	p := &planner{opts: Options{}.withDefaults(), mem: newMemory(), now: now}
	a.unit.MachineID = ""
	p.observe(a, false, time.Second)
	if !p.mem.placed.IsZero() {
		t.Fatalf("a unit with no machine: placed %v, want none", p.mem.placed)
	}
	p.now = now.Add(3 * time.Second)
	a.unit.MachineID = "m0"
	p.observe(a, false, time.Second)
	if !p.mem.placed.Equal(p.now) {
		t.Fatalf("the unit got a machine: placed %v, want %v", p.mem.placed, p.now)
	}
}
