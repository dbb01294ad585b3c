package fleet

import (
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
)

// A created unit fleet has not started within nudgeAfter has its target
// state set again, at most maxNudges times; one fleet acted on is left.
func TestPlanNudgesFleet(t *testing.T) {
	v1 := replicated(1, "docker://web:1")
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	opts := Options{}.withDefaults()
	mem := newMemory()
	plan := func(at time.Duration, w *world) string {
		p := &planner{opts: opts, mem: mem, now: start.Add(at)}
		ops, _ := p.plan(w.input())
		return opsString(ops, w.d.hash)
	}
	empty := newWorld(t, v1, 0)
	if got := plan(0, empty); got != "create:0" {
		t.Fatalf("first pass: %q", got)
	}
	noState := func() *world { return newWorld(t, v1, 0).with(render(t, v1), "launched", "", "") }
	steps := []struct {
		at   time.Duration
		w    *world
		want string
	}{
		{500 * time.Millisecond, noState(), ""},
		{1300 * time.Millisecond, noState(), "launch:0"}, // nudge 1
		{2000 * time.Millisecond, noState(), ""},
		{2600 * time.Millisecond, noState(), "launch:0"}, // nudge 2
		{3900 * time.Millisecond, noState(), "launch:0"}, // nudge 3
		{5200 * time.Millisecond, noState(), ""},         // no more
	}
	for _, s := range steps {
		if got := plan(s.at, s.w); got != s.want {
			t.Fatalf("at %s: ops %q, want %q", s.at, got, s.want)
		}
	}

	// Started: no nudge, and the record is dropped.
	mem = newMemory()
	plan(0, empty)
	started := newWorld(t, v1, 0).with(render(t, v1), "launched", "activating", "start-pre")
	if got := plan(2*time.Second, started); got != "" {
		t.Fatalf("nudged a started unit: %q", got)
	}
	if len(mem.sent) != 0 {
		t.Fatalf("record kept for a started unit: %v", mem.sent)
	}

	// A stop fleet has not acted on is sent again.
	mem = newMemory()
	v2 := replicated(1, "docker://web:2")
	rolling := newWorld(t, v2, 0).with(render(t, v1), "launched", "active", "running").with(render(t, v2), "launched", "active", "running")
	rolling.prev = &store.Status{Name: "web", Phase: store.PhaseProgressing, SpecHash: v2.Hash(0)}
	p := &planner{opts: opts, mem: mem, now: start}
	for _, a := range rolling.act {
		mem.readySince[a.name()] = start.Add(-time.Minute)
	}
	if ops, _ := p.plan(rolling.input()); opsString(ops, rolling.d.hash) != "stop:old0" {
		t.Fatalf("rollout step: %q", opsString(ops, rolling.d.hash))
	}
	stillUp := newWorld(t, v2, 0).with(render(t, v1), "loaded", "active", "running").with(render(t, v2), "launched", "active", "running")
	stillUp.prev = rolling.prev
	if got := plan(1500*time.Millisecond, stillUp); got != "stop:old0" {
		t.Fatalf("stop not acted on after 1.5s: ops %q, want a nudge stop:old0", got)
	}
}
