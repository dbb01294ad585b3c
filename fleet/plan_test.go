package fleet

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// world builds a plan input by hand: a spec, its rendering, and fleet
// units in given states.
type world struct {
	t    *testing.T
	spec *deploy.Spec
	d    *desiredUnits
	prev *store.Status
	act  []*actualUnit
}

func newWorld(t *testing.T, s *deploy.Spec, restart int64) *world {
	t.Helper()
	units, err := deploy.Render(s, deploy.RenderOptions{Restart: restart})
	if err != nil {
		t.Fatal(err)
	}
	d := &desiredUnits{hash: s.Hash(restart), units: units, hashes: map[string]string{}}
	for _, u := range units {
		d.hashes[u.Name] = unitHash(u.Options)
	}
	return &world{t: t, spec: s, d: d}
}

// with adds the fleet units of another rendering of the same unit (an old
// version), in state st on machine m ("" = unscheduled).
func (w *world) with(units []*schema.Unit, target, active, sub string) *world {
	for i, u := range units {
		id, ok := deploy.ParseUnitName("k2", u.Name)
		if !ok {
			w.t.Fatalf("bad name %s", u.Name)
		}
		cp := *u
		cp.DesiredState = target
		cp.MachineID = fmt.Sprintf("m%d", i)
		a := &actualUnit{id: id, unit: &cp, hash: unitHash(u.Options)}
		if active != "" {
			a.states = []*schema.UnitState{{Name: u.Name, MachineID: cp.MachineID, SystemdActiveState: active, SystemdSubState: sub, Hash: a.hash}}
		}
		w.act = append(w.act, a)
	}
	return w
}

func (w *world) input() *unitInput {
	return &unitInput{name: w.spec.Name, spec: w.spec, desired: w.d, actual: w.act, prev: w.prev}
}

func replicated(n int, image string) *deploy.Spec {
	return &deploy.Spec{Name: "web", Replicas: n, Apps: []deploy.App{{Image: image}}}
}

func render(t *testing.T, s *deploy.Spec) []*schema.Unit {
	units, err := deploy.Render(s, deploy.RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return units
}

// opsString is "create:0 stop:old1" and so on: kind and the index, with
// "old" for units of another hash.
func opsString(ops []op, hash string) string {
	var out []string
	for _, o := range ops {
		id, _ := deploy.ParseUnitName("k2", o.name)
		tag := fmt.Sprint(id.Index)
		if id.SpecHash != hash {
			tag = "old" + tag
		}
		out = append(out, o.kind.String()+":"+tag)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func TestPlanUnit(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	opts := Options{}.withDefaults()
	v1 := replicated(3, "docker://web:1")
	v2 := replicated(3, "docker://web:2")
	single1 := &deploy.Spec{Name: "web", Apps: []deploy.App{{Image: "docker://web:1"}}}
	single2 := &deploy.Spec{Name: "web", Apps: []deploy.App{{Image: "docker://web:2"}}}
	tests := []struct {
		name      string
		world     func(t *testing.T) *world
		readyAgo  time.Duration // how long current running replicas have been running
		wantOps   string
		wantPhase string
		wantMsg   string
	}{{
		name:      "nothing in fleet: create every replica at once",
		world:     func(t *testing.T) *world { return newWorld(t, v1, 0) },
		wantOps:   "create:0 create:1 create:2",
		wantPhase: store.PhasePending,
	}, {
		name: "all running and ready: nothing to do",
		world: func(t *testing.T) *world {
			return newWorld(t, v1, 0).with(render(t, v1), "launched", "active", "running")
		},
		readyAgo: time.Minute, wantOps: "", wantPhase: store.PhaseRunning,
	}, {
		name: "running but not for MinReady yet: still progressing",
		world: func(t *testing.T) *world {
			return newWorld(t, v1, 0).with(render(t, v1), "launched", "active", "running")
		},
		readyAgo: time.Second, wantOps: "", wantPhase: store.PhaseProgressing,
	}, {
		name: "update starts: one new replica, no old one touched",
		world: func(t *testing.T) *world {
			return newWorld(t, v2, 0).with(render(t, v1), "launched", "active", "running")
		},
		wantOps: "create:0", wantPhase: store.PhasePending,
	}, {
		name: "new replica running but not ready: keep every old one",
		world: func(t *testing.T) *world {
			return newWorld(t, v2, 0).with(render(t, v1), "launched", "active", "running").with(render(t, v2)[:1], "launched", "active", "running")
		},
		readyAgo: time.Second, wantOps: "", wantPhase: store.PhaseProgressing,
	}, {
		name: "new replica ready: stop one old one, start no other",
		world: func(t *testing.T) *world {
			return newWorld(t, v2, 0).with(render(t, v1), "launched", "active", "running").with(render(t, v2)[:1], "launched", "active", "running")
		},
		readyAgo: time.Minute, wantOps: "stop:old2", wantPhase: store.PhaseProgressing,
	}, {
		name: "old replica stopped: destroy it; surge still used, no create",
		world: func(t *testing.T) *world {
			return newWorld(t, v2, 0).with(render(t, v1)[:2], "launched", "active", "running").
				with(render(t, v1)[2:], "loaded", "inactive", "dead").with(render(t, v2)[:1], "launched", "active", "running")
		},
		readyAgo: time.Minute, wantOps: "destroy:old2", wantPhase: store.PhaseProgressing,
	}, {
		name: "old replica still stopping: wait, do not stop another",
		world: func(t *testing.T) *world {
			return newWorld(t, v2, 0).with(render(t, v1)[:2], "launched", "active", "running").
				with(render(t, v1)[2:], "loaded", "active", "running").with(render(t, v2)[:1], "launched", "active", "running")
		},
		readyAgo: time.Minute, wantOps: "", wantPhase: store.PhaseProgressing,
	}, {
		name: "one old gone: start the next new replica",
		world: func(t *testing.T) *world {
			return newWorld(t, v2, 0).with(render(t, v1)[:2], "launched", "active", "running").with(render(t, v2)[:1], "launched", "active", "running")
		},
		readyAgo: time.Minute, wantOps: "create:1", wantPhase: store.PhaseProgressing,
	}, {
		name: "all new ready, one old left: stop it",
		world: func(t *testing.T) *world {
			return newWorld(t, v2, 0).with(render(t, v1)[:1], "launched", "active", "running").with(render(t, v2), "launched", "active", "running")
		},
		readyAgo: time.Minute, wantOps: "stop:old0", wantPhase: store.PhaseProgressing,
	}, {
		name: "new replica failed: rollout fails, new ones stopped, old untouched",
		world: func(t *testing.T) *world {
			return newWorld(t, v2, 0).with(render(t, v1), "launched", "active", "running").with(render(t, v2)[:1], "launched", "failed", "failed")
		},
		wantOps: "stop:0", wantPhase: store.PhaseFailed, wantMsg: "replica k2:web:",
	}, {
		name: "failed rollout held: failed replicas destroyed, nothing created",
		world: func(t *testing.T) *world {
			w := newWorld(t, v2, 0).with(render(t, v1), "launched", "active", "running").with(render(t, v2)[:1], "loaded", "failed", "failed")
			w.prev = &store.Status{Name: "web", Phase: store.PhaseFailed, SpecHash: v2.Hash(0), Deployed: v1.Hash(0), Message: "boom"}
			return w
		},
		wantOps: "destroy:0", wantPhase: store.PhaseFailed, wantMsg: "boom",
	}, {
		name: "restart counter changed: a held failure is retried",
		world: func(t *testing.T) *world {
			w := newWorld(t, v2, 1).with(render(t, v1), "launched", "active", "running")
			w.prev = &store.Status{Name: "web", Phase: store.PhaseFailed, SpecHash: v2.Hash(0), Deployed: v1.Hash(0), Message: "boom"}
			return w
		},
		wantOps: "create:0", wantPhase: store.PhasePending,
	}, {
		name: "rollout timeout",
		world: func(t *testing.T) *world {
			w := newWorld(t, v2, 0).with(render(t, v1), "launched", "active", "running").with(render(t, v2)[:1], "launched", "activating", "start")
			w.prev = &store.Status{Name: "web", Phase: store.PhaseProgressing, SpecHash: v2.Hash(0), Since: now.Add(-6 * time.Minute)}
			return w
		},
		wantOps: "stop:0", wantPhase: store.PhaseFailed, wantMsg: "--rollout-timeout 5m0s",
	}, {
		name: "a replica of the deployed spec failed: replaced, not a failed rollout",
		world: func(t *testing.T) *world {
			w := newWorld(t, v1, 0).with(render(t, v1)[:2], "launched", "active", "running").with(render(t, v1)[2:], "launched", "failed", "failed")
			w.prev = &store.Status{Name: "web", Phase: store.PhaseRunning, SpecHash: v1.Hash(0), Deployed: v1.Hash(0)}
			return w
		},
		readyAgo: time.Minute, wantOps: "stop:2", wantPhase: store.PhaseProgressing, wantMsg: "replacing it",
	}, {
		name: "drift: a replica stopped by hand is launched again",
		world: func(t *testing.T) *world {
			w := newWorld(t, v1, 0).with(render(t, v1)[:2], "launched", "active", "running").with(render(t, v1)[2:], "loaded", "inactive", "dead")
			w.prev = &store.Status{Name: "web", Phase: store.PhaseRunning, SpecHash: v1.Hash(0), Deployed: v1.Hash(0)}
			return w
		},
		readyAgo: time.Minute, wantOps: "launch:2", wantPhase: store.PhaseProgressing,
	}, {
		name: "drift: a replica changed by hand is replaced",
		world: func(t *testing.T) *world {
			w := newWorld(t, v1, 0).with(render(t, v1), "launched", "active", "running")
			w.act[1].hash = "edited"
			w.prev = &store.Status{Name: "web", Phase: store.PhaseRunning, SpecHash: v1.Hash(0), Deployed: v1.Hash(0)}
			return w
		},
		readyAgo: time.Minute, wantOps: "stop:1", wantPhase: store.PhaseProgressing,
	}, {
		name: "no replicas: the old one stops before the new one is created",
		world: func(t *testing.T) *world {
			return newWorld(t, single2, 0).with(render(t, single1), "launched", "active", "running")
		},
		wantOps: "stop:old0", wantPhase: store.PhasePending, wantMsg: "waiting for 1 old",
	}, {
		name: "no replicas: old one stopped and destroyed, its state lingers: wait",
		world: func(t *testing.T) *world {
			w := newWorld(t, single2, 0).with(render(t, single1), "loaded", "inactive", "dead")
			w.act[0].unit = nil
			return w
		},
		wantOps: "", wantPhase: store.PhasePending,
	}, {
		name: "scale down 3 → 1: remove old ones one at a time first",
		world: func(t *testing.T) *world {
			return newWorld(t, replicated(1, "docker://web:2"), 0).with(render(t, v1), "launched", "active", "running")
		},
		wantOps: "stop:old2", wantPhase: store.PhasePending,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tt.world(t)
			p := &planner{opts: opts, mem: newMemory(), now: now, machines: map[string]string{"m0": "10.0.0.1"}}
			for _, a := range w.act {
				if a.running() {
					p.mem.readySince[a.name()] = now.Add(-tt.readyAgo)
				}
			}
			ops, st := p.plan(w.input())
			if got := opsString(ops, w.d.hash); got != tt.wantOps {
				t.Errorf("ops = %q, want %q", got, tt.wantOps)
			}
			if st.Phase == store.PhaseFailed && st.Running != 3 {
				t.Errorf("failed status says %d running; the 3 old replicas serve", st.Running)
			}
			if st.Phase != tt.wantPhase || !strings.Contains(st.Message, tt.wantMsg) {
				t.Errorf("status = %s %q, want %s containing %q", st.Phase, st.Message, tt.wantPhase, tt.wantMsg)
			}
		})
	}
}

// A unit gone from the store is stopped, then destroyed; a unit whose
// stored value is broken is left alone.
func TestPlanPruneAndHandsOff(t *testing.T) {
	now := time.Now()
	v1 := replicated(2, "docker://web:1")
	w := newWorld(t, v1, 0).with(render(t, v1)[:1], "launched", "active", "running").with(render(t, v1)[1:], "loaded", "inactive", "dead")
	p := &planner{opts: Options{}.withDefaults(), mem: newMemory(), now: now}

	ops, st := p.plan(&unitInput{name: "web", actual: w.act})
	if got := opsString(ops, v1.Hash(0)); got != "destroy:1 stop:0" || st.Phase != store.PhaseDeleting {
		t.Fatalf("prune: ops %q, status %+v", got, st)
	}
	ops, st = p.plan(&unitInput{name: "web", actual: w.act, specErr: fmt.Errorf("bad JSON")})
	if len(ops) != 0 || st.Phase != store.PhaseFailed || !strings.Contains(st.Message, "left as they are: bad JSON") || st.Running != 1 {
		t.Fatalf("broken value: ops %v, status %+v", ops, st)
	}
	if ops, st := p.plan(&unitInput{name: "web"}); len(ops) != 0 || st != nil {
		t.Fatalf("gone everywhere: ops %v, status %+v", ops, st)
	}
}

// A failed replica of a deployed spec is replaced after RetryFailed, and
// so is the next failure of its replacement: no tight restart loop.
func TestPlanReplacesFailedReplicaWithPause(t *testing.T) {
	v1 := replicated(1, "docker://web:1")
	opts := Options{RetryFailed: time.Minute}.withDefaults()
	mem := newMemory()
	now := time.Now()
	prev := &store.Status{Name: "web", Phase: store.PhaseRunning, SpecHash: v1.Hash(0), Deployed: v1.Hash(0)}
	step := func(at time.Duration, w *world) string {
		w.prev = prev
		p := &planner{opts: opts, mem: mem, now: now.Add(at)}
		ops, _ := p.plan(w.input())
		return opsString(ops, w.d.hash)
	}
	failed := func() *world { return newWorld(t, v1, 0).with(render(t, v1), "launched", "failed", "failed") }
	gone := func() *world { return newWorld(t, v1, 0) }
	running := func() *world { return newWorld(t, v1, 0).with(render(t, v1), "launched", "active", "running") }
	for _, s := range []struct {
		at    time.Duration
		world *world
		want  string
	}{
		{0, failed(), "stop:0"},
		{time.Second, gone(), ""},              // destroyed; waiting out the pause
		{61 * time.Second, gone(), "create:0"}, // pause over
		{70 * time.Second, running(), ""},      // runs again: the pause is forgotten
		{80 * time.Second, failed(), "stop:0"}, // fails again
		{81 * time.Second, gone(), ""},         // a new pause, not an instant retry
		{141 * time.Second, gone(), "create:0"},
	} {
		if got := step(s.at, s.world); got != s.want {
			t.Fatalf("at %s: ops %q, want %q", s.at, got, s.want)
		}
	}
}
