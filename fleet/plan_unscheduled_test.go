package fleet

import (
	"strings"
	"testing"
	"time"

	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
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

// Past Unschedulable, with fleet's engine placing nothing, a replica
// fails as unschedulable only when fleet's own test (the engine's
// AbleToRun) finds no live machine for it; when one could take it,
// fleet is slow, and the progress deadline governs.
func TestPlanUnschedulableAsksFleetsTest(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	spec := func(machine ...string) *deploy.Spec {
		s := replicated(2, "docker://web:1")
		s.MaxReplicasPerHost = 1
		s.Machine = machine
		return s
	}
	other := &schema.Unit{Name: "other.service", DesiredState: "launched", MachineID: "m1",
		Options: []*schema.UnitOption{{Section: "X-Fleet", Name: "Conflicts", Value: "k2:web:*"}}}
	for _, tt := range []struct {
		name      string
		spec      *deploy.Spec
		meta      map[string]map[string]string // live machines
		placed    int                          // replicas of web fleet has placed, on m0, m1…
		extra     []*schema.Unit
		wantPhase string
		wantMsg   string
	}{
		{"a machine fits its metadata: fleet is slow, it waits", spec("role=db"),
			map[string]map[string]string{"m0": {"role": "web"}, "m1": {"role": "db"}}, 0, nil,
			store.PhaseProgressing, "0 of 2 running the current spec"},
		{"no machine has its metadata: unschedulable", spec("role=db"),
			map[string]map[string]string{"m0": {"role": "web"}, "m1": {"role": "web"}}, 0, nil,
			store.PhaseFailed, "is unschedulable: no machine has been found for it in 30s"},
		{"its other replica holds the only machine (maxReplicasPerHost 1): unschedulable", spec(),
			map[string]map[string]string{"m0": {}}, 1, nil,
			store.PhaseFailed, "is unschedulable"},
		{"a second machine is free: it waits", spec(),
			map[string]map[string]string{"m0": {}, "m1": {}}, 1, nil,
			store.PhaseProgressing, "running the current spec"},
		{"the free machine holds a unit that conflicts with it: unschedulable", spec(),
			map[string]map[string]string{"m0": {}, "m1": {}}, 1, []*schema.Unit{other},
			store.PhaseFailed, "is unschedulable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, tt.spec, 0).with(render(t, tt.spec), "launched", "", "")
			var fleetUnits []*schema.Unit
			for i, a := range w.act {
				if i >= tt.placed {
					a.unit.MachineID = ""
				}
				fleetUnits = append(fleetUnits, a.unit)
			}
			fleetUnits = append(fleetUnits, tt.extra...)
			w.prev = &store.Status{Name: "web", Phase: store.PhasePending, SpecHash: tt.spec.Hash(0), Since: now.Add(-time.Minute)}
			live := map[string]string{}
			for id := range tt.meta {
				live[id] = "10.0.0.1"
			}
			p := &planner{opts: Options{}.withDefaults(), mem: newMemory(), now: now, machines: live}
			p.mem.meta = tt.meta
			p.conflicts = newConflictView("k2", fleetUnits, nil, live)
			for _, a := range w.act[tt.placed:] {
				p.mem.unscheduled[a.name()] = now.Add(-45 * time.Second)
			}
			_, st := p.plan(w.input())
			if st.Phase != tt.wantPhase || !strings.Contains(st.Message, tt.wantMsg) {
				t.Errorf("status %s %q, want %s containing %q", st.Phase, st.Message, tt.wantPhase, tt.wantMsg)
			}
		})
	}
}
