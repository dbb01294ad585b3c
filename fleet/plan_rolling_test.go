package fleet

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/store"
)

// servingMachines counts the machines running any version of the unit,
// and reports a machine running two of its fleet units at once.
func servingMachines(v fleetView) (int, string) {
	per := perMachine(v)
	for m, n := range per {
		if n > 1 {
			return len(per), fmt.Sprintf("machine %s runs %d fleet units of the unit", m, n)
		}
	}
	return len(per), ""
}

// On fleet's engine and agents: a rolling global unit on 3 machines is
// updated one machine at a time (a sampler never sees fewer than 2
// machines serving, nor two versions on one machine); a machine that
// leaves loses it and gets it back when it joins again; an update that
// fails leaves every machine on the old version.
func TestRollingGlobalOnFleet(t *testing.T) {
	t.Parallel() // its own etcd and fleet (newHarness): it waits on fleet's engine, not the CPU
	h := newHarness(t, fleetsim.Machines(3, map[string]string{"role": "edge"}))
	h.serve(h.api, testOptions)
	ctx := context.Background()
	spec := func(image string) *deploy.Spec {
		return &deploy.Spec{Name: "router", Global: true, Machine: []string{"role=edge"}, Apps: []deploy.App{{Image: image}},
			Update: &deploy.Update{Strategy: deploy.StrategyRolling}}
	}
	v1 := h.put(spec("docker://router:1"))
	st := h.waitStatus("router", store.PhaseRunning, v1, 60*time.Second)
	if v := h.view("router"); v.runningWithHash(v1) != 3 || len(v.units) != 3 || st.Desired != 3 {
		t.Fatalf("first rollout: %v, status %+v", v, st)
	}
	if n, msg := servingMachines(h.view("router")); n != 3 || msg != "" {
		t.Fatalf("machines serving: %d %s", n, msg)
	}

	least := 3
	check := h.sample("router", func(v fleetView) string {
		n, msg := servingMachines(v)
		least = min(least, n)
		if msg != "" {
			return msg + ": " + v.String()
		}
		if n < 2 {
			return fmt.Sprintf("only %d machine(s) serving: %v", n, v)
		}
		return ""
	})
	v2 := h.put(spec("docker://router:2"))
	h.waitStatus("router", store.PhaseRunning, v2, 90*time.Second)
	if msg := check(); msg != "" {
		t.Fatalf("rolling update of a global unit: %s", msg)
	}
	if least != 2 {
		t.Errorf("at least %d machines served during the update; with maxUnavailable 1 one machine at a time is replaced (want 2)", least)
	}
	h.waitUnits("router", v2, 3, 30*time.Second)

	// A machine leaves: its fleet unit goes. It joins again: it gets one.
	gone := h.cluster.Machines()[2].ID()
	if err := h.cluster.Kill(gone); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() (bool, string) {
		st := h.status("router")
		v := h.view("router")
		return st != nil && st.Desired == 2 && len(v.units) == 2 && v.runningWithHash(v2) == 2, fmt.Sprintf("%v %+v", v, st)
	})
	if err := h.cluster.Revive(ctx, gone); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() (bool, string) {
		v := h.view("router")
		for _, ms := range v.running {
			for _, m := range ms {
				if m == gone {
					return len(v.units) == 3 && v.runningWithHash(v2) == 3, v.String()
				}
			}
		}
		return false, v.String()
	})

	// An update that crash-loops fails on the first machine; that machine
	// runs the old version again, and so do the others.
	check = h.sample("router", func(v fleetView) string {
		if n, msg := servingMachines(v); msg != "" || n < 2 {
			return fmt.Sprintf("%d serving %s: %v", n, msg, v)
		}
		return ""
	})
	bad := spec("docker://sim-fail/router")
	badHash := h.put(bad)
	st = h.waitStatus("router", store.PhaseFailed, badHash, 60*time.Second)
	if !strings.Contains(st.Message, "restart loop") && !strings.Contains(st.Message, "failed on") {
		t.Fatalf("failed status: %q", st.Message)
	}
	eventually(t, 60*time.Second, func() (bool, string) {
		v := h.view("router")
		return v.runningWithHash(v2) == 3 && len(v.units) == 3, v.String()
	})
	if msg := check(); msg != "" {
		t.Fatalf("failed rolling update: %s", msg)
	}
}

// rollingWorld is a world of a rolling global unit on machines m0..m(n-1).
func rollingWorld(t *testing.T, s *deploy.Spec, n int) (*world, func(*deploy.Spec) []*schema.Unit) {
	t.Helper()
	var ms []deploy.Machine
	for i := range n {
		ms = append(ms, deploy.Machine{ID: fmt.Sprintf("m%d", i)})
	}
	renderOn := func(s *deploy.Spec) []*schema.Unit {
		units, err := deploy.Render(s, deploy.RenderOptions{Machines: ms})
		if err != nil {
			t.Fatal(err)
		}
		return units
	}
	units := renderOn(s)
	d := &desiredUnits{hash: s.Hash(0), units: units, hashes: map[string]string{}}
	for _, u := range units {
		d.hashes[u.Name] = unitHash(u.Options)
	}
	return &world{t: t, spec: s, d: d}, renderOn
}

// The phases of a rolling global unit, one machine at a time (the op
// notation's index is the machine: units render in machine order).
func TestPlanRollingGlobal(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	opts := Options{}.withDefaults()
	spec := func(image string, unavailable deploy.Amount) *deploy.Spec {
		return &deploy.Spec{Name: "edge", Global: true, Apps: []deploy.App{{Image: image}},
			Update: &deploy.Update{Strategy: deploy.StrategyRolling, MaxUnavailable: unavailable}}
	}
	v1, v2, v2two := spec("docker://edge:1", ""), spec("docker://edge:2", ""), spec("docker://edge:2", "2")
	v3 := spec("docker://edge:3", "")
	h1, h2, h3 := v1.Hash(0), v2.Hash(0), v3.Hash(0)
	// machine: name the ops by machine (m0 → "0"), old ones "old0".
	machineOps := func(ops []op, w *world) string {
		var out []string
		for _, o := range ops {
			tag := ""
			for _, a := range w.act {
				if a.name() == o.name && a.unit != nil {
					tag = pinnedMachine(a.unit)
					if a.id.SpecHash != w.d.hash {
						tag = "old" + tag
					}
				}
			}
			if o.unit != nil {
				tag = pinnedMachine(o.unit)
			}
			out = append(out, o.kind.String()+":"+tag)
		}
		sort.Strings(out)
		return strings.Join(out, " ")
	}
	tests := []struct {
		name  string
		world func(t *testing.T) *world
		want  string
		phase string
	}{{
		name: "first rollout: every machine at once",
		world: func(t *testing.T) *world {
			w, _ := rollingWorld(t, v1, 3)
			return w
		},
		want: "create:m0 create:m1 create:m2", phase: store.PhasePending,
	}, {
		name: "update: park the old unit of one machine",
		world: func(t *testing.T) *world {
			w, on := rollingWorld(t, v2, 3)
			return w.with(on(v1), "launched", "active", "running")
		},
		want: "stop:oldm0", phase: store.PhasePending,
	}, {
		name: "maxUnavailable 2: two machines at once",
		world: func(t *testing.T) *world {
			w, on := rollingWorld(t, v2two, 3)
			return w.with(on(v1), "launched", "active", "running")
		},
		want: "stop:oldm0 stop:oldm1", phase: store.PhasePending,
	}, {
		name: "parked and still stopping: wait, touch no other machine",
		world: func(t *testing.T) *world {
			w, on := rollingWorld(t, v2, 3)
			return w.with(on(v1)[:1], "loaded", "deactivating", "stop-sigterm").with(on(v1)[1:], "launched", "active", "running")
		},
		want: "", phase: store.PhasePending,
	}, {
		name: "parked and down: create the new unit on that machine, keep the old one loaded",
		world: func(t *testing.T) *world {
			w, on := rollingWorld(t, v2, 3)
			return w.with(on(v1)[:1], "loaded", "inactive", "dead").with(on(v1)[1:], "launched", "active", "running")
		},
		want: "create:m0", phase: store.PhasePending,
	}, {
		name: "new unit ready: destroy the parked one and park the next machine's",
		world: func(t *testing.T) *world {
			w, on := rollingWorld(t, v2, 3)
			return w.with(on(v1)[:1], "loaded", "inactive", "dead").with(on(v1)[1:], "launched", "active", "running").
				with(on(v2)[:1], "launched", "active", "running")
		},
		want: "destroy:oldm0 stop:oldm1", phase: store.PhaseProgressing,
	}, {
		name: "a machine whose old unit is gone and new one missing (it joined): create at once, no budget",
		world: func(t *testing.T) *world {
			w, on := rollingWorld(t, v2, 3)
			return w.with(on(v1)[1:], "launched", "active", "running")
		},
		want: "create:m0", phase: store.PhasePending,
	}, {
		name: "rollout fails on a machine: new units go, parked ones are launched again",
		world: func(t *testing.T) *world {
			w, on := rollingWorld(t, v2, 3)
			w = w.with(on(v1)[:1], "loaded", "inactive", "dead").with(on(v1)[1:], "launched", "active", "running").
				with(on(v2)[:1], "launched", "failed", "failed")
			return w
		},
		want: "launch:oldm0 stop:m0", phase: store.PhaseFailed,
	}, {
		// m0 was replaced before the rollout failed on m1: its old unit is
		// gone, so removing its new one would leave m0 with nothing.
		name: "rollout fails on a later machine: a machine already replaced keeps its new unit",
		world: func(t *testing.T) *world {
			w, on := rollingWorld(t, v2, 3)
			return w.with(on(v2)[:1], "launched", "active", "running").
				with(on(v1)[1:2], "loaded", "inactive", "dead").with(on(v1)[2:], "launched", "active", "running").
				with(on(v2)[1:2], "launched", "failed", "failed")
		},
		want: "launch:oldm1 stop:m1", phase: store.PhaseFailed,
	}, {
		// Two versions on one machine share its ports: a machine's unit
		// starts only once every other unit there is down and not launched.
		name: "revert to v1 while m0's v2 unit runs, not ready: v2 is stopped, m0's parked v1 unit launched only once v2 is down",
		world: func(t *testing.T) *world {
			w, on := rollingWorld(t, v1, 3)
			w = w.with(on(v1)[:1], "loaded", "inactive", "dead").with(on(v1)[1:], "launched", "active", "running").
				with(on(v2)[:1], "launched", "active", "running")
			w.prev = &store.Status{Name: "edge", Phase: store.PhaseProgressing, SpecHash: h2, Deployed: h1}
			return w
		},
		want: "stop:oldm0", phase: store.PhaseProgressing,
	}, {
		name: "v3 fails on m0, parked units of v1 and v2 there: only the deployed v1's is launched again, v2's destroyed",
		world: func(t *testing.T) *world {
			w, on := rollingWorld(t, v3, 3)
			w = w.with(on(v1)[:1], "loaded", "inactive", "dead").with(on(v1)[1:], "launched", "active", "running").
				with(on(v2)[:1], "loaded", "inactive", "dead").with(on(v3)[:1], "launched", "failed", "failed")
			w.prev = &store.Status{Name: "edge", Phase: store.PhaseFailed, SpecHash: h3, Deployed: h1, Message: "rollout failed"}
			return w
		},
		want: "destroy:oldm0 launch:oldm0 stop:m0", phase: store.PhaseFailed,
	}, {
		name: "failure held, m0's new unit destroyed while still stopping (only its state left, deactivating): m0's parked unit waits",
		world: func(t *testing.T) *world {
			w, on := rollingWorld(t, v2, 3)
			w = w.with(on(v1)[:1], "loaded", "inactive", "dead").with(on(v1)[1:], "launched", "active", "running").
				with(on(v2)[:1], "launched", "deactivating", "stop-sigterm")
			w.act[3].unit = nil // with() has its state on m0
			w.prev = &store.Status{Name: "edge", Phase: store.PhaseFailed, SpecHash: h2, Deployed: h1, Message: "rollout failed"}
			return w
		},
		want: "", phase: store.PhaseFailed,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tt.world(t)
			// with() schedules units on m0, m1… in order: pin each to the
			// machine its rendering names.
			for _, a := range w.act {
				if a.unit == nil {
					continue // only a state left: with() put it on its machine
				}
				a.unit.MachineID = pinnedMachine(a.unit)
				for _, s := range a.states {
					s.MachineID = a.unit.MachineID
				}
			}
			ops, st := planWorld(opts, now, w, time.Minute)
			if got := machineOps(ops, w); got != tt.want {
				t.Errorf("ops = %q, want %q", got, tt.want)
			}
			if st.Phase != tt.phase {
				t.Errorf("phase %s (%s), want %s", st.Phase, st.Message, tt.phase)
			}
		})
	}
}
