package fleet

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// dbMachines are m0..m(n-1), each with role=db but m0 (role=web), and
// IPs 10.0.0.(i+1).
func dbMachines(n int) []deploy.Machine {
	var out []deploy.Machine
	for i := range n {
		role := "db"
		if i == 0 {
			role = "web"
		}
		out = append(out, deploy.Machine{ID: fmt.Sprintf("m%d", i), Metadata: map[string]string{"role": role, "az": fmt.Sprintf("z%d", i%2)}})
	}
	return out
}

func stateful(replicas, perHost int, image string) *deploy.Spec {
	return &deploy.Spec{Name: "db", Replicas: replicas, MaxReplicasPerHost: perHost, Stateful: true, Machine: []string{"role=db"},
		Apps: []deploy.App{{Image: image}}}
}

// members renders a stateful spec with its members on the given machines.
func members(t *testing.T, s *deploy.Spec, on ...string) []*schema.Unit {
	t.Helper()
	units, err := deploy.Render(s, deploy.RenderOptions{Members: on})
	if err != nil {
		t.Fatal(err)
	}
	return units
}

// pinned puts every fleet unit of w on the machine it is pinned to (with()
// schedules them on m0, m1… in order); a unit pinned to a machine not in
// live is unscheduled, with no state, as fleet leaves it.
func (w *world) pinned(live map[string]string) *world {
	for _, a := range w.act {
		if a.unit == nil {
			continue // only a state left: it says where it is
		}
		a.unit.MachineID = pinnedMachine(a.unit)
		if _, ok := live[a.unit.MachineID]; !ok {
			a.unit.MachineID, a.states = "", nil
		}
		for _, s := range a.states {
			s.MachineID = a.unit.MachineID
		}
	}
	return w
}

// placed renders w's spec as the planner does: its members placed by
// placeMembers on machines, from w's fleet units.
func (w *world) placed(machines []deploy.Machine) *world {
	w.t.Helper()
	return w.placedWith(machines, memberLoss{})
}

// placedWith is placed with what placement knows of lost machines.
func (w *world) placedWith(machines []deploy.Machine, loss memberLoss) *world {
	w.t.Helper()
	hash := w.spec.Hash(0)
	pl := placeMembers(w.spec, hash, machines, w.act, loss)
	units, err := deploy.Render(w.spec, deploy.RenderOptions{Members: pl.members, Zones: pl.zones})
	if err != nil {
		w.t.Fatal(err)
	}
	w.d = &desiredUnits{hash: hash, units: units, hashes: map[string]string{}, members: pl.members, zones: pl.zones, stuck: pl.stuck}
	for _, u := range units {
		w.d.hashes[u.Name] = unitHash(u.Options)
	}
	return w
}

// planOn plans w once at now with the machines of live (ID → IP) in
// fleet; running replicas have run for readyAgo, those of the hashes in
// fresh for a second only.
func planOn(opts Options, now time.Time, w *world, live map[string]string, readyAgo time.Duration, fresh ...string) ([]op, *store.Status) {
	p := &planner{opts: opts, mem: newMemory(), now: now, machines: live}
	for id, ip := range dbIPs {
		p.mem.ips[id] = ip
	}
	for _, a := range w.act {
		if a.running() {
			p.mem.readySince[a.name()] = now.Add(-readyAgo)
			for _, h := range fresh {
				if a.id.SpecHash == h {
					p.mem.readySince[a.name()] = now.Add(-time.Second)
				}
			}
		}
	}
	return p.plan(w.input())
}

// dbIPs are the IPs of dbMachines, as the planner remembers them.
var dbIPs = map[string]string{"m0": "10.0.0.1", "m1": "10.0.0.2", "m2": "10.0.0.3", "m3": "10.0.0.4"}

func TestPlaceMembers(t *testing.T) {
	machines := dbMachines(4) // m1, m2, m3 match role=db
	spread := func(s *deploy.Spec) *deploy.Spec { s.Spread = &deploy.Spread{Key: "az"}; return s }
	tests := []struct {
		name   string
		spec   *deploy.Spec
		actual func(t *testing.T) unitSet
		want   string
	}{
		{name: "first placement: one per matching machine (maxReplicasPerHost 1), ID order",
			spec: stateful(3, 1, "docker://db:1"), want: "m1 m2 m3"},
		{name: "more members than machines with room: the rest wait unplaced",
			spec: stateful(4, 1, "docker://db:1"), want: "m1 m2 m3 -"},
		{name: "maxReplicasPerHost 2: fewest members first, then ID order",
			spec: stateful(5, 2, "docker://db:1"), want: "m1 m2 m3 m1 m2"},
		{name: "spread: members alternate zones (m1, m3 in z1; m2 in z0)",
			spec: spread(stateful(2, 1, "docker://db:1")), want: "m2 m1"},
		{name: "spread: the member's zone has no machine with room: it waits unplaced (the skew holds)",
			spec: spread(stateful(3, 1, "docker://db:1")), want: "m2 m1 -"},
		{name: "a member keeps the machine its fleet units are pinned to, of any spec hash; new ones fill around it",
			spec: stateful(3, 1, "docker://db:2"),
			actual: func(t *testing.T) unitSet {
				w := (&world{t: t, spec: stateful(2, 1, "docker://db:1")}).with(members(t, stateful(2, 1, "docker://db:1"), "m3", "m1"), "launched", "active", "running")
				return w.act
			},
			want: "m3 m1 m2"},
		{name: "a member whose machine is gone keeps it (it waits)",
			spec: stateful(2, 1, "docker://db:1"),
			actual: func(t *testing.T) unitSet {
				w := (&world{t: t, spec: stateful(2, 1, "docker://db:1")}).with(members(t, stateful(2, 1, "docker://db:1"), "m9", "m1"), "launched", "", "")
				return w.act
			},
			want: "m9 m1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var actual unitSet
			if tt.actual != nil {
				actual = tt.actual(t)
			}
			on := placeMembers(tt.spec, tt.spec.Hash(0), machines, actual, memberLoss{}).members
			for i := range on {
				if on[i] == "" {
					on[i] = "-"
				}
			}
			if got := strings.Join(on, " "); got != tt.want {
				t.Errorf("members on %s, want %s", got, tt.want)
			}
		})
	}
}

// The phases of a stateful unit: sticky placement, stop-then-start
// updates member by member (highest ordinal first), scaling by the
// highest ordinals, and a member whose machine is gone waiting for it.
func TestPlanStateful(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	opts := Options{}.withDefaults()
	machines := dbMachines(4)
	live := map[string]string{"m0": "10.0.0.1", "m1": "10.0.0.2", "m2": "10.0.0.3", "m3": "10.0.0.4"}
	v1, v2, v3 := stateful(3, 1, "docker://db:1"), stateful(3, 1, "docker://db:2"), stateful(3, 1, "docker://db:3")
	h1, h2, h3 := v1.Hash(0), v2.Hash(0), v3.Hash(0)
	// park: the fleet unit w.act[i] parked and down.
	park := func(w *world, i int) {
		w.act[i].unit.DesiredState, w.act[i].states[0].SystemdActiveState, w.act[i].states[0].SystemdSubState = "loaded", "inactive", "dead"
	}
	// update: v1 runs members 0, 1, 2 on m1, m2, m3; v2 is desired.
	upd := func(t *testing.T) *world {
		return (&world{t: t, spec: v2}).with(members(t, v1, "m1", "m2", "m3"), "launched", "active", "running")
	}
	newOn := func(t *testing.T, w *world, i int, target, active, sub string) *world {
		return w.with(members(t, v2, "m1", "m2", "m3")[i:i+1], target, active, sub)
	}
	deployed := func(w *world, hash string) *world {
		w.prev = &store.Status{Name: "db", Phase: store.PhaseRunning, SpecHash: hash, Deployed: hash}
		return w
	}
	// old1Parked: members 0 and 1 of v1 on m1 and m2, member 1 parked and
	// down (member 2's old unit already destroyed).
	old1Parked := func(t *testing.T) *world {
		w := (&world{t: t, spec: v2}).with(members(t, v1, "m1", "m2", "m3")[:2], "launched", "active", "running")
		w.act[1].unit.DesiredState, w.act[1].states[0].SystemdActiveState, w.act[1].states[0].SystemdSubState = "loaded", "inactive", "dead"
		return w
	}
	tests := []struct {
		name   string
		world  func(t *testing.T) *world
		live   map[string]string
		fresh  bool // the new version's running units have run for a second only
		want   string
		pinned string // the machines of the units created, in op order (highest ordinal first)
		phase  string
		msg    string // the status message, when set
		// launchOf: the spec hash of every fleet unit launched, when set
		launchOf string
	}{{
		name:  "first placement: every member at once, each pinned to its own machine",
		world: func(t *testing.T) *world { return &world{t: t, spec: v1} },
		want:  "create:0 create:1 create:2", pinned: "m3 m2 m1", phase: store.PhasePending,
	}, {
		name:  "update: park member 2 first; nothing created while it runs",
		world: upd,
		want:  "stop:old2", phase: store.PhasePending,
		msg: "rolling out: each member stops before its new version starts; 3 of 3 serving the old version; replacing 1 member at a time (update.maxUnavailable)",
	}, {
		name: "member 2 parked, still stopping: wait, touch no other member",
		world: func(t *testing.T) *world {
			w := (&world{t: t, spec: v2}).with(members(t, v1, "m1", "m2", "m3"), "launched", "active", "running")
			w.act[2].unit.DesiredState, w.act[2].states[0].SystemdActiveState, w.act[2].states[0].SystemdSubState = "loaded", "deactivating", "stop-sigterm"
			return w
		},
		want: "", phase: store.PhasePending,
		msg: "rolling out: each member stops before its new version starts; 2 of 3 serving the old version; replacing 1 member at a time (update.maxUnavailable)",
	}, {
		name: "member 2 parked and down: its new unit is created on the same machine, the old one kept loaded",
		world: func(t *testing.T) *world {
			w := upd(t)
			w.act[2].unit.DesiredState, w.act[2].states[0].SystemdActiveState, w.act[2].states[0].SystemdSubState = "loaded", "inactive", "dead"
			return w
		},
		want: "create:2", pinned: "m3", phase: store.PhasePending,
	}, {
		name: "member 2's new unit running, not ready yet: the old one stays parked, no other member touched",
		world: func(t *testing.T) *world {
			w := upd(t)
			w.act[2].unit.DesiredState, w.act[2].states[0].SystemdActiveState, w.act[2].states[0].SystemdSubState = "loaded", "inactive", "dead"
			return newOn(t, w, 2, "launched", "active", "running")
		},
		fresh: true, want: "", phase: store.PhaseProgressing,
	}, {
		name: "member 2 ready: its old unit is destroyed, member 1 parked",
		world: func(t *testing.T) *world {
			w := upd(t)
			w.act[2].unit.DesiredState, w.act[2].states[0].SystemdActiveState, w.act[2].states[0].SystemdSubState = "loaded", "inactive", "dead"
			return newOn(t, w, 2, "launched", "active", "running")
		},
		want: "destroy:old2 stop:old1", phase: store.PhaseProgressing,
	}, {
		name: "member 1 ready: its old unit is destroyed, member 0 parked",
		world: func(t *testing.T) *world {
			w := old1Parked(t)
			return newOn(t, newOn(t, w, 1, "launched", "active", "running"), 2, "launched", "active", "running")
		},
		want: "destroy:old1 stop:old0", phase: store.PhaseProgressing,
	}, {
		name: "member 1 fails: its new unit goes, its parked one is launched again; member 2 keeps its new unit, member 0 its old one",
		world: func(t *testing.T) *world {
			w := old1Parked(t)
			return newOn(t, newOn(t, w, 1, "launched", "failed", "failed"), 2, "launched", "active", "running")
		},
		want: "launch:old1 stop:1", phase: store.PhaseFailed,
	}, {
		name: "failure held, member 1's new unit still up: it is stopped, its old one launched only once it is down",
		world: func(t *testing.T) *world {
			w := old1Parked(t)
			w = newOn(t, newOn(t, w, 1, "launched", "active", "running"), 2, "launched", "active", "running")
			w.prev = &store.Status{Name: "db", Phase: store.PhaseFailed, SpecHash: h2, Deployed: h1, Message: "rollout failed"}
			return w
		},
		want: "stop:1", phase: store.PhaseFailed,
	}, {
		// A member never runs twice: a slot's unit starts only once every
		// other unit of the slot is down and not launched.
		name: "revert to v1 while member 2's v2 unit runs, not ready: v2 is stopped, v1's parked unit launched only once v2 is down",
		world: func(t *testing.T) *world {
			w := (&world{t: t, spec: v1}).with(members(t, v1, "m1", "m2", "m3"), "launched", "active", "running")
			park(w, 2)
			w = w.with(members(t, v2, "m1", "m2", "m3")[2:3], "launched", "active", "running")
			w.prev = &store.Status{Name: "db", Phase: store.PhaseProgressing, SpecHash: h2, Deployed: h1}
			return w
		},
		want: "stop:old2", phase: store.PhaseProgressing,
	}, {
		name: "revert to v1, member 2's v2 unit down: v1's parked unit is launched",
		world: func(t *testing.T) *world {
			w := (&world{t: t, spec: v1}).with(members(t, v1, "m1", "m2", "m3"), "launched", "active", "running")
			park(w, 2)
			w = w.with(members(t, v2, "m1", "m2", "m3")[2:3], "loaded", "inactive", "dead")
			w.prev = &store.Status{Name: "db", Phase: store.PhaseProgressing, SpecHash: h2, Deployed: h1}
			return w
		},
		want: "launch:2", launchOf: h1, phase: store.PhaseProgressing,
	}, {
		name: "v3 fails on member 2, parked units of v1 and v2 there: only the deployed v1's is launched again, v2's destroyed",
		world: func(t *testing.T) *world {
			w := (&world{t: t, spec: v3}).with(members(t, v1, "m1", "m2", "m3"), "launched", "active", "running")
			park(w, 2)
			w = w.with(members(t, v2, "m1", "m2", "m3")[2:3], "loaded", "inactive", "dead")
			w = w.with(members(t, v3, "m1", "m2", "m3")[2:3], "launched", "failed", "failed")
			w.prev = &store.Status{Name: "db", Phase: store.PhaseFailed, SpecHash: h3, Deployed: h1, Message: "rollout failed"}
			return w
		},
		want: "destroy:old2 launch:old2 stop:2", launchOf: h1, phase: store.PhaseFailed,
	}, {
		name: "failure held, member 2's new unit destroyed while still stopping (only its state left, deactivating): its parked one waits",
		world: func(t *testing.T) *world {
			w := (&world{t: t, spec: v2}).with(members(t, v1, "m1", "m2", "m3"), "launched", "active", "running")
			park(w, 2)
			w = w.with(members(t, v2, "m1", "m2", "m3")[2:3], "launched", "deactivating", "stop-sigterm")
			w.act[3].states[0].MachineID, w.act[3].unit = "m3", nil
			w.prev = &store.Status{Name: "db", Phase: store.PhaseFailed, SpecHash: h2, Deployed: h1, Message: "rollout failed"}
			return w
		},
		want: "", phase: store.PhaseFailed,
	}, {
		name: "scale 2 → 3: member 2 is added, pinned to a machine of its own; 0 and 1 untouched",
		world: func(t *testing.T) *world {
			w := (&world{t: t, spec: v1}).with(members(t, stateful(2, 1, "docker://db:1"), "m1", "m2"), "launched", "active", "running")
			return deployed(w, h1)
		},
		want: "create:2", pinned: "m3", phase: store.PhaseProgressing,
	}, {
		name: "scale 3 → 2: member 2 only is stopped",
		world: func(t *testing.T) *world {
			w := (&world{t: t, spec: stateful(2, 1, "docker://db:1")}).with(members(t, v1, "m1", "m2", "m3"), "launched", "active", "running")
			return deployed(w, h1)
		},
		want: "stop:2", phase: store.PhaseProgressing,
	}, {
		name: "member 1's machine is gone: it stays pinned there and waits; nothing is created elsewhere",
		world: func(t *testing.T) *world {
			return deployed((&world{t: t, spec: v1}).with(members(t, v1, "m1", "m2", "m3"), "launched", "active", "running"), h1)
		},
		live: map[string]string{"m0": "10.0.0.1", "m1": "10.0.0.2", "m3": "10.0.0.4"},
		want: "", phase: store.PhaseProgressing,
		msg: "2 of 3 running the current spec, 2 ready; member 1 waits for machine m2 (10.0.0.3), its data is there",
	}, {
		name:  "a machine gone during an update: the member on it counts as unavailable, no other member is parked",
		world: upd,
		live:  map[string]string{"m0": "10.0.0.1", "m2": "10.0.0.3", "m3": "10.0.0.4"},
		want:  "", phase: store.PhasePending,
	}, {
		name: "a unit rolled out, with update.order primary-last and onMachineLoss move, every machine live: no probe asked, nothing to say",
		world: func(t *testing.T) *world {
			s := stateful(3, 1, "docker://db:1")
			s.Primary = &deploy.Probe{Exec: []string{"/bin/true"}}
			s.Update = &deploy.Update{Order: deploy.OrderPrimaryLast}
			s.OnMachineLoss = deploy.MachineLossMove
			return deployed((&world{t: t, spec: s}).with(members(t, s, "m1", "m2", "m3"), "launched", "active", "running"), h1)
		},
		want: "", phase: store.PhaseRunning,
		msg: "3 of 3 running",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := live
			if tt.live != nil {
				l = tt.live
			}
			var ms []deploy.Machine
			for _, m := range machines {
				if _, ok := l[m.ID]; ok {
					ms = append(ms, m)
				}
			}
			w := tt.world(t).pinned(l).placed(ms)
			var fresh []string
			if tt.fresh {
				fresh = []string{w.d.hash}
			}
			ops, st := planOn(opts, now, w, l, time.Minute, fresh...)
			if got := opsString(ops, w.d.hash); got != tt.want {
				t.Errorf("ops = %q, want %q (%s)", got, tt.want, st.Message)
			}
			var on []string
			for _, o := range ops {
				if o.kind == opCreate {
					on = append(on, pinnedMachine(o.unit))
				}
			}
			if got := strings.Join(on, " "); got != tt.pinned {
				t.Errorf("created on %q, want %q", got, tt.pinned)
			}
			for _, o := range ops {
				if id, _ := deploy.ParseUnitName("k2", o.name); o.kind == opLaunch && tt.launchOf != "" && id.SpecHash != tt.launchOf {
					t.Errorf("launched %s, want only units of spec hash %s launched", o.name, tt.launchOf)
				}
			}
			if st.Phase != tt.phase {
				t.Errorf("phase %s (%s), want %s", st.Phase, st.Message, tt.phase)
			}
			if tt.msg != "" && st.Message != tt.msg {
				t.Errorf("message %q,\nwant    %q", st.Message, tt.msg)
			}
		})
	}
}

// render places a stateful unit's members and caches the rendering by
// placement: the same placement (even on other machines) is the cached
// rendering, another one renders again; every member is pinned.
func TestRenderStatefulMembers(t *testing.T) {
	pp := newPassPlanner(Options{}.withDefaults())
	s := stateful(3, 1, "docker://db:2")
	u := &store.Unit{Name: "db", Spec: *s, Raw: s.CanonicalJSON()}
	pins := func(d *desiredUnits) string {
		var on []string
		for _, du := range d.units {
			on = append(on, pinnedMachine(du))
		}
		return strings.Join(on, " ")
	}
	d1, err := pp.render(u, "", 0, dbMachines(4), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := pins(d1); got != "m1 m2 m3" || strings.Join(d1.members, " ") != got {
		t.Fatalf("first placement pinned to %q (members %v), want m1 m2 m3", got, d1.members)
	}
	// Members 0 and 1 run an older spec on m3 and m1: they keep them.
	old := (&world{t: t, spec: s}).with(members(t, stateful(2, 1, "docker://db:1"), "m3", "m1"), "launched", "active", "running").act
	d2, err := pp.render(u, "", 0, dbMachines(4), old)
	if err != nil {
		t.Fatal(err)
	}
	if got := pins(d2); got != "m3 m1 m2" || d2 == d1 {
		t.Fatalf("pinned to %q (cached: %v), want m3 m1 m2 rendered again", got, d2 == d1)
	}
	// A machine joins: no member moves, the rendering is the cached one.
	d3, err := pp.render(u, "", 0, append(dbMachines(4), deploy.Machine{ID: "m4", Metadata: map[string]string{"role": "db"}}), old)
	if err != nil {
		t.Fatal(err)
	}
	if d3 != d2 {
		t.Fatalf("a machine that joins re-rendered the unit: %q", pins(d3))
	}
}

// withProbes adds the primary probes of the rollout of spec s to w, one
// per member ordinal in answers, pinned to the machine of w's fleet unit
// of that member, against it: "yes" (active/exited: the primary), "no"
// (failed), "asking" (activating/start), "" (created, no state yet).
func (w *world) withProbes(s *deploy.Spec, answers map[int]string) *world {
	w.t.Helper()
	asked := map[int]bool{}
	for _, a := range w.act {
		ans, ok := answers[a.id.Index]
		if !ok || asked[a.id.Index] {
			continue
		}
		asked[a.id.Index] = true
		m := pinnedMachine(a.unit)
		name := deploy.ProbeName{Prefix: "k2", Name: s.Name, SpecHash: s.Hash(0), Index: a.id.Index}
		u, err := deploy.RenderProbe(s, name, a.id, m)
		if err != nil {
			w.t.Fatal(err)
		}
		u.MachineID = m
		p := &actualUnit{probe: &name, unit: u, hash: unitHash(u.Options)}
		state := map[string][2]string{"yes": {"active", "exited"}, "no": {"failed", "failed"}, "asking": {"activating", "start"}}
		if st, ok := state[ans]; ok {
			p.states = []*schema.UnitState{{Name: u.Name, MachineID: m, SystemdActiveState: st[0], SystemdSubState: st[1], Hash: p.hash}}
		}
		w.probes = append(w.probes, p)
	}
	return w
}

// update.order around the primary: the members are asked (a probe fleet
// unit pinned to each member's machine) before any is stopped, the
// order follows the answers, falls back to highest-first when they do
// not name one primary, and the probes go once the rollout is over.
func TestPlanStatefulPrimary(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	opts := Options{}.withDefaults()
	machines := dbMachines(4)
	live := map[string]string{"m0": "10.0.0.1", "m1": "10.0.0.2", "m2": "10.0.0.3", "m3": "10.0.0.4"}
	withOrder := func(image, order string) *deploy.Spec {
		s := stateful(3, 1, image)
		s.Primary = &deploy.Probe{Exec: []string{"/usr/local/bin/is-primary"}}
		s.Update = &deploy.Update{Order: order}
		return s
	}
	v1 := withOrder("docker://db:1", deploy.OrderPrimaryLast)
	last, first := withOrder("docker://db:2", deploy.OrderPrimaryLast), withOrder("docker://db:2", deploy.OrderPrimaryFirst)
	// v1 runs members 0, 1, 2 on m1, m2, m3; s is desired, its probes
	// answered as given.
	upd := func(s *deploy.Spec, answers map[int]string) func(t *testing.T) *world {
		return func(t *testing.T) *world {
			w := (&world{t: t, spec: s}).with(members(t, v1, "m1", "m2", "m3"), "launched", "active", "running")
			if answers != nil {
				w.withProbes(s, answers)
			}
			return w
		}
	}
	all := func(yes ...int) map[int]string {
		m := map[int]string{0: "no", 1: "no", 2: "no"}
		for _, i := range yes {
			m[i] = "yes"
		}
		return m
	}
	tests := []struct {
		name   string
		world  func(t *testing.T) *world
		asked  time.Duration // the probes were first asked this long ago (this term)
		want   string
		pinned string // the machines of the fleet units created, in op order
		msg    string
	}{{
		name:  "members to replace: a probe per member, pinned to its machine; nothing is stopped",
		world: upd(last, nil),
		want:  "create:probe0 create:probe1 create:probe2", pinned: "m3 m2 m1",
		msg: "rolling out: each member stops before its new version starts; 3 of 3 serving the old version; primary probe: waiting for members 0, 1 and 2 to answer; no member is stopped before",
	}, {
		name:  "probes still asking: nothing stopped, none created again",
		world: upd(last, map[int]string{0: "no", 1: "asking", 2: ""}),
		want:  "",
		msg:   "rolling out: each member stops before its new version starts; 3 of 3 serving the old version; primary probe: waiting for members 1 and 2 to answer; no member is stopped before",
	}, {
		name:  "member 1 is the primary, primary-last: member 2 first, 1 last",
		world: upd(last, all(1)), want: "stop:old2",
		msg: "rolling out: each member stops before its new version starts; 3 of 3 serving the old version; updating members 2, 0, then 1 (the primary, last); replacing 1 member at a time (update.maxUnavailable)",
	}, {
		name:  "member 2 is the primary, primary-last: member 1 first",
		world: upd(last, all(2)), want: "stop:old1",
		msg: "rolling out: each member stops before its new version starts; 3 of 3 serving the old version; updating members 1, 0, then 2 (the primary, last); replacing 1 member at a time (update.maxUnavailable)",
	}, {
		name:  "member 1 is the primary, primary-first: member 1 first",
		world: upd(first, all(1)), want: "stop:old1",
		msg: "rolling out: each member stops before its new version starts; 3 of 3 serving the old version; updating members 1 (the primary, first), 2, then 0; replacing 1 member at a time (update.maxUnavailable)",
	}, {
		name:  "no member answered as primary: highest ordinal first, and the status says so",
		world: upd(first, all()), want: "stop:old2",
		msg: "rolling out: each member stops before its new version starts; 3 of 3 serving the old version; primary probe: no member answered as primary; highest ordinal first; replacing 1 member at a time (update.maxUnavailable)",
	}, {
		name:  "two members answered as primary: highest ordinal first",
		world: upd(last, all(0, 2)), want: "stop:old2",
		msg: "rolling out: each member stops before its new version starts; 3 of 3 serving the old version; primary probe: members 0 and 2 answered as primary; highest ordinal first; replacing 1 member at a time (update.maxUnavailable)",
	}, {
		name:  "a probe not done within the bound: highest ordinal first",
		world: upd(last, map[int]string{0: "asking", 1: "yes", 2: "no"}), asked: time.Minute, want: "stop:old2",
		msg: "rolling out: each member stops before its new version starts; 3 of 3 serving the old version; primary probe: member 0 did not answer within 1m0s; highest ordinal first; replacing 1 member at a time (update.maxUnavailable)",
	}, {
		name: "a member not running is not asked; the others decide",
		world: func(t *testing.T) *world {
			w := upd(last, nil)(t)
			w.act[0].states[0].SystemdActiveState, w.act[0].states[0].SystemdSubState = "activating", "auto-restart"
			return w.withProbes(last, map[int]string{1: "yes", 2: "no"})
		},
		want: "stop:old2",
		msg:  "rolling out: each member stops before its new version starts; 2 of 3 serving the old version; updating members 2, 0, then 1 (the primary, last); replacing 1 member at a time (update.maxUnavailable)",
	}, {
		name: "leader changed mid-rollout (memory lost): the probes still in fleet answer again, the order holds",
		world: func(t *testing.T) *world {
			w := (&world{t: t, spec: last}).with(members(t, v1, "m1", "m2", "m3")[:2], "launched", "active", "running")
			w.with(members(t, last, "m1", "m2", "m3")[2:], "launched", "active", "running")
			return w.withProbes(last, all(1))
		},
		want: "stop:old0",
		msg:  "1 of 3 running the current spec, 1 ready; 2 old still to replace, 3 serving; updating members 2, 0, then 1 (the primary, last); replacing 1 member at a time (update.maxUnavailable)",
	}, {
		name: "rollout done: the probes are destroyed",
		world: func(t *testing.T) *world {
			w := upd(last, all(1))(t)
			w.act = nil
			w.probes = nil
			return w.with(members(t, last, "m1", "m2", "m3"), "launched", "active", "running").withProbes(last, all(1))
		},
		want: "destroy:probe0 destroy:probe1 destroy:probe2",
		msg:  "3 of 3 running",
	}, {
		name: "a probe of another rollout is destroyed; this one asks its own",
		world: func(t *testing.T) *world {
			return upd(first, nil)(t).withProbes(withOrder("docker://db:3", deploy.OrderPrimaryLast), all(1))
		},
		want: "create:probe0 create:probe1 create:probe2 destroy:oldprobe0 destroy:oldprobe1 destroy:oldprobe2", pinned: "m3 m2 m1",
	}, {
		name:  "highest-first: no probe, member 2 first",
		world: upd(withOrder("docker://db:2", deploy.OrderHighestFirst), nil), want: "stop:old2",
		msg: "rolling out: each member stops before its new version starts; 3 of 3 serving the old version; replacing 1 member at a time (update.maxUnavailable)",
	}, {
		name: "primary-last, but the order became highest-first mid-rollout: its probes go",
		world: func(t *testing.T) *world {
			return upd(last, all(1))(t).withSpec(withOrder("docker://db:2", deploy.OrderHighestFirst))
		},
		want: "destroy:probe0 destroy:probe1 destroy:probe2 stop:old2",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tt.world(t).pinned(live).placed(machines)
			p := &planner{opts: opts, mem: newMemory(), now: now, machines: live}
			for _, a := range w.act {
				if a.running() {
					p.mem.readySince[a.name()] = now.Add(-time.Minute)
				}
			}
			if tt.asked > 0 {
				p.mem.primary["db"] = &primaryDecision{hash: w.d.hash, asked: now.Add(-tt.asked), primary: -1}
			}
			ops, st := p.plan(w.input())
			if got := opsString(ops, w.d.hash); got != tt.want {
				t.Errorf("ops = %q, want %q (%s)", got, tt.want, st.Message)
			}
			var on []string
			for _, o := range ops {
				if o.kind == opCreate {
					on = append(on, pinnedMachine(o.unit))
				}
			}
			if got := strings.Join(on, " "); got != tt.pinned {
				t.Errorf("created on %q, want %q", got, tt.pinned)
			}
			if tt.msg != "" && st.Message != tt.msg {
				t.Errorf("message %q,\nwant    %q", st.Message, tt.msg)
			}
		})
	}
}

// The decision is taken once per rollout: a probe that changes its
// answer later (the primary went down for its update, another took
// over) changes no order.
func TestPlanStatefulPrimaryDecidedOnce(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	opts := Options{}.withDefaults()
	live := map[string]string{"m0": "10.0.0.1", "m1": "10.0.0.2", "m2": "10.0.0.3", "m3": "10.0.0.4"}
	s1 := stateful(3, 1, "docker://db:1")
	s := stateful(3, 1, "docker://db:2")
	s.Primary = &deploy.Probe{Exec: []string{"/usr/local/bin/is-primary"}}
	s.Update = &deploy.Update{Order: deploy.OrderPrimaryFirst}
	p := &planner{opts: opts, mem: newMemory(), now: now, machines: live}
	pass := func(answers map[int]string) ([]op, string) {
		w := (&world{t: t, spec: s}).with(members(t, s1, "m1", "m2", "m3"), "launched", "active", "running").withProbes(s, answers)
		w = w.pinned(live).placed(dbMachines(4))
		for _, a := range w.act {
			p.mem.readySince[a.name()] = now.Add(-time.Minute)
		}
		ops, _ := p.plan(w.input())
		return ops, w.d.hash
	}
	if ops, h := pass(map[int]string{0: "no", 1: "no", 2: "yes"}); opsString(ops, h) != "stop:old2" {
		t.Fatalf("first pass: %s", opsString(ops, h))
	}
	p.now = now.Add(time.Second)
	if ops, h := pass(map[int]string{0: "yes", 1: "no", 2: "no"}); opsString(ops, h) != "stop:old2" {
		t.Fatalf("after the answers changed: %s, want member 2 (decided) still first", opsString(ops, h))
	}
}

// A unit removed from the store takes its probes with it.
func TestPlanRemovedDestroysProbes(t *testing.T) {
	s := stateful(3, 1, "docker://db:2")
	s.Primary = &deploy.Probe{Exec: []string{"/usr/local/bin/is-primary"}}
	s.Update = &deploy.Update{Order: deploy.OrderPrimaryLast}
	w := (&world{t: t, spec: s}).with(members(t, stateful(3, 1, "docker://db:1"), "m1", "m2", "m3"), "launched", "active", "running").withProbes(s, map[int]string{0: "no", 1: "yes"})
	p := &planner{opts: Options{}.withDefaults(), mem: newMemory(), now: time.Now(), machines: map[string]string{"m1": "", "m2": "", "m3": ""}}
	in := &unitInput{name: "db", probes: w.probes}
	ops, st := p.plan(in)
	if got := opsString(ops, s.Hash(0)); got != "destroy:probe0 destroy:probe1" || st != nil {
		t.Fatalf("ops %q, status %+v", got, st)
	}
}

// withSpec makes s the desired spec of w (rendered again by placed).
func (w *world) withSpec(s *deploy.Spec) *world {
	w.spec = s
	return w
}
