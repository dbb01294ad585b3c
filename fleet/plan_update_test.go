package fleet

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/store"
)

func withUpdate(s *deploy.Spec, u deploy.Update) *deploy.Spec {
	cp := *s
	cp.Update = &u
	return &cp
}

// The unit's update block overrides the scheduler's options: maxSurge
// (count or percentage), minReady and progressDeadline.
func TestPlanUpdatePolicy(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	opts := Options{}.withDefaults() // MinReady 10s, RolloutTimeout 5m
	v1 := replicated(4, "docker://web:1")
	v2 := replicated(4, "docker://web:2")
	surge2 := withUpdate(v2, deploy.Update{MaxSurge: "2"})
	big1, big2 := replicated(12, "docker://web:1"), withUpdate(replicated(12, "docker://web:2"), deploy.Update{MaxSurge: "25%"})
	tests := []struct {
		name      string
		world     func(t *testing.T) *world
		readyAgo  time.Duration
		wantOps   string
		wantPhase string
		wantMsg   string
	}{{
		name: "maxSurge 2: two new replicas at once",
		world: func(t *testing.T) *world {
			return newWorld(t, surge2, 0).with(render(t, v1), "launched", "active", "running")
		},
		wantOps: "create:0 create:1", wantPhase: store.PhasePending,
	}, {
		name: "maxSurge 25% of 12 is 3",
		world: func(t *testing.T) *world {
			return newWorld(t, big2, 0).with(render(t, big1), "launched", "active", "running")
		},
		wantOps: "create:0 create:1 create:2", wantPhase: store.PhasePending,
	}, {
		name: "maxSurge 2, two new ready: two old stop at once, two more new start",
		world: func(t *testing.T) *world {
			return newWorld(t, surge2, 0).with(render(t, v1), "launched", "active", "running").with(render(t, surge2)[:2], "launched", "active", "running")
		},
		readyAgo: time.Minute, wantOps: "create:2 create:3 stop:old2 stop:old3", wantPhase: store.PhaseProgressing,
	}, {
		name: "maxSurge 2, one of two new ready: one old stops, one more new starts (6 up or starting)",
		world: func(t *testing.T) *world {
			w := newWorld(t, surge2, 0).with(render(t, v1), "launched", "active", "running").with(render(t, surge2)[:2], "launched", "active", "running")
			w.act[5].states[0].SystemdActiveState, w.act[5].states[0].SystemdSubState = "activating", "start-pre"
			return w
		},
		readyAgo: time.Minute, wantOps: "create:2 stop:old3", wantPhase: store.PhaseProgressing,
	}, {
		name: "maxSurge 2, two old stopping: the two next replicas start while they stop",
		world: func(t *testing.T) *world {
			return newWorld(t, surge2, 0).with(render(t, v1)[:2], "launched", "active", "running").
				with(render(t, v1)[2:], "loaded", "active", "running").with(render(t, surge2)[:2], "launched", "active", "running")
		},
		readyAgo: time.Minute, wantOps: "create:2 create:3", wantPhase: store.PhaseProgressing,
	}, {
		name: "maxSurge 2, two old gone: two more new",
		world: func(t *testing.T) *world {
			return newWorld(t, surge2, 0).with(render(t, v1)[:2], "launched", "active", "running").with(render(t, surge2)[:2], "launched", "active", "running")
		},
		readyAgo: time.Minute, wantOps: "create:2 create:3", wantPhase: store.PhaseProgressing,
	}, {
		name: "minReady 0s: a new replica running now is ready",
		world: func(t *testing.T) *world {
			s := withUpdate(v2, deploy.Update{MinReady: "0s"})
			return newWorld(t, s, 0).with(render(t, v1), "launched", "active", "running").with(render(t, s)[:1], "launched", "active", "running")
		},
		readyAgo: 0, wantOps: "create:1 stop:old3", wantPhase: store.PhaseProgressing,
	}, {
		name: "minReady 1m over the scheduler's 10s: running 30s is not ready",
		world: func(t *testing.T) *world {
			s := withUpdate(v2, deploy.Update{MinReady: "1m"})
			return newWorld(t, s, 0).with(render(t, v1), "launched", "active", "running").with(render(t, s)[:1], "launched", "active", "running")
		},
		readyAgo: 30 * time.Second, wantOps: "", wantPhase: store.PhaseProgressing, wantMsg: "1 of 4 running the current spec, 0 ready",
	}, {
		name: "progressDeadline 1m: no replica ready for 2m fails, though the scheduler's timeout is 5m",
		world: func(t *testing.T) *world {
			s := withUpdate(v2, deploy.Update{ProgressDeadline: "1m"})
			w := newWorld(t, s, 0).with(render(t, v1), "launched", "active", "running").with(render(t, s)[:1], "launched", "activating", "start-pre")
			w.prev = &store.Status{Name: "web", Phase: store.PhaseProgressing, SpecHash: s.Hash(0), Since: now.Add(-2 * time.Minute)}
			return w
		},
		wantOps: "stop:0", wantPhase: store.PhaseFailed, wantMsg: "no new replica became ready for 1m0s, the progress deadline",
	}, {
		name: "a long rollout that progresses does not time out: the deadline counts from the last replica ready",
		world: func(t *testing.T) *world {
			w := newWorld(t, v2, 0).with(render(t, v1)[:2], "launched", "active", "running").with(render(t, v2)[:2], "launched", "active", "running")
			w.prev = &store.Status{Name: "web", Phase: store.PhaseProgressing, SpecHash: v2.Hash(0), Since: now.Add(-20 * time.Minute),
				Ready: 2, Progressed: now.Add(-time.Minute)}
			return w
		},
		readyAgo: time.Minute, wantOps: "create:2", wantPhase: store.PhaseProgressing,
	}, {
		name: "no progress since the last replica became ready: fails at the deadline",
		world: func(t *testing.T) *world {
			w := newWorld(t, v2, 0).with(render(t, v1)[:2], "launched", "active", "running").with(render(t, v2)[:2], "launched", "active", "running").
				with(render(t, v2)[2:3], "launched", "activating", "start-pre")
			w.act[4].unit.MachineID, w.act[4].states[0].MachineID = "m0", "m0"
			w.prev = &store.Status{Name: "web", Phase: store.PhaseProgressing, SpecHash: v2.Hash(0), Since: now.Add(-20 * time.Minute),
				Ready: 2, Progressed: now.Add(-6 * time.Minute)}
			return w
		},
		readyAgo: time.Minute, wantOps: "stop:0 stop:1 stop:2", wantPhase: store.PhaseFailed, wantMsg: "no new replica became ready for 5m0s",
	}, {
		// A pass that took minutes (500 units' first deployment on a
		// loaded etcd) sees its replicas running for the first time
		// past the deadline: they have not failed, they have not been
		// watched for minReady yet.
		name: "past the deadline, new replicas seen running for less than minReady: the rollout waits for them",
		world: func(t *testing.T) *world {
			w := newWorld(t, v2, 0).with(render(t, v1), "launched", "active", "running").with(render(t, v2)[:1], "launched", "active", "running")
			w.prev = &store.Status{Name: "web", Phase: store.PhaseProgressing, SpecHash: v2.Hash(0), Since: now.Add(-6 * time.Minute)}
			return w
		},
		readyAgo: 2 * time.Second, wantOps: "", wantPhase: store.PhaseProgressing, wantMsg: "1 of 4 running the current spec, 0 ready",
	}, {
		// 1,000 units on a loaded fleet: the pass that first saw the
		// replicas running came 4.5 minutes into the rollout, the next
		// one 2 minutes later, past the deadline. They became ready in
		// between: that is progress made now, not none for 5 minutes.
		name: "past the deadline, every new replica ready in this pass (watched since the last one): the rollout is done",
		world: func(t *testing.T) *world {
			w := newWorld(t, v2, 0).with(render(t, v2), "launched", "active", "running")
			w.prev = &store.Status{Name: "web", Phase: store.PhaseProgressing, SpecHash: v2.Hash(0), Since: now.Add(-6 * time.Minute)}
			return w
		},
		readyAgo: 2 * time.Minute, wantOps: "", wantPhase: store.PhaseRunning,
	}, {
		name: "past the deadline, a new replica ready in this pass: the rollout goes on",
		world: func(t *testing.T) *world {
			w := newWorld(t, v2, 0).with(render(t, v1), "launched", "active", "running").with(render(t, v2)[:1], "launched", "active", "running")
			w.prev = &store.Status{Name: "web", Phase: store.PhaseProgressing, SpecHash: v2.Hash(0), Since: now.Add(-6 * time.Minute)}
			return w
		},
		readyAgo: 2 * time.Minute, wantOps: "create:1 stop:old3", wantPhase: store.PhaseProgressing,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tt.world(t)
			ops, st := planWorld(opts, now, w, tt.readyAgo)
			if got := opsString(ops, w.d.hash); got != tt.wantOps {
				t.Errorf("ops = %q, want %q", got, tt.wantOps)
			}
			if st.Phase != tt.wantPhase || !strings.Contains(st.Message, tt.wantMsg) {
				t.Errorf("status = %s %q, want %s containing %q", st.Phase, st.Message, tt.wantPhase, tt.wantMsg)
			}
		})
	}
}

// finish moves Progressed when more replicas are ready than at the last
// pass, keeps it otherwise, and drops it with a new spec.
func TestStatusProgressed(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	earlier := now.Add(-time.Minute)
	p := &planner{now: now}
	prev := &store.Status{SpecHash: "a", Phase: store.PhaseProgressing, Since: earlier.Add(-time.Hour), Ready: 1, Progressed: earlier}
	tests := []struct {
		name string
		st   store.Status
		want time.Time
	}{
		{"one more ready", store.Status{SpecHash: "a", Phase: store.PhaseProgressing, Ready: 2}, now},
		{"as many ready", store.Status{SpecHash: "a", Phase: store.PhaseProgressing, Ready: 1}, earlier},
		{"fewer ready", store.Status{SpecHash: "a", Phase: store.PhaseProgressing, Ready: 0}, earlier},
		{"another spec", store.Status{SpecHash: "b", Phase: store.PhaseProgressing, Ready: 3}, time.Time{}},
	}
	for _, tt := range tests {
		st := tt.st
		if got := p.finish(&st, prev).Progressed; !got.Equal(tt.want) {
			t.Errorf("%s: Progressed = %s, want %s", tt.name, got, tt.want)
		}
	}
}

// On fleet's engine and agents: 12 replicas with maxSurge 4 roll without
// ever dropping below 12 serving or going above 16 fleet units up or
// starting (timed in the log; BenchmarkRollout compares surges).
func TestMaxSurgeRollout(t *testing.T) {
	t.Parallel() // its own etcd and fleet (newHarness): it waits on fleet's engine, not the CPU
	h := newHarness(t, fleetsim.Machines(4, nil))
	opts := testOptions
	opts.MinReady = 500 * time.Millisecond
	h.serve(h.api, opts)

	spec := func(image string, surge deploy.Amount) *deploy.Spec {
		s := &deploy.Spec{Name: "wide", Replicas: 12, Apps: []deploy.App{{Image: image}}}
		if surge != "" {
			s.Update = &deploy.Update{MaxSurge: surge}
		}
		return s
	}
	v1 := h.put(spec("docker://wide:1", ""))
	h.waitStatus("wide", store.PhaseRunning, v1, 60*time.Second)

	most := 0
	check := h.sample("wide", func(v fleetView) string {
		running := 0
		for _, ms := range v.running {
			running += len(ms)
		}
		most = max(most, v.launched)
		if running < 12 || v.launched > 16 {
			return fmt.Sprintf("%d running, %d fleet units launched (want ≥ 12 running, ≤ 16 up or starting): %v", running, v.launched, v)
		}
		return ""
	})
	start := time.Now()
	v2 := h.put(spec("docker://wide:2", "4"))
	h.waitStatus("wide", store.PhaseRunning, v2, 120*time.Second)
	took := time.Since(start)
	if msg := check(); msg != "" {
		t.Fatalf("rollout with maxSurge 4 broke availability: %s", msg)
	}
	if most <= 13 {
		t.Errorf("at most %d fleet units launched during the rollout: maxSurge 4 was not used", most)
	}
	h.waitUnits("wide", v2, 12, 30*time.Second)
	t.Logf("12 replicas, maxSurge 4: rolled out in %s, at most %d fleet units launched at once", took.Round(100*time.Millisecond), most)
	if _, err := h.store.DeleteUnit(context.Background(), "wide", store.Fence{}); err != nil {
		t.Fatal(err)
	}
}

// An old unit Kaylee was stopping that is current again (a rollback to
// the spec it runs, before it was destroyed) is launched again; a failed
// replica being replaced is not.
func TestPlanRelaunchesOldUnitCurrentAgain(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v1 := replicated(2, "docker://web:1")
	w := newWorld(t, v1, 0).with(render(t, v1), "loaded", "active", "running")
	p := &planner{opts: Options{}.withDefaults(), mem: newMemory(), now: now}
	for _, a := range w.act {
		p.mem.stopping[a.name()] = now.Add(-time.Second)
		p.mem.readySince[a.name()] = now.Add(-time.Minute)
	}
	p.mem.replacing[w.act[1].name()] = true
	ops, _ := p.plan(w.input())
	if got := opsString(ops, w.d.hash); got != "launch:0" {
		t.Fatalf("ops %q, want launch:0 (replica 1 is being replaced)", got)
	}
}
