package fleet

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coreos/fleet/machine"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// listedString is what the registry lists, labelled as opsString
// labels fleet units ("old2": index 2 of another spec than hash).
func listedString(reg *registry, hash string) string {
	var out []string
	for _, in := range reg.written {
		id, _ := deploy.ParseUnitName("k2", in.FleetUnit)
		tag := fmt.Sprint(id.Index)
		if id.SpecHash != hash {
			tag = "old" + tag
		}
		out = append(out, tag)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// Issue 26: a serving replica the scheduler stops leaves the instance
// registry at once and is stopped only Options.DrainDelay later, so that
// routers following the registry stop sending to it first. Planned pass
// after pass from snapshots, on a fake clock (the pass's time), with the
// registry's writes applied between passes, as a leader does.
func TestPlanDrainDelay(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v1 := storedUnit(t, `{"name":"web","replicas":3,"apps":[{"image":"docker://web:1"}]}`)
	v2 := storedUnit(t, `{"name":"web","replicas":3,"apps":[{"image":"docker://web:2"}]}`)
	one := storedUnit(t, `{"name":"web","replicas":1,"apps":[{"image":"docker://web:1"}]}`)
	old, cur := render(t, &v1.Spec), render(t, &v2.Spec)
	const packed = `{"name":"web","replicas":3,"maxReplicasPerHost":1,"apps":[{"image":"docker://web:%d"}]}`
	packed1, packed2 := storedUnit(t, fmt.Sprintf(packed, 1)), storedUnit(t, fmt.Sprintf(packed, 2))
	packedOld := render(t, &packed1.Spec)
	all := []string{"m0", "m1", "m2"}
	rolling := func() *snapshot { // v2 stored, its replica 0 ready beside v1's three
		return (&snapshot{units: []*store.Unit{v2}}).on(old, all, "launched", "active", "running").on(cur[:1], []string{"m0"}, "launched", "active", "running")
	}
	type pass struct {
		at       time.Duration    // after t0
		snap     func() *snapshot // fleet and store now, if they changed
		wantOps  string
		wantReg  string        // what the registry lists after the pass
		wantMsg  string        // a part of the status message ("" : none checked)
		noMsg    string        // not a part of it
		wantWake time.Duration // the next pass asked for, after t0 (0: not checked)
	}
	drainNote := func(i int, left string) string {
		return fmt.Sprintf("draining %s before it stops (%s left)", old[i].Name, left)
	}
	tests := []struct {
		name     string
		delay    time.Duration
		hash     string // the spec hash ops and registry are labelled against
		snap     func() *snapshot
		unlisted string // a fleet unit the earlier leader took out of the registry
		passes   []pass
	}{{
		name:  "rolling update: old 2 leaves the registry at once and stops 2s later; it counts against maxSurge meanwhile (no new replica is created)",
		delay: 2 * time.Second, hash: v2.Spec.Hash(0), snap: rolling,
		passes: []pass{
			{at: 0, wantOps: "", wantReg: "0 old0 old1", wantMsg: drainNote(2, "2s"), wantWake: 2 * time.Second},
			{at: 1500 * time.Millisecond, wantOps: "", wantReg: "0 old0 old1", wantMsg: drainNote(2, "500ms"), wantWake: 2 * time.Second},
			{at: 2 * time.Second, wantOps: "create:1 stop:old2", wantReg: "0 old0 old1", noMsg: "draining"},
		},
	}, {
		name:  "a new leader takes over while old 2 drains (the last leader took it out of the registry): it holds the stop DrainDelay again",
		delay: 2 * time.Second, hash: v2.Spec.Hash(0), snap: rolling, unlisted: old[2].Name,
		passes: []pass{
			{at: 0, wantOps: "", wantReg: "0 old0 old1", wantMsg: drainNote(2, "2s"), wantWake: 2 * time.Second},
			{at: 2 * time.Second, wantOps: "create:1 stop:old2", wantReg: "0 old0 old1"},
		},
	}, {
		name:  "DrainDelay 0: old 2 leaves the registry and is stopped in the same pass, as before",
		delay: 0, hash: v2.Spec.Hash(0), snap: rolling,
		passes: []pass{{at: 0, wantOps: "create:1 stop:old2", wantReg: "0 old0 old1", noMsg: "draining"}},
	}, {
		name:  "scale down 3 → 1: both surplus replicas drain together",
		delay: 2 * time.Second, hash: one.Spec.Hash(0),
		snap: func() *snapshot {
			return (&snapshot{units: []*store.Unit{one}}).on(old, all, "launched", "active", "running")
		},
		passes: []pass{
			{at: 0, wantOps: "", wantReg: "0", wantMsg: drainNote(1, "2s") + "; " + drainNote(2, "2s")},
			{at: 2 * time.Second, wantOps: "stop:1 stop:2", wantReg: "0"},
		},
	}, {
		name:  "a replica that does not serve (restarting) is stopped at once: nothing routes to it",
		delay: 2 * time.Second, hash: v2.Spec.Hash(0),
		snap: func() *snapshot {
			return (&snapshot{units: []*store.Unit{v2}}).on(old[:2], all[:2], "launched", "active", "running").
				on(old[2:], all[2:], "launched", "activating", "auto-restart").on(cur[:1], []string{"m0"}, "launched", "active", "running")
		},
		passes: []pass{{at: 0, wantOps: "create:1 stop:old2", wantReg: "0 old0 old1", noMsg: "draining"}},
	}, {
		name:  "removed from the store: its serving replicas drain, then stop",
		delay: 2 * time.Second, hash: v2.Spec.Hash(0),
		snap: func() *snapshot {
			return (&snapshot{units: []*store.Unit{}}).on(old, all, "launched", "active", "running")
		},
		passes: []pass{
			{at: 0, wantOps: "", wantReg: "", wantMsg: "removed from the store: destroying 3 fleet unit(s); " + drainNote(0, "2s")},
			{at: 2 * time.Second, wantOps: "stop:old0 stop:old1 stop:old2", wantReg: ""},
		},
	}, {
		name:  "v1 stored again while old 2 drains: old 2 serves again (back in the registry), new 0 drains instead",
		delay: 2 * time.Second, hash: v2.Spec.Hash(0), snap: rolling,
		passes: []pass{
			{at: 0, wantOps: "", wantReg: "0 old0 old1"},
			{at: time.Second, snap: func() *snapshot {
				s := rolling()
				s.units = []*store.Unit{v1}
				return s
			}, wantOps: "", wantReg: "old0 old1 old2", wantMsg: fmt.Sprintf("draining %s before it stops (2s left)", cur[0].Name), wantWake: 3 * time.Second},
		},
	}, {
		name:  "packed (at most 1 per machine, 3 machines): old 2 stops for new 0 in place, after draining",
		delay: 2 * time.Second, hash: packed2.Spec.Hash(0),
		snap: func() *snapshot {
			return (&snapshot{units: []*store.Unit{packed2}}).on(packedOld, all, "launched", "active", "running")
		},
		passes: []pass{
			{at: 0, wantOps: "", wantReg: "old0 old1", wantMsg: fmt.Sprintf("draining %s before it stops (2s left)", packedOld[2].Name)},
			{at: time.Second, wantOps: "", wantReg: "old0 old1"},
			{at: 2 * time.Second, wantOps: "stop:old2", wantReg: "old0 old1"},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{DrainDelay: tt.delay}.withDefaults()
			pp := newPassPlanner(opts)
			snap := tt.snap()
			// An earlier leader listed every serving replica.
			reg := &registry{written: map[string]*store.Instance{}, left: map[string]bool{}, since: map[string]time.Time{}}
			for _, u := range snap.fleetUnits {
				if u.Name != tt.unlisted {
					reg.left["web/"+strings.TrimSuffix(u.Name, ".service")] = true
				}
			}
			for _, p := range tt.passes {
				if p.snap != nil {
					snap = p.snap()
				}
				snap.registry = reg
				snap.machines = nil
				for _, id := range all {
					snap.machines = append(snap.machines, machine.MachineState{ID: id, PublicIP: "10.0.0." + id[1:]})
				}
				now := t0.Add(p.at)
				for _, s := range snap.states {
					if _, ok := pp.mem.readySince[s.Name]; !ok && s.SystemdActiveState == "active" {
						pp.mem.readySince[s.Name] = now.Add(-time.Minute)
					}
				}
				plan := pp.plan(snap, now)
				reg.applied(plan.instances.puts, plan.instances.deletes)
				if got := opsString(plan.ops, tt.hash); got != p.wantOps {
					t.Errorf("at %s: ops = %q, want %q", p.at, got, p.wantOps)
				}
				if got := listedString(reg, tt.hash); got != p.wantReg {
					t.Errorf("at %s: registry = %q, want %q", p.at, got, p.wantReg)
				}
				msg := ""
				for _, st := range plan.statuses {
					if st.status != nil {
						msg = st.status.Message
					}
				}
				t.Logf("at %s: %s", p.at, msg)
				if !strings.Contains(msg, p.wantMsg) || p.noMsg != "" && strings.Contains(msg, p.noMsg) {
					t.Errorf("at %s: status %q, want it to contain %q and not %q", p.at, msg, p.wantMsg, p.noMsg)
				}
				if p.wantWake != 0 && !plan.wakeAt.Equal(t0.Add(p.wantWake)) {
					t.Errorf("at %s: next pass asked for at %s, want %s", p.at, plan.wakeAt.Sub(t0), p.wantWake)
				}
			}
		})
	}
}

// A stateful unit's member, replaced stop then start in its slot, drains
// too: it leaves the registry (db-1) at once, its stop (park) waits
// DrainDelay, and no other member is parked meanwhile (it counts as
// unavailable, update.maxUnavailable 1).
func TestPlanDrainDelayStateful(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v1, v2 := stateful(2, 1, "docker://db:1"), stateful(2, 1, "docker://db:2")
	snap := (&snapshot{units: []*store.Unit{{Name: "db", Spec: *v2, Raw: v2.CanonicalJSON()}},
		registry: &registry{written: map[string]*store.Instance{}, left: map[string]bool{"db/db-0": true, "db/db-1": true}, since: map[string]time.Time{}}}).
		with(members(t, v1, "m1", "m2"), "launched", "active", "running")
	snap.machines = []machine.MachineState{
		{ID: "m1", PublicIP: "10.0.0.2", Metadata: map[string]string{"role": "db"}},
		{ID: "m2", PublicIP: "10.0.0.3", Metadata: map[string]string{"role": "db"}},
	}
	for _, u := range snap.fleetUnits {
		u.MachineID = pinnedMachine(u)
		for _, s := range snap.states {
			if s.Name == u.Name {
				s.MachineID = u.MachineID
			}
		}
	}
	pp := newPassPlanner(Options{DrainDelay: 2 * time.Second}.withDefaults())
	for _, s := range snap.states {
		pp.mem.readySince[s.Name] = t0.Add(-time.Minute)
	}
	for _, p := range []struct {
		at      time.Duration
		wantOps string
		wantReg string // registry keys after the pass
		wantMsg string
	}{
		{0, "", "db/db-0", "draining " + snap.fleetUnits[1].Name + " before it stops (2s left)"},
		{time.Second, "", "db/db-0", "(1s left)"},
		{2 * time.Second, "stop:old1", "db/db-0", ""},
	} {
		plan := pp.plan(snap, t0.Add(p.at))
		snap.registry.applied(plan.instances.puts, plan.instances.deletes)
		var keys []string
		for k := range snap.registry.written {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if got := opsString(plan.ops, v2.Hash(0)); got != p.wantOps {
			t.Errorf("at %s: ops = %q, want %q", p.at, got, p.wantOps)
		}
		if got := strings.Join(keys, " "); got != p.wantReg {
			t.Errorf("at %s: registry = %q, want %q", p.at, got, p.wantReg)
		}
		if msg := plan.statuses[0].status.Message; !strings.Contains(msg, p.wantMsg) {
			t.Errorf("at %s: status %q, want it to contain %q", p.at, msg, p.wantMsg)
		}
	}
}
