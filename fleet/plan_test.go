package fleet

import (
	"cmp"
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
	// probes: fleet units of primary probes (see withProbes).
	probes unitSet
	// previous: the rendering of the spec last rolled out (see
	// unitInput.previous).
	previous *desiredUnits
}

func newWorld(t *testing.T, s *deploy.Spec, restart int64) *world {
	t.Helper()
	units, err := deploy.Render(s, deploy.RenderOptions{Restart: restart})
	if err != nil {
		t.Fatal(err)
	}
	d := &desiredUnits{hash: s.Hash(restart), units: units, hashes: map[string]string{}, earlier: map[string]string{}}
	for _, u := range units {
		d.hashes[u.Name] = unitHash(u.Options)
		d.earlier[u.Name] = unitHash(deploy.WithoutEvidence(u.Options))
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

// rerendered gives the fleet units at the given indexes of w.act another
// unit file under the same name, as a Kaylee version that renders
// differently (or an edit by hand through CreateUnit) leaves them; their
// states carry the new hash, as once fleet's agent has reloaded them.
func (w *world) rerendered(idx ...int) *world {
	for _, i := range idx {
		a := w.act[i]
		cp := *a.unit
		cp.Options = append(append([]*schema.UnitOption(nil), a.unit.Options...),
			&schema.UnitOption{Section: "Service", Name: "Environment", Value: "RENDERED_BY=kaylee-0.9"})
		a.unit, a.hash = &cp, unitHash(cp.Options)
		for _, s := range a.states {
			s.Hash = a.hash
		}
	}
	return w
}

// withoutEvidence gives every fleet unit of w.act the unit file Kaylee
// rendered before the evidence step, as an upgrade finds them.
func (w *world) withoutEvidence() *world {
	for _, a := range w.act {
		cp := *a.unit
		cp.Options = deploy.WithoutEvidence(a.unit.Options)
		if len(cp.Options) == len(a.unit.Options) {
			w.t.Fatalf("%s has no evidence step", a.name())
		}
		a.unit, a.hash = &cp, unitHash(cp.Options)
		for _, s := range a.states {
			s.Hash = a.hash
		}
	}
	return w
}

func (w *world) input() *unitInput {
	return &unitInput{name: w.spec.Name, spec: w.spec, desired: w.d, actual: w.act, probes: w.probes, prev: w.prev, previous: w.previous}
}

// previously says s is the spec the unit last rolled out: the planner
// knows its rendering (read back from the history by the reconciler).
func (w *world) previously(s *deploy.Spec) *world {
	w.previous = newWorld(w.t, s, 0).d
	return w
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
		if p, ok := deploy.ParseProbeName("k2", o.name); ok {
			// A primary probe: of this rollout, or of another.
			tag = fmt.Sprint("probe", p.Index)
			if p.SpecHash != hash {
				tag = "oldprobe" + fmt.Sprint(p.Index)
			}
		}
		out = append(out, o.kind.String()+":"+tag)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// planWorld plans w once at now, its running replicas running for
// readyAgo, on machine m0 (10.0.0.1).
func planWorld(opts Options, now time.Time, w *world, readyAgo time.Duration) ([]op, *store.Status) {
	p := &planner{opts: opts, mem: newMemory(), now: now, machines: map[string]string{"m0": "10.0.0.1"}}
	for _, a := range w.act {
		if a.running() {
			p.mem.readySince[a.name()] = now.Add(-readyAgo)
		}
	}
	return p.plan(w.input())
}

func TestPlanUnit(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	opts := Options{}.withDefaults()
	v1 := replicated(3, "docker://web:1")
	v2 := replicated(3, "docker://web:2")
	single1 := &deploy.Spec{Name: "web", Apps: []deploy.App{{Image: "docker://web:1"}}}
	single2 := &deploy.Spec{Name: "web", Apps: []deploy.App{{Image: "docker://web:2"}}}
	// m1, m2: with a volume of a systemd mount service, which gates the
	// start of each replica on ebs@vol-1.service (see deploy's render).
	mounted := func(image string) *deploy.Spec {
		s := replicated(3, image)
		s.Volumes = []deploy.Volume{{ID: "vol-1", Driver: "systemd-mountservice-ebs", Source: "data", Path: "/data"}}
		return s
	}
	m1, m2 := mounted("docker://web:1"), mounted("docker://web:2")
	gate := "it starts only once ebs@vol-1.service is active on machine m0 (10.0.0.1) (systemctl status ebs@vol-1.service)"
	tests := []struct {
		name        string
		world       func(t *testing.T) *world
		readyAgo    time.Duration // how long current running replicas have been running
		maxRestarts int
		wantOps     string
		wantPhase   string
		wantMsg     string
		wantMsg2    string // a second part of the message
		running     int    // replicas a failed status says run, if not 3
		serving     int    // replicas of any version that serve, checked when set
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
		readyAgo: time.Minute, wantOps: "", wantPhase: store.PhaseRunning, serving: 3,
	}, {
		// Issue 21, item 2: replicas are not in the spec hash.
		name: "replicas 3 → 4: the new replica is created, the three running ones are left alone",
		world: func(t *testing.T) *world {
			w := newWorld(t, replicated(4, "docker://web:1"), 0).with(render(t, v1), "launched", "active", "running")
			w.prev = &store.Status{Name: "web", Phase: store.PhaseRunning, SpecHash: v1.Hash(0), Deployed: v1.Hash(0)}
			return w
		},
		readyAgo: time.Minute, wantOps: "create:3", wantPhase: store.PhaseProgressing,
	}, {
		name: "replicas 3 → 1: the highest indexes stop, replica 0 is left alone",
		world: func(t *testing.T) *world {
			w := newWorld(t, replicated(1, "docker://web:1"), 0).with(render(t, v1), "launched", "active", "running")
			w.prev = &store.Status{Name: "web", Phase: store.PhaseRunning, SpecHash: v1.Hash(0), Deployed: v1.Hash(0)}
			return w
		},
		readyAgo: time.Minute, wantOps: "stop:1 stop:2", wantPhase: store.PhaseProgressing,
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
		wantOps: "create:0", wantPhase: store.PhasePending, serving: 3,
	}, {
		name: "new replica running but not ready: keep every old one",
		world: func(t *testing.T) *world {
			return newWorld(t, v2, 0).with(render(t, v1), "launched", "active", "running").with(render(t, v2)[:1], "launched", "active", "running")
		},
		readyAgo: time.Second, wantOps: "", wantPhase: store.PhaseProgressing, serving: 4,
	}, {
		// Progressing 1/3 new while the old ones serve: the status says
		// how many serve, not only the new spec's replicas.
		name: "rollout under way: new and old replicas that serve are counted, a stopping one is not",
		world: func(t *testing.T) *world {
			return newWorld(t, v2, 0).with(render(t, v1)[:2], "launched", "active", "running").
				with(render(t, v1)[2:], "loaded", "active", "running").with(render(t, v2)[:1], "launched", "active", "running")
		},
		readyAgo: time.Minute, wantOps: "create:1", wantPhase: store.PhaseProgressing, serving: 3,
		wantMsg: "1 of 3 running the current spec, 1 ready; 3 old still to replace, 3 serving",
	}, {
		name: "new replica ready: stop one old one and start the next new one (a stopping replica leaves the surge)",
		world: func(t *testing.T) *world {
			return newWorld(t, v2, 0).with(render(t, v1), "launched", "active", "running").with(render(t, v2)[:1], "launched", "active", "running")
		},
		readyAgo: time.Minute, wantOps: "create:1 stop:old2", wantPhase: store.PhaseProgressing,
	}, {
		name: "old replica stopped: destroy it; its stop freed the surge: the next new one starts",
		world: func(t *testing.T) *world {
			return newWorld(t, v2, 0).with(render(t, v1)[:2], "launched", "active", "running").
				with(render(t, v1)[2:], "loaded", "inactive", "dead").with(render(t, v2)[:1], "launched", "active", "running")
		},
		readyAgo: time.Minute, wantOps: "create:1 destroy:old2", wantPhase: store.PhaseProgressing,
	}, {
		name: "old replica still stopping: stop no other old one; the next new one starts",
		world: func(t *testing.T) *world {
			return newWorld(t, v2, 0).with(render(t, v1)[:2], "launched", "active", "running").
				with(render(t, v1)[2:], "loaded", "active", "running").with(render(t, v2)[:1], "launched", "active", "running")
		},
		readyAgo: time.Minute, wantOps: "create:1", wantPhase: store.PhaseProgressing,
	}, {
		name: "one old gone: start the next new replica",
		world: func(t *testing.T) *world {
			return newWorld(t, v2, 0).with(render(t, v1)[:2], "launched", "active", "running").with(render(t, v2)[:1], "launched", "active", "running")
		},
		readyAgo: time.Minute, wantOps: "create:1", wantPhase: store.PhaseProgressing,
	}, {
		name: "all new ready, the last old one stopping: rolled out (running), it goes on its way",
		world: func(t *testing.T) *world {
			return newWorld(t, v2, 0).with(render(t, v1)[:1], "loaded", "deactivating", "stop-sigterm").with(render(t, v2), "launched", "active", "running")
		},
		readyAgo: time.Minute, wantOps: "", wantPhase: store.PhaseRunning, wantMsg: "3 of 3 running; 1 fleet unit of the old version on its way out",
	}, {
		name: "all new ready, an old one destroyed whose state fleet still shows: running",
		world: func(t *testing.T) *world {
			w := newWorld(t, v2, 0).with(render(t, v1)[:1], "loaded", "inactive", "dead").with(render(t, v2), "launched", "active", "running")
			w.act[0].unit = nil
			return w
		},
		readyAgo: time.Minute, wantOps: "", wantPhase: store.PhaseRunning, wantMsg: "3 of 3 running",
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
		wantOps: "stop:0", wantPhase: store.PhaseFailed, wantMsg: "replica k2:web:", serving: 3,
	}, {
		name: "failed rollout held: failed replicas destroyed, nothing created",
		world: func(t *testing.T) *world {
			w := newWorld(t, v2, 0).with(render(t, v1), "launched", "active", "running").with(render(t, v2)[:1], "loaded", "failed", "failed")
			w.prev = &store.Status{Name: "web", Phase: store.PhaseFailed, SpecHash: v2.Hash(0), Deployed: v1.Hash(0), Message: "boom"}
			return w
		},
		wantOps: "destroy:0", wantPhase: store.PhaseFailed, wantMsg: "boom",
	}, {
		// Issue 21, item 9: retire destroyed old2 at the start (it was not
		// running), the rollout then failed. The new ones are stopped
		// first: nothing is created while they have target launched (the
		// surge); then old2 comes back.
		name: "new replica failed, an old one gone: the new ones stop first",
		world: func(t *testing.T) *world {
			return newWorld(t, v2, 0).with(render(t, v1)[:2], "launched", "active", "running").with(render(t, v2)[:1], "launched", "failed", "failed").previously(v1)
		},
		wantOps: "stop:0", wantPhase: store.PhaseFailed, wantMsg: "the previous version (if any) keeps running", running: 2,
	}, {
		name: "failed rollout held, an old one gone, the new one stopped: the previous version is created again under its name",
		world: func(t *testing.T) *world {
			w := newWorld(t, v2, 0).with(render(t, v1)[:2], "launched", "active", "running").with(render(t, v2)[:1], "loaded", "failed", "failed").previously(v1)
			w.prev = &store.Status{Name: "web", Phase: store.PhaseFailed, SpecHash: v2.Hash(0), Deployed: v1.Hash(0), Message: "boom"}
			return w
		},
		wantOps: "create:old2 destroy:0", wantPhase: store.PhaseFailed, wantMsg: "boom", running: 2,
	}, {
		// A new replica was ready and replaced old2 (stopped, destroyed),
		// the next one failed: old2 comes back too.
		name: "a new replica was ready and replaced an old one, the next failed: the old one comes back once the new ones stop",
		world: func(t *testing.T) *world {
			w := newWorld(t, v2, 0).with(render(t, v1)[:2], "launched", "active", "running").
				with(render(t, v2)[:1], "loaded", "deactivating", "stop-sigterm").with(render(t, v2)[1:2], "loaded", "failed", "failed").previously(v1)
			w.prev = &store.Status{Name: "web", Phase: store.PhaseFailed, SpecHash: v2.Hash(0), Deployed: v1.Hash(0), Message: "boom"}
			return w
		},
		wantOps: "create:old2 destroy:1", wantPhase: store.PhaseFailed, wantMsg: "boom", running: 2,
	}, {
		name: "failed rollout held, an old replica stopped by hand (or by retire): launched again",
		world: func(t *testing.T) *world {
			w := newWorld(t, v2, 0).with(render(t, v1)[:2], "launched", "active", "running").with(render(t, v1)[2:], "inactive", "inactive", "dead").
				with(render(t, v2)[:1], "loaded", "failed", "failed").previously(v1)
			w.prev = &store.Status{Name: "web", Phase: store.PhaseFailed, SpecHash: v2.Hash(0), Deployed: v1.Hash(0), Message: "boom"}
			return w
		},
		wantOps: "destroy:0 launch:old2", wantPhase: store.PhaseFailed, wantMsg: "boom", running: 2,
	}, {
		name: "failed rollout held, an old replica failed: replaced",
		world: func(t *testing.T) *world {
			w := newWorld(t, v2, 0).with(render(t, v1)[:2], "launched", "active", "running").with(render(t, v1)[2:], "launched", "failed", "failed").previously(v1)
			w.prev = &store.Status{Name: "web", Phase: store.PhaseFailed, SpecHash: v2.Hash(0), Deployed: v1.Hash(0), Message: "boom"}
			return w
		},
		wantOps: "stop:old2", wantPhase: store.PhaseFailed, wantMsg: "boom", running: 2,
	}, {
		name: "failed rollout held, an old replica destroyed a moment ago, its state lingers: wait before reusing its name",
		world: func(t *testing.T) *world {
			w := newWorld(t, v2, 0).with(render(t, v1)[:2], "launched", "active", "running").with(render(t, v1)[2:], "loaded", "inactive", "dead").previously(v1)
			w.act[2].unit = nil
			w.prev = &store.Status{Name: "web", Phase: store.PhaseFailed, SpecHash: v2.Hash(0), Deployed: v1.Hash(0), Message: "boom"}
			return w
		},
		wantOps: "", wantPhase: store.PhaseFailed, wantMsg: "boom", running: 2,
	}, {
		name: "failed rollout held, the previous version at full strength: nothing to do",
		world: func(t *testing.T) *world {
			w := newWorld(t, v2, 0).with(render(t, v1), "launched", "active", "running").previously(v1)
			w.prev = &store.Status{Name: "web", Phase: store.PhaseFailed, SpecHash: v2.Hash(0), Deployed: v1.Hash(0), Message: "boom"}
			return w
		},
		wantOps: "", wantPhase: store.PhaseFailed, wantMsg: "boom",
	}, {
		name: "failed rollout, the previous spec not known (no history): nothing to create",
		world: func(t *testing.T) *world {
			return newWorld(t, v2, 0).with(render(t, v1)[:2], "launched", "active", "running").with(render(t, v2)[:1], "launched", "failed", "failed")
		},
		wantOps: "stop:0", wantPhase: store.PhaseFailed, running: 2,
	}, {
		name: "restart counter changed: a held failure is retried",
		world: func(t *testing.T) *world {
			w := newWorld(t, v2, 1).with(render(t, v1), "launched", "active", "running")
			w.prev = &store.Status{Name: "web", Phase: store.PhaseFailed, SpecHash: v2.Hash(0), Deployed: v1.Hash(0), Message: "boom"}
			return w
		},
		wantOps: "create:0", wantPhase: store.PhasePending,
	}, {
		name: "rollout timeout: says what the new replicas do",
		world: func(t *testing.T) *world {
			w := newWorld(t, v2, 0).with(render(t, v1), "launched", "active", "running").with(render(t, v2)[:1], "launched", "activating", "start-pre")
			w.prev = &store.Status{Name: "web", Phase: store.PhaseProgressing, SpecHash: v2.Hash(0), Since: now.Add(-6 * time.Minute)}
			return w
		},
		wantOps: "stop:0", wantPhase: store.PhaseFailed,
		wantMsg:  "no new replica became ready for 5m0s, the progress deadline (update.progressDeadline, or the scheduler's rollout timeout) (0 of 3 new replicas running; k2:web:" + v2.Hash(0) + ":",
		wantMsg2: ":0.service is activating/start-pre on machine m0 (10.0.0.1); 2 not created yet)",
	}, {
		name: "rollout timeout: a replica in start-post is waiting for its health check",
		world: func(t *testing.T) *world {
			w := newWorld(t, v2, 0).with(render(t, v1), "launched", "active", "running").with(render(t, v2)[:1], "launched", "activating", "start-post")
			w.prev = &store.Status{Name: "web", Phase: store.PhaseProgressing, SpecHash: v2.Hash(0), Since: now.Add(-6 * time.Minute)}
			return w
		},
		wantOps: "stop:0", wantPhase: store.PhaseFailed,
		wantMsg:  "no new replica became ready for 5m0s, the progress deadline (update.progressDeadline, or the scheduler's rollout timeout) (0 of 3 new replicas running; k2:web:" + v2.Hash(0) + ":",
		wantMsg2: ":0.service is activating/start-post (waiting for its health check) on machine m0 (10.0.0.1); 2 not created yet)",
	}, {
		name: "rollout timeout with an unscheduled and a restarting replica",
		world: func(t *testing.T) *world {
			w := newWorld(t, v2, 0).with(render(t, v1), "launched", "active", "running").
				with(render(t, v2)[:1], "launched", "activating", "auto-restart").with(render(t, v2)[1:2], "launched", "", "")
			w.act[4].unit.MachineID = ""
			w.prev = &store.Status{Name: "web", Phase: store.PhaseProgressing, SpecHash: v2.Hash(0), Since: now.Add(-6 * time.Minute)}
			return w
		},
		maxRestarts: 5,
		wantOps:     "stop:0 stop:1", wantPhase: store.PhaseFailed,
		wantMsg:  ":0.service is activating/auto-restart on machine m0 (10.0.0.1), 1 restart seen; k2:web:",
		wantMsg2: ":1.service has no machine; 1 not created yet)",
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
		// The edit is in fleet's registry but fleet's state still has the
		// old hash: not running the submitted unit, so not serving.
		name: "drift: a replica changed by hand, not yet reloaded, is replaced",
		world: func(t *testing.T) *world {
			w := newWorld(t, v1, 0).with(render(t, v1), "launched", "active", "running")
			w.act[1].hash = "edited"
			w.prev = &store.Status{Name: "web", Phase: store.PhaseRunning, SpecHash: v1.Hash(0), Deployed: v1.Hash(0)}
			return w
		},
		readyAgo: time.Minute, wantOps: "stop:1", wantPhase: store.PhaseProgressing,
	}, {
		// Once fleet's agent runs the edit, the replica serves under a
		// current name: no new one can take its name, no surplus lets it
		// go. It used to stay so forever.
		name: "drift: a replica changed by hand and running the edit is replaced in place",
		world: func(t *testing.T) *world {
			w := newWorld(t, v1, 0).with(render(t, v1), "launched", "active", "running").rerendered(1)
			w.prev = &store.Status{Name: "web", Phase: store.PhaseRunning, SpecHash: v1.Hash(0), Deployed: v1.Hash(0)}
			return w
		},
		readyAgo: time.Minute, wantOps: "stop:1", wantPhase: store.PhaseProgressing, wantMsg: "1 fleet unit under a current name with another unit file",
	}, {
		// The evidence step came with an upgrade: fleet units rendered
		// without it are current (they gain it at the next rollout), so
		// the upgrade restarts no unit.
		name: "rendered before the evidence step (a Kaylee upgrade): nothing restarts",
		world: func(t *testing.T) *world {
			w := newWorld(t, v1, 0).with(render(t, v1), "launched", "active", "running").withoutEvidence()
			w.prev = &store.Status{Name: "web", Phase: store.PhaseRunning, SpecHash: v1.Hash(0), Deployed: v1.Hash(0)}
			return w
		},
		readyAgo: time.Minute, wantOps: "", wantPhase: store.PhaseRunning,
	}, {
		name: "rendering changed (a Kaylee upgrade): one replica at a time",
		world: func(t *testing.T) *world {
			w := newWorld(t, v1, 0).with(render(t, v1), "launched", "active", "running").rerendered(0, 1, 2)
			w.prev = &store.Status{Name: "web", Phase: store.PhaseRunning, SpecHash: v1.Hash(0), Deployed: v1.Hash(0)}
			return w
		},
		readyAgo: time.Minute, wantOps: "stop:2", wantPhase: store.PhaseProgressing, wantMsg: "3 fleet units under a current name with another unit file",
	}, {
		name: "rendering changed, one replica stopping: destroy it, touch no other",
		world: func(t *testing.T) *world {
			w := newWorld(t, v1, 0).with(render(t, v1)[:2], "launched", "active", "running").with(render(t, v1)[2:], "loaded", "inactive", "dead").rerendered(0, 1, 2)
			w.prev = &store.Status{Name: "web", Phase: store.PhaseRunning, SpecHash: v1.Hash(0), Deployed: v1.Hash(0)}
			return w
		},
		readyAgo: time.Minute, wantOps: "destroy:2", wantPhase: store.PhaseProgressing,
	}, {
		name: "rendering changed, one replica gone: create it again under its name",
		world: func(t *testing.T) *world {
			w := newWorld(t, v1, 0).with(render(t, v1)[:2], "launched", "active", "running").rerendered(0, 1)
			w.prev = &store.Status{Name: "web", Phase: store.PhaseRunning, SpecHash: v1.Hash(0), Deployed: v1.Hash(0)}
			return w
		},
		readyAgo: time.Minute, wantOps: "create:2", wantPhase: store.PhaseProgressing,
	}, {
		name: "rendering changed, the new replica not ready yet: no other goes",
		world: func(t *testing.T) *world {
			w := newWorld(t, v1, 0).with(render(t, v1), "launched", "active", "running").rerendered(0, 1)
			w.prev = &store.Status{Name: "web", Phase: store.PhaseRunning, SpecHash: v1.Hash(0), Deployed: v1.Hash(0)}
			return w
		},
		readyAgo: time.Second, wantOps: "", wantPhase: store.PhaseProgressing,
	}, {
		name: "rendering changed, no replicas: stop first, then create under the same name",
		world: func(t *testing.T) *world {
			w := newWorld(t, single1, 0).with(render(t, single1), "launched", "active", "running").rerendered(0)
			w.prev = &store.Status{Name: "web", Phase: store.PhaseRunning, SpecHash: single1.Hash(0), Deployed: single1.Hash(0)}
			return w
		},
		readyAgo: time.Minute, wantOps: "stop:0", wantPhase: store.PhaseProgressing, wantMsg: "stopping, then creating again",
	}, {
		name: "a new replica restarting once: progressing, said in the status",
		world: func(t *testing.T) *world {
			return newWorld(t, v2, 0).with(render(t, v1), "launched", "active", "running").with(render(t, v2)[:1], "launched", "activating", "auto-restart")
		},
		wantOps: "", wantPhase: store.PhaseProgressing, wantMsg: ":0.service on machine m0 (10.0.0.1) is restarting (1 restart seen)",
	}, {
		name: "a new replica restarting, MaxRestarts 1: the rollout fails at once",
		world: func(t *testing.T) *world {
			return newWorld(t, v2, 0).with(render(t, v1), "launched", "active", "running").with(render(t, v2)[:1], "launched", "activating", "auto-restart")
		},
		maxRestarts: 1,
		wantOps:     "stop:0", wantPhase: store.PhaseFailed,
		wantMsg:  "rollout of " + v2.Hash(0) + " failed: replica k2:web:" + v2.Hash(0) + ":",
		wantMsg2: ":0.service on machine m0 (10.0.0.1) is in a restart loop: systemd restarted it 1 time",
	}, {
		name: "a new replica with a mount service restarting: the note names the mount service it waits for",
		world: func(t *testing.T) *world {
			return newWorld(t, m2, 0).with(render(t, m1), "launched", "active", "running").with(render(t, m2)[:1], "launched", "activating", "auto-restart")
		},
		wantOps: "", wantPhase: store.PhaseProgressing, wantMsg: ":0.service on machine m0 (10.0.0.1) is restarting (1 restart seen); " + gate,
	}, {
		name: "a deployed replica with a mount service restarting: left to systemd, the note names the mount service",
		world: func(t *testing.T) *world {
			w := newWorld(t, m1, 0).with(render(t, m1)[:2], "launched", "active", "running").with(render(t, m1)[2:], "launched", "activating", "auto-restart")
			w.prev = &store.Status{Name: "web", Phase: store.PhaseRunning, SpecHash: m1.Hash(0), Deployed: m1.Hash(0)}
			return w
		},
		readyAgo: time.Minute, wantOps: "", wantPhase: store.PhaseProgressing, wantMsg: ":2.service on machine m0 (10.0.0.1) is restarting (1 restart seen); " + gate,
	}, {
		name: "a new replica with a mount service not started yet: the note names the mount service",
		world: func(t *testing.T) *world {
			return newWorld(t, m2, 0).with(render(t, m1), "launched", "active", "running").with(render(t, m2)[:1], "launched", "inactive", "dead")
		},
		wantOps: "", wantPhase: store.PhaseProgressing, wantMsg: ":0.service on machine m0 (10.0.0.1) is inactive/dead; " + gate,
	}, {
		name: "a new replica with a mount service restarting, MaxRestarts 1: the rollout fails, naming the mount service",
		world: func(t *testing.T) *world {
			return newWorld(t, m2, 0).with(render(t, m1), "launched", "active", "running").with(render(t, m2)[:1], "launched", "activating", "auto-restart")
		},
		maxRestarts: 1,
		wantOps:     "stop:0", wantPhase: store.PhaseFailed,
		wantMsg:  "rollout of " + m2.Hash(0) + " failed: replica k2:web:" + m2.Hash(0) + ":",
		wantMsg2: ":0.service on machine m0 (10.0.0.1) is in a restart loop: systemd restarted it 1 time (activating/auto-restart; see its journal on that machine); " + gate + "; the new replicas are removed",
	}, {
		name: "rollout timeout: a replica with a mount service in start-pre, the message names the mount service",
		world: func(t *testing.T) *world {
			w := newWorld(t, m2, 0).with(render(t, m1), "launched", "active", "running").with(render(t, m2)[:1], "launched", "activating", "start-pre")
			w.prev = &store.Status{Name: "web", Phase: store.PhaseProgressing, SpecHash: m2.Hash(0), Since: now.Add(-6 * time.Minute)}
			return w
		},
		wantOps: "stop:0", wantPhase: store.PhaseFailed,
		wantMsg:  "no new replica became ready for 5m0s, the progress deadline",
		wantMsg2: ":0.service is activating/start-pre on machine m0 (10.0.0.1), and " + gate + "; 2 not created yet)",
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
		name: "scale down 3 → 1 with a new spec: the surplus old ones stop at once, one old serves until the new one is ready",
		world: func(t *testing.T) *world {
			return newWorld(t, replicated(1, "docker://web:2"), 0).with(render(t, v1), "launched", "active", "running")
		},
		wantOps: "create:0 stop:old1 stop:old2", wantPhase: store.PhasePending,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tt.world(t)
			opts := opts
			if tt.maxRestarts > 0 {
				opts.MaxRestarts = tt.maxRestarts
			}
			ops, st := planWorld(opts, now, w, tt.readyAgo)
			if got := opsString(ops, w.d.hash); got != tt.wantOps {
				t.Errorf("ops = %q, want %q", got, tt.wantOps)
			}
			if want := cmp.Or(tt.running, 3); st.Phase == store.PhaseFailed && st.Running != want {
				t.Errorf("failed status says %d running; %d old replicas serve", st.Running, want)
			}
			if tt.serving > 0 && st.Serving != tt.serving {
				t.Errorf("status says %d serving (%d of the current spec running), want %d", st.Serving, st.Running, tt.serving)
			}
			if st.Phase != tt.wantPhase || !strings.Contains(st.Message, tt.wantMsg) || !strings.Contains(st.Message, tt.wantMsg2) {
				t.Errorf("status = %s %q, want %s containing %q and %q", st.Phase, st.Message, tt.wantPhase, tt.wantMsg, tt.wantMsg2)
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

// replicaStep is one pass over the single replica of a deployed spec,
// seen in state ("" = gone from fleet, else "active/sub"), and the ops
// wanted.
type replicaStep struct {
	at    time.Duration
	state string
	want  string
}

// runReplicaSteps plans the passes in order with one memory, as one
// leader's term does, with RetryFailed one minute.
func runReplicaSteps(t *testing.T, steps []replicaStep) {
	t.Helper()
	v1 := replicated(1, "docker://web:1")
	opts := Options{RetryFailed: time.Minute}.withDefaults()
	mem := newMemory()
	now := time.Now()
	prev := &store.Status{Name: "web", Phase: store.PhaseRunning, SpecHash: v1.Hash(0), Deployed: v1.Hash(0)}
	for _, s := range steps {
		w := newWorld(t, v1, 0)
		if active, sub, ok := strings.Cut(s.state, "/"); ok {
			w.with(render(t, v1), "launched", active, sub)
		}
		w.prev = prev
		p := &planner{opts: opts, mem: mem, now: now.Add(s.at)}
		ops, _ := p.plan(w.input())
		if got := opsString(ops, w.d.hash); got != s.want {
			t.Fatalf("at %s (%q): ops %q, want %q", s.at, s.state, got, s.want)
		}
	}
}

// A failed replica of a deployed spec is replaced after RetryFailed, and
// so is the next failure of its replacement: no tight restart loop.
func TestPlanReplacesFailedReplicaWithPause(t *testing.T) {
	runReplicaSteps(t, []replicaStep{
		{0, "failed/failed", "stop:0"},
		{time.Second, "", ""},                         // destroyed; waiting out the pause
		{61 * time.Second, "", "create:0"},            // pause over
		{70 * time.Second, "active/running", ""},      // runs again: the pause is forgotten
		{80 * time.Second, "failed/failed", "stop:0"}, // fails again
		{81 * time.Second, "", ""},                    // a new pause, not an instant retry
		{141 * time.Second, "", "create:0"},
	})
}

// TestPlanIgnoresStaleFailedStateOfRecreatedUnit: a name created again
// shows the failed state of its last run for a moment (seen on real
// systemd); that is not a failure of the new unit, but a failure that stays
// past the grace, or follows any other state, is.
func TestPlanIgnoresStaleFailedStateOfRecreatedUnit(t *testing.T) {
	runReplicaSteps(t, []replicaStep{
		{0, "", "create:0"},                          // destroyed by hand: created again
		{2 * time.Second, "failed/failed", ""},       // the name's last run: not believed yet
		{4 * time.Second, "activating/start", ""},    // the new start shows
		{6 * time.Second, "failed/failed", "stop:0"}, // a failure after that is real
		{7 * time.Second, "", ""},
		{70 * time.Second, "", "create:0"},
		{71 * time.Second, "failed/failed", ""},
		{86 * time.Second, "failed/failed", "stop:0"}, // failed for the whole grace: real
	})
}

// planStep is one pass of a planner over a world that changes between
// passes; the status of a pass is the prev of the next, as in the
// reconciler.
type planStep struct {
	at        time.Duration
	state     string // "active/sub" of the replica under test
	wantOps   string
	wantPhase string
	wantMsg   string
}

func runSteps(t *testing.T, opts Options, build func(t *testing.T, state string) *world, prev *store.Status, steps []planStep) {
	t.Helper()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mem := newMemory()
	for i, s := range steps {
		w := build(t, s.state)
		if i == 0 { // all but the replica under test (the last) have run for long
			for _, a := range w.act[:len(w.act)-1] {
				if a.running() {
					mem.readySince[a.name()] = start.Add(-time.Hour)
				}
			}
		}
		w.prev = prev
		p := &planner{opts: opts, mem: mem, now: start.Add(s.at), machines: map[string]string{"m0": "10.0.0.1"}}
		ops, st := p.plan(w.input())
		if got := opsString(ops, w.d.hash); got != s.wantOps {
			t.Fatalf("at %s (%s): ops %q, want %q; status %s %q", s.at, s.state, got, s.wantOps, st.Phase, st.Message)
		}
		if st.Phase != s.wantPhase || !strings.Contains(st.Message, s.wantMsg) {
			t.Fatalf("at %s (%s): status %s %q, want %s containing %q", s.at, s.state, st.Phase, st.Message, s.wantPhase, s.wantMsg)
		}
		prev = st
	}
}

// Units render Restart=always: a crashing replica cycles start-pre →
// running (briefly) → auto-restart and never shows as failed. The planner
// counts its entries into auto-restart across passes.
func TestPlanRestartLoops(t *testing.T) {
	v1 := replicated(3, "docker://web:1")
	v2 := replicated(3, "docker://web:2")
	opts := Options{}.withDefaults() // MinReady 10s, MaxRestarts 2
	const (
		pre     = "activating/start-pre"
		restart = "activating/auto-restart"
		running = "active/running"
	)
	// v1's 3 replicas serve; v2's first replica is in state.
	rollout := func(t *testing.T, state string) *world {
		active, sub, _ := strings.Cut(state, "/")
		return newWorld(t, v2, 0).with(render(t, v1), "launched", "active", "running").with(render(t, v2)[:1], "launched", active, sub)
	}
	rolling := &store.Status{Name: "web", Phase: store.PhasePending, SpecHash: v2.Hash(0), Deployed: v1.Hash(0)}
	prog, failed := store.PhaseProgressing, store.PhaseFailed
	loop := "restart loop: systemd restarted it 2 times"

	t.Run("the second restart seen fails the rollout", func(t *testing.T) {
		runSteps(t, opts, rollout, rolling, []planStep{
			{0, pre, "", prog, "0 of 3 running the current spec"},
			{2 * time.Second, restart, "", prog, "is restarting (1 restart seen)"},
			{4 * time.Second, restart, "", prog, "(1 restart seen)"}, // the same wait, not another restart
			{6 * time.Second, pre, "", prog, "(1 restart seen)"},
			{8 * time.Second, running, "", prog, "1 of 3 running the current spec, 0 ready"},
			{10 * time.Second, restart, "stop:0", failed, ":0.service on machine m0 (10.0.0.1) is in a " + loop},
		})
	})
	t.Run("first seen in auto-restart counts", func(t *testing.T) {
		runSteps(t, opts, rollout, rolling, []planStep{
			{0, restart, "", prog, "(1 restart seen)"},
			{3 * time.Second, running, "", prog, "(1 restart seen)"},
			{5 * time.Second, restart, "stop:0", failed, loop},
		})
	})
	t.Run("MaxRestarts 3 waits for a third", func(t *testing.T) {
		opts := opts
		opts.MaxRestarts = 3
		runSteps(t, opts, rollout, rolling, []planStep{
			{0, restart, "", prog, "(1 restart seen)"},
			{3 * time.Second, pre, "", prog, ""},
			{5 * time.Second, restart, "", prog, "(2 restarts seen)"},
			{7 * time.Second, pre, "", prog, ""},
			{9 * time.Second, restart, "stop:0", failed, "systemd restarted it 3 times"},
		})
	})
	// fleet's agent polls systemd every second: a start-pre and running
	// moment shorter than that can be missed, and the unit looks parked in
	// auto-restart. systemd waits there exactly RestartSec (10s here), so
	// more than RestartSec+3s of it is another restart.
	t.Run("auto-restart longer than RestartSec is another restart", func(t *testing.T) {
		runSteps(t, opts, rollout, rolling, []planStep{
			{0, restart, "", prog, "(1 restart seen)"},
			{4 * time.Second, restart, "", prog, "(1 restart seen)"},
			{12 * time.Second, restart, "", prog, "(1 restart seen)"},
			{14 * time.Second, restart, "stop:0", failed, loop},
		})
	})
	// A restart starts MinReady afresh: running 1s after a restart is not
	// ready, though the replica first ran 15s ago.
	t.Run("a restarting replica is never ready", func(t *testing.T) {
		runSteps(t, opts, rollout, rolling, []planStep{
			{0, running, "", prog, "1 of 3 running the current spec, 0 ready"},
			{9 * time.Second, restart, "", prog, "(1 restart seen)"},
			{10 * time.Second, running, "", prog, "0 ready"},
			{15 * time.Second, running, "", prog, "0 ready"},
			{20 * time.Second, running, "create:1 stop:old2", prog, "1 ready"}, // 10s since the restart
		})
	})
	t.Run("running for MinReady ends the loop: the count starts again", func(t *testing.T) {
		runSteps(t, opts, rollout, rolling, []planStep{
			{0, restart, "", prog, "(1 restart seen)"},
			{3 * time.Second, running, "", prog, "(1 restart seen)"},
			{13 * time.Second, running, "create:1 stop:old2", prog, "1 ready"},
			{15 * time.Second, restart, "", prog, "(1 restart seen)"},
			{17 * time.Second, pre, "", prog, ""},
			{19 * time.Second, restart, "stop:0", failed, loop},
		})
	})

	// A replica of the deployed spec that loops is left to systemd, which
	// keeps trying, and named in the status.
	deployed := func(t *testing.T, state string) *world {
		active, sub, _ := strings.Cut(state, "/")
		return newWorld(t, v1, 0).with(render(t, v1)[:2], "launched", "active", "running").with(render(t, v1)[2:], "launched", active, sub)
	}
	run := &store.Status{Name: "web", Phase: store.PhaseRunning, SpecHash: v1.Hash(0), Deployed: v1.Hash(0)}
	t.Run("a deployed replica restarting is not destroyed", func(t *testing.T) {
		var steps []planStep
		for i := range 5 {
			at := time.Duration(i) * 4 * time.Second
			steps = append(steps,
				planStep{at, restart, "", prog, fmt.Sprintf(":2.service on machine m0 (10.0.0.1) is restarting (%s seen)", plural(i+1, "restart"))},
				planStep{at + 2*time.Second, pre, "", prog, "2 of 3 running the current spec, 2 ready"})
		}
		runSteps(t, opts, deployed, run, steps)
	})
}

// Health checks render as ExecStartPost: systemd holds a started unit in
// activating/start-post until the check passes (then active/running), and
// when it does not pass within startPeriod fails the start, which under
// Restart=always is activating/auto-restart. A new replica seen so fails
// its rollout the first time; a replica of a deployed spec is left to
// systemd.
func TestPlanHealthChecks(t *testing.T) {
	v1 := replicated(3, "docker://web:1")
	v2 := replicated(3, "docker://web:2")
	opts := Options{}.withDefaults() // MinReady 10s, MaxRestarts 2
	const (
		pre      = "activating/start-pre"
		post     = "activating/start-post"
		restart  = "activating/auto-restart"
		running  = "active/running"
		stopping = "deactivating/stop-sigterm"
		failedSt = "failed/failed"
	)
	rollout := func(t *testing.T, state string) *world {
		active, sub, _ := strings.Cut(state, "/")
		return newWorld(t, v2, 0).with(render(t, v1), "launched", "active", "running").with(render(t, v2)[:1], "launched", active, sub)
	}
	rolling := &store.Status{Name: "web", Phase: store.PhasePending, SpecHash: v2.Hash(0), Deployed: v1.Hash(0)}
	prog, failed := store.PhaseProgressing, store.PhaseFailed
	newName := render(t, v2)[0].Name
	unhealthy := "rollout of " + v2.Hash(0) + " failed: replica " + newName +
		" on machine m0 (10.0.0.1) did not become healthy (its health check did not pass within startPeriod; see its journal on that machine)" +
		"; the new replicas are removed and the previous version (if any) keeps running"
	waiting := "0 of 3 running the current spec, 0 ready, 1 waiting for its health check; 3 old still to replace"

	t.Run("start-post then auto-restart fails the rollout at once", func(t *testing.T) {
		runSteps(t, opts, rollout, rolling, []planStep{
			{0, pre, "", prog, "0 of 3 running the current spec, 0 ready; 3 old"},
			{2 * time.Second, post, "", prog, waiting},
			{4 * time.Second, post, "", prog, waiting},
			{6 * time.Second, restart, "stop:0", failed, unhealthy}, // the first restart, MaxRestarts 2
		})
	})
	t.Run("first seen in start-post, then auto-restart", func(t *testing.T) {
		runSteps(t, opts, rollout, rolling, []planStep{
			{0, post, "", prog, waiting},
			{2 * time.Second, restart, "stop:0", failed, unhealthy},
		})
	})
	// On real systemd a failed ExecStartPost stops the unit (ExecStop,
	// ExecStopPost) before auto-restart: still a failed check.
	t.Run("start-post, stopping, auto-restart", func(t *testing.T) {
		runSteps(t, opts, rollout, rolling, []planStep{
			{0, post, "", prog, waiting},
			{2 * time.Second, stopping, "", prog, "0 of 3 running"},
			{4 * time.Second, restart, "stop:0", failed, unhealthy},
		})
	})
	t.Run("start-post then failed: the health message", func(t *testing.T) {
		runSteps(t, opts, rollout, rolling, []planStep{
			{0, post, "", prog, waiting},
			{2 * time.Second, failedSt, "stop:0", failed, unhealthy},
		})
	})
	t.Run("start-post then running: ready after MinReady", func(t *testing.T) {
		runSteps(t, opts, rollout, rolling, []planStep{
			{0, pre, "", prog, "0 ready"},
			{2 * time.Second, post, "", prog, waiting},
			{4 * time.Second, running, "", prog, "1 of 3 running the current spec, 0 ready; 3 old"},
			{10 * time.Second, running, "", prog, "0 ready"},
			{14 * time.Second, running, "create:1 stop:old2", prog, "1 of 3 running the current spec, 1 ready; 3 old"},
		})
	})
	// Passed its check, then crashed: a restart, counted against
	// MaxRestarts; start-post at an earlier pass does not make it a
	// failed check.
	t.Run("a crash after its check passed is a restart", func(t *testing.T) {
		runSteps(t, opts, rollout, rolling, []planStep{
			{0, post, "", prog, waiting},
			{2 * time.Second, running, "", prog, "1 of 3 running the current spec, 0 ready"},
			{4 * time.Second, restart, "", prog, "3 old still to replace, 3 serving; replica " + newName + " on machine m0 (10.0.0.1) is restarting (1 restart seen)"},
			{6 * time.Second, pre, "", prog, "(1 restart seen)"},
			{8 * time.Second, post, "", prog, "1 waiting for its health check"},
			{10 * time.Second, running, "", prog, "(1 restart seen)"},
			{12 * time.Second, restart, "stop:0", failed, "is in a restart loop: systemd restarted it 2 times"},
		})
	})
	// The same unit that passes its check once and fails it the next
	// start (after a crash) fails the rollout then.
	t.Run("a crash, then a failed check", func(t *testing.T) {
		runSteps(t, opts, rollout, rolling, []planStep{
			{0, running, "", prog, "1 of 3 running"},
			{2 * time.Second, restart, "", prog, "(1 restart seen)"},
			{4 * time.Second, post, "", prog, "1 waiting for its health check"},
			{6 * time.Second, restart, "stop:0", failed, unhealthy},
		})
	})

	// A replica of the deployed spec that fails its check (at a start, or
	// once running: the check's script kills it, and fleet cannot tell
	// that from a crash) is left to systemd and named in the status.
	deployed := func(t *testing.T, state string) *world {
		active, sub, _ := strings.Cut(state, "/")
		return newWorld(t, v1, 0).with(render(t, v1)[:2], "launched", "active", "running").with(render(t, v1)[2:], "launched", active, sub)
	}
	run := &store.Status{Name: "web", Phase: store.PhaseRunning, SpecHash: v1.Hash(0), Deployed: v1.Hash(0)}
	t.Run("a deployed replica failing its check is not destroyed", func(t *testing.T) {
		runSteps(t, opts, deployed, run, []planStep{
			{0, running, "", prog, "3 of 3 running the current spec, 2 ready"},
			{2 * time.Second, restart, "", prog, ":2.service on machine m0 (10.0.0.1) is restarting (1 restart seen)"},
			{4 * time.Second, pre, "", prog, "2 of 3 running the current spec, 2 ready; replica"},
			{6 * time.Second, post, "", prog, "2 of 3 running the current spec, 2 ready, 1 waiting for its health check; replica"},
			{8 * time.Second, restart, "", prog, "is restarting (2 restarts seen, 1 after its health check did not pass at start)"},
			{10 * time.Second, post, "", prog, "1 waiting for its health check"},
			{12 * time.Second, stopping, "", prog, "(2 restarts seen, 1 after"},
			{14 * time.Second, restart, "", prog, "is restarting (3 restarts seen, 2 after its health check did not pass at start)"},
			{16 * time.Second, post, "", prog, ""},
			{18 * time.Second, running, "", prog, "(3 restarts seen, 2 after"},
			{28 * time.Second, running, "", store.PhaseRunning, "3 of 3 running"}, // ready again: forgotten
		})
	})
}

// fakeFleet is a crude fleet for plan tests that span many passes: between
// two passes a created unit starts (start-pre, then running), a unit set
// loaded stops, a destroyed one leaves its state behind for a pass.
type fakeFleet struct {
	t     *testing.T
	units map[string]*actualUnit
}

func newFakeFleet(t *testing.T, act []*actualUnit) *fakeFleet {
	f := &fakeFleet{t: t, units: map[string]*actualUnit{}}
	for _, a := range act {
		f.units[a.name()] = a
	}
	return f
}

func (f *fakeFleet) actual() []*actualUnit {
	var out []*actualUnit
	for _, a := range f.units {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name() < out[j].name() })
	return out
}

func (f *fakeFleet) apply(ops []op) {
	for _, o := range ops {
		switch o.kind {
		case opCreate:
			if f.units[o.name] != nil {
				f.t.Fatalf("create of %s, which exists", o.name)
			}
			id, _ := deploy.ParseUnitName("k2", o.name)
			cp := *o.unit
			cp.DesiredState, cp.MachineID = targetLaunched, fmt.Sprintf("m%d", id.Index)
			f.units[o.name] = &actualUnit{id: id, unit: &cp, hash: unitHash(cp.Options)}
		case opLaunch, opStop:
			f.units[o.name].unit.DesiredState = map[opKind]string{opLaunch: targetLaunched, opStop: targetLoaded}[o.kind]
		case opDestroy:
			f.units[o.name].unit = nil
		}
	}
}

// tick moves every unit one step on.
func (f *fakeFleet) tick() {
	for name, a := range f.units {
		switch {
		case a.unit == nil:
			delete(f.units, name) // its state is gone now
		case a.unit.DesiredState != targetLaunched:
			for _, s := range a.states {
				s.SystemdActiveState, s.SystemdSubState = "inactive", "dead"
			}
		case len(a.states) == 0:
			a.states = []*schema.UnitState{{Name: name, MachineID: a.unit.MachineID, SystemdActiveState: "activating", SystemdSubState: "start-pre", Hash: a.hash}}
		default:
			a.states[0].SystemdActiveState, a.states[0].SystemdSubState = "active", "running"
		}
	}
}

// serving counts the units that run and are meant to.
func (f *fakeFleet) serving() int {
	n := 0
	for _, a := range f.units {
		if a.running() && a.target() == targetLaunched {
			n++
		}
	}
	return n
}

// A Kaylee version that renders differently leaves every fleet unit of an
// unchanged spec under its current name with another unit file. The
// replicas are replaced in place, one at a time, never more than one down;
// before, the rollout stayed in progressing for ever.
func TestPlanRenderingChangeReplacesOneAtATime(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d replicas", n), func(t *testing.T) {
			v1 := replicated(n, "docker://web:1")
			w := newWorld(t, v1, 0).with(render(t, v1), "launched", "active", "running")
			idx := make([]int, n)
			for i := range idx {
				idx[i] = i
			}
			w.rerendered(idx...)
			f := newFakeFleet(t, w.act)
			prev := &store.Status{Name: "web", Phase: store.PhaseRunning, SpecHash: v1.Hash(0), Deployed: v1.Hash(0)}
			mem := newMemory()
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			opts := Options{}.withDefaults()
			var trace []string
			for pass := 0; ; pass++ {
				if pass == 60 {
					t.Fatalf("not converged after %d passes: %s\n%s", pass, prev.Message, strings.Join(trace, "\n"))
				}
				p := &planner{opts: opts, mem: mem, now: now.Add(time.Duration(pass) * 5 * time.Second)}
				ops, st := p.plan(&unitInput{name: "web", spec: v1, desired: w.d, actual: f.actual(), prev: prev})
				trace = append(trace, fmt.Sprintf("%3ds %-22q %s %q", pass*5, opsString(ops, w.d.hash), st.Phase, st.Message))
				prev = st
				if st.Phase == store.PhaseRunning {
					break
				}
				f.apply(ops)
				if got := f.serving(); got < n-1 {
					t.Fatalf("%d serving of %d after pass %d:\n%s", got, n, pass, strings.Join(trace, "\n"))
				}
				f.tick()
			}
			for name, a := range f.units {
				if a.hash != w.d.hashes[name] || !a.running() {
					t.Fatalf("after convergence %s: hash %s running %v, want %s", name, a.hash, a.running(), w.d.hashes[name])
				}
			}
			if len(f.units) != n {
				t.Fatalf("%d fleet units, want %d", len(f.units), n)
			}
		})
	}
}

func TestRestartSec(t *testing.T) {
	for _, tt := range []struct {
		opts []*schema.UnitOption
		want time.Duration
		ok   bool
	}{
		{[]*schema.UnitOption{{Section: "Service", Name: "RestartSec", Value: "10"}}, 10 * time.Second, true},
		{[]*schema.UnitOption{{Section: "Service", Name: "RestartSec", Value: "1min 30s"}}, 90 * time.Second, true},
		{[]*schema.UnitOption{{Section: "Service", Name: "RestartSec", Value: "250ms"}}, 250 * time.Millisecond, true},
		{[]*schema.UnitOption{{Section: "Service", Name: "RestartSec", Value: "1"}, {Section: "Service", Name: "RestartSec", Value: "2"}}, 2 * time.Second, true},
		{nil, 100 * time.Millisecond, true}, // systemd's default
		{[]*schema.UnitOption{{Section: "Service", Name: "RestartSec", Value: "later"}}, 0, false},
	} {
		got, ok := restartSec(&schema.Unit{Options: tt.opts})
		if got != tt.want || ok != tt.ok {
			t.Errorf("%v: %s %v, want %s %v", tt.opts, got, ok, tt.want, tt.ok)
		}
	}
	if _, ok := restartSec(nil); ok {
		t.Error("a unit not known has a RestartSec")
	}
}

// The note of a replica gated on several mount services names them all.
func TestPlanMountGateNames(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	vol := func(id, driver string) deploy.Volume {
		return deploy.Volume{ID: id, Driver: driver, Path: "/" + id}
	}
	tests := []struct {
		name    string
		volumes []deploy.Volume
		want    string // "" : no gate in the note
	}{
		{"host path and plugin: no gate", []deploy.Volume{{Source: "/srv", Path: "/srv"}, vol("v9", "blocker")}, ""},
		{"one", []deploy.Volume{vol("vol-1", "systemd-mountservice-ebs")},
			"; it starts only once ebs@vol-1.service is active on machine m0 (10.0.0.1) (systemctl status ebs@vol-1.service)"},
		{"three", []deploy.Volume{vol("a", "systemd-mountservice-ebs"), vol("v9", "blocker"), vol("b", "systemd-mountservice-nfs"), vol("c", "systemd-mountservice-ebs")},
			"; it starts only once ebs@a.service, nfs@b.service and ebs@c.service are active on machine m0 (10.0.0.1) (systemctl status ebs@a.service nfs@b.service ebs@c.service)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := replicated(1, "docker://web:1")
			s.Volumes = tt.volumes
			w := newWorld(t, s, 0).with(render(t, s), "launched", "activating", "auto-restart")
			_, st := planWorld(Options{}.withDefaults(), now, w, 0)
			restarting := ":0.service on machine m0 (10.0.0.1) is restarting (1 restart seen)"
			if !strings.Contains(st.Message, restarting+tt.want) || tt.want == "" && strings.Contains(st.Message, "starts only once") {
				t.Errorf("status %q, want %q", st.Message, restarting+tt.want)
			}
		})
	}
}
