package fleet

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coreos/fleet/machine"
	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// with adds fleet units to the snapshot, unit i on machine m<i> with
// target state target, and fleet's state active/sub ("" = no state).
func (s *snapshot) with(units []*schema.Unit, target, active, sub string) *snapshot {
	for i, u := range units {
		cp := *u
		cp.DesiredState = target
		cp.MachineID = fmt.Sprintf("m%d", i)
		s.fleetUnits = append(s.fleetUnits, &cp)
		if active != "" {
			s.states = append(s.states, &schema.UnitState{Name: u.Name, MachineID: cp.MachineID,
				SystemdActiveState: active, SystemdSubState: sub, Hash: unitHash(u.Options)})
		}
	}
	return s
}

// registryString is "+0 -old2": instances put (+) and deleted (-), tagged
// as opsString tags fleet units.
func registryString(d instanceDiff, hash string) string {
	tag := func(fleetUnit string) string {
		id, _ := deploy.ParseUnitName("k2", fleetUnit)
		if id.SpecHash != hash {
			return fmt.Sprint("old", id.Index)
		}
		return fmt.Sprint(id.Index)
	}
	var out []string
	for _, in := range d.puts {
		out = append(out, "+"+tag(in.FleetUnit))
	}
	for _, k := range d.deletes {
		out = append(out, "-"+tag(k[strings.Index(k, "/")+1:]+".service"))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// historyString is "web 1:superseded 2:progressing@prod[replicas 3 → 4]":
// each entry written with its outcome, source and in-place change, or
// "web dropped".
func historyString(hs []unitHistory) string {
	var out []string
	for _, h := range hs {
		if h.drop {
			out = append(out, h.name+" dropped")
			continue
		}
		s := h.name
		for _, c := range h.changes {
			s += fmt.Sprintf(" %d:%s", c.entry.Revision, c.entry.Outcome)
			if c.entry.Source != "" {
				s += "@" + c.entry.Source
			}
			if c.entry.Change != "" {
				s += "[" + c.entry.Change + "]"
			}
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

func statusesString(sts []namedStatus) string {
	var out []string
	for _, ns := range sts {
		if ns.status == nil {
			out = append(out, ns.name+":deleted")
			continue
		}
		out = append(out, ns.name+":"+ns.status.Phase)
	}
	return strings.Join(out, " ")
}

// A whole pass planned from a snapshot: the fleet calls, statuses, history
// and registry, without etcd or fleet.
func TestPlanPassFromSnapshot(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v1 := replicated(3, "docker://web:1")
	v2 := replicated(3, "docker://web:2")
	v1x4 := replicated(4, "docker://web:1") // same hash as v1: replicas are not in it
	unit := func(s *deploy.Spec) *store.Unit { return &store.Unit{Name: s.Name, Spec: *s, Raw: s.CanonicalJSON()} }
	entry := func(rev int64, s *deploy.Spec, outcome string) *store.HistoryEntry {
		return &store.HistoryEntry{Unit: s.Name, Revision: rev, SpecHash: s.Hash(0), Spec: s.CanonicalJSON(), Outcome: outcome}
	}
	status := func(phase string, s, deployed *deploy.Spec) *store.Status {
		return &store.Status{Name: "web", Phase: phase, SpecHash: s.Hash(0), Deployed: deployed.Hash(0), Message: "boom"}
	}
	records := map[string]*store.SyncRecord{"prod": {Source: "prod", Revision: "abc123", Inventory: map[string]string{"web": "units/web.yaml"}}}
	// left: the registry holds v1's replicas, written by an earlier leader.
	left := func() *registry {
		reg := &registry{written: map[string]*store.Instance{}, left: map[string]bool{}, since: map[string]time.Time{}}
		for _, u := range render(t, v1) {
			reg.left["web/"+strings.TrimSuffix(u.Name, ".service")] = true
		}
		return reg
	}
	tests := []struct {
		name     string
		snap     *snapshot
		hash     string // the current spec's, for the tags of ops and instances
		wantOps  string
		wantSt   string
		wantHist string
		wantReg  string
	}{{
		name:     "new unit: every replica created, a rollout opened",
		snap:     &snapshot{units: []*store.Unit{unit(v1)}},
		hash:     v1.Hash(0),
		wantOps:  "create:0 create:1 create:2",
		wantSt:   "web:pending",
		wantHist: "web 1:progressing@prod",
	}, {
		name: "rolling update step: new replica 0 ready, one old stops (and leaves the registry), the next new one starts",
		snap: (&snapshot{units: []*store.Unit{unit(v2)},
			statuses: map[string]*store.Status{"web": status(store.PhaseProgressing, v2, v1)},
			history:  map[string][]*store.HistoryEntry{"web": {entry(1, v1, store.OutcomeDeployed), entry(2, v2, store.OutcomeProgressing)}},
		}).with(render(t, v1), "launched", "active", "running").with(render(t, v2)[:1], "launched", "active", "running"),
		hash:    v2.Hash(0),
		wantOps: "create:1 stop:old2",
		wantSt:  "web:progressing",
		wantReg: "+0 +old0 +old1",
	}, {
		name: "scale up 3 → 4: one replica created, none replaced, a revision of its own",
		snap: (&snapshot{units: []*store.Unit{unit(v1x4)},
			statuses: map[string]*store.Status{"web": status(store.PhaseRunning, v1, v1)},
			history:  map[string][]*store.HistoryEntry{"web": {entry(1, v1, store.OutcomeDeployed)}},
		}).with(render(t, v1), "launched", "active", "running"),
		hash:     v1.Hash(0),
		wantOps:  "create:3",
		wantSt:   "web:progressing",
		wantHist: "web 2:progressing@prod[replicas 3 → 4]",
		wantReg:  "+0 +1 +2",
	}, {
		name: "removed from the store: its replicas stop and leave the registry first",
		snap: (&snapshot{
			statuses: map[string]*store.Status{"web": status(store.PhaseRunning, v1, v1)},
			history:  map[string][]*store.HistoryEntry{"web": {entry(1, v1, store.OutcomeDeployed)}},
			registry: left(),
		}).with(render(t, v1), "launched", "active", "running"),
		hash:    v1.Hash(0),
		wantOps: "stop:0 stop:1 stop:2",
		wantSt:  "web:deleting",
		wantReg: "-0 -1 -2",
	}, {
		name: "removed and its fleet units gone: its status and history are dropped",
		snap: &snapshot{
			statuses: map[string]*store.Status{"web": status(store.PhaseDeleting, v1, v1)},
			history:  map[string][]*store.HistoryEntry{"web": {entry(1, v1, store.OutcomeDeployed)}},
		},
		hash:     v1.Hash(0),
		wantSt:   "web:deleted",
		wantHist: "web dropped",
	}, {
		name: "rollout fails: the failed new replica stops, the entry closes failed, the old ones keep serving",
		snap: (&snapshot{units: []*store.Unit{unit(v2)},
			statuses: map[string]*store.Status{"web": status(store.PhaseProgressing, v2, v1)},
			history:  map[string][]*store.HistoryEntry{"web": {entry(1, v1, store.OutcomeDeployed), entry(2, v2, store.OutcomeProgressing)}},
		}).with(render(t, v1)[:2], "launched", "active", "running").with(render(t, v2)[:1], "launched", "failed", "failed"),
		hash:     v2.Hash(0),
		wantOps:  "stop:0",
		wantSt:   "web:failed",
		wantHist: "web 2:failed@prod",
		wantReg:  "+old0 +old1",
	}, {
		name: "failed rollout held: the previous version, read back from the history, is restored",
		snap: (&snapshot{units: []*store.Unit{unit(v2)},
			statuses: map[string]*store.Status{"web": status(store.PhaseFailed, v2, v1)},
			history:  map[string][]*store.HistoryEntry{"web": {entry(1, v1, store.OutcomeDeployed), entry(2, v2, store.OutcomeFailed)}},
		}).with(render(t, v1)[:2], "launched", "active", "running").with(render(t, v2)[:1], "loaded", "failed", "failed"),
		hash:    v2.Hash(0),
		wantOps: "create:old2 destroy:0",
		wantSt:  "web:failed",
		wantReg: "+old0 +old1",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := tt.snap
			snap.machines = []machine.MachineState{{ID: "m0", PublicIP: "10.0.0.1"}, {ID: "m1", PublicIP: "10.0.0.2"}, {ID: "m2", PublicIP: "10.0.0.3"}}
			snap.sources = historySources{records: records}
			if snap.registry == nil {
				snap.registry = &registry{}
			}
			pp := newPassPlanner(Options{}.withDefaults())
			for _, s := range snap.states { // every running replica is ready
				if s.SystemdActiveState == "active" {
					pp.mem.readySince[s.Name] = now.Add(-time.Minute)
				}
			}
			plan := pp.plan(snap, now)
			if got := opsString(plan.ops, tt.hash); got != tt.wantOps {
				t.Errorf("ops = %q, want %q", got, tt.wantOps)
			}
			if got := statusesString(plan.statuses); got != tt.wantSt {
				t.Errorf("statuses = %q, want %q", got, tt.wantSt)
			}
			if got := historyString(plan.history); got != tt.wantHist {
				t.Errorf("history = %q, want %q", got, tt.wantHist)
			}
			if got := registryString(plan.instances, tt.hash); got != tt.wantReg {
				t.Errorf("registry = %q, want %q", got, tt.wantReg)
			}
		})
	}
}
