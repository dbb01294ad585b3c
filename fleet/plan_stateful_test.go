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
	hash := w.spec.Hash(0)
	on, zones := placeMembers(w.spec, hash, machines, w.act)
	units, err := deploy.Render(w.spec, deploy.RenderOptions{Members: on, Zones: zones})
	if err != nil {
		w.t.Fatal(err)
	}
	w.d = &desiredUnits{hash: hash, units: units, hashes: map[string]string{}, members: on}
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
			on, _ := placeMembers(tt.spec, tt.spec.Hash(0), machines, actual)
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
	v1, v2 := stateful(3, 1, "docker://db:1"), stateful(3, 1, "docker://db:2")
	h1, h2 := v1.Hash(0), v2.Hash(0)
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
	tests := []struct {
		name   string
		world  func(t *testing.T) *world
		live   map[string]string
		fresh  bool // the new version's running units have run for a second only
		want   string
		pinned string // the machines of the units created, in op order (highest ordinal first)
		phase  string
		msg    string // the status message, when set
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
			w := (&world{t: t, spec: v2}).with(members(t, v1, "m1", "m2", "m3")[:2], "launched", "active", "running")
			w.act[1].unit.DesiredState, w.act[1].states[0].SystemdActiveState, w.act[1].states[0].SystemdSubState = "loaded", "inactive", "dead"
			return newOn(t, newOn(t, w, 1, "launched", "active", "running"), 2, "launched", "active", "running")
		},
		want: "destroy:old1 stop:old0", phase: store.PhaseProgressing,
	}, {
		name: "member 1 fails: its new unit goes, its parked one is launched again; member 2 keeps its new unit, member 0 its old one",
		world: func(t *testing.T) *world {
			w := (&world{t: t, spec: v2}).with(members(t, v1, "m1", "m2", "m3")[:2], "launched", "active", "running")
			w.act[1].unit.DesiredState, w.act[1].states[0].SystemdActiveState, w.act[1].states[0].SystemdSubState = "loaded", "inactive", "dead"
			return newOn(t, newOn(t, w, 1, "launched", "failed", "failed"), 2, "launched", "active", "running")
		},
		want: "launch:old1 stop:1", phase: store.PhaseFailed,
	}, {
		name: "failure held, member 1's new unit still up: it is stopped, its old one launched only once it is down",
		world: func(t *testing.T) *world {
			w := (&world{t: t, spec: v2}).with(members(t, v1, "m1", "m2", "m3")[:2], "launched", "active", "running")
			w.act[1].unit.DesiredState, w.act[1].states[0].SystemdActiveState, w.act[1].states[0].SystemdSubState = "loaded", "inactive", "dead"
			w = newOn(t, newOn(t, w, 1, "launched", "active", "running"), 2, "launched", "active", "running")
			w.prev = &store.Status{Name: "db", Phase: store.PhaseFailed, SpecHash: h2, Deployed: h1, Message: "rollout failed"}
			return w
		},
		want: "stop:1", phase: store.PhaseFailed,
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
		name: "update.order primary-last and onMachineLoss move: noted, not applied",
		world: func(t *testing.T) *world {
			s := stateful(3, 1, "docker://db:1")
			s.Primary = &deploy.Probe{Exec: []string{"/bin/true"}}
			s.Update = &deploy.Update{Order: deploy.OrderPrimaryLast}
			s.OnMachineLoss = deploy.MachineLossMove
			return deployed((&world{t: t, spec: s}).with(members(t, s, "m1", "m2", "m3"), "launched", "active", "running"), h1)
		},
		want: "", phase: store.PhaseRunning,
		msg: "3 of 3 running; update.order primary-last: not applied yet, highest ordinal first; onMachineLoss move: not applied yet, member waits",
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
	d1, err := pp.render(u, 0, dbMachines(4), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := pins(d1); got != "m1 m2 m3" || strings.Join(d1.members, " ") != got {
		t.Fatalf("first placement pinned to %q (members %v), want m1 m2 m3", got, d1.members)
	}
	// Members 0 and 1 run an older spec on m3 and m1: they keep them.
	old := (&world{t: t, spec: s}).with(members(t, stateful(2, 1, "docker://db:1"), "m3", "m1"), "launched", "active", "running").act
	d2, err := pp.render(u, 0, dbMachines(4), old)
	if err != nil {
		t.Fatal(err)
	}
	if got := pins(d2); got != "m3 m1 m2" || d2 == d1 {
		t.Fatalf("pinned to %q (cached: %v), want m3 m1 m2 rendered again", got, d2 == d1)
	}
	// A machine joins: no member moves, the rendering is the cached one.
	d3, err := pp.render(u, 0, append(dbMachines(4), deploy.Machine{ID: "m4", Metadata: map[string]string{"role": "db"}}), old)
	if err != nil {
		t.Fatal(err)
	}
	if d3 != d2 {
		t.Fatalf("a machine that joins re-rendered the unit: %q", pins(d3))
	}
}
