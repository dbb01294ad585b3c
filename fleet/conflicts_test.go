package fleet

import (
	"github.com/coreos/fleet/schema"

	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/store"
)

// Issue 20: a unit's conflicts keep fleet from running another unit, and
// fleet says so nowhere: web went from 2/2 to 0/2 while Kaylee said only
// "progressing". On fleet's own engine and agents (two machines), web's
// status names the unit in its way, in both of fleet's ways: the agent
// does not load a replica that conflicts with a unit loaded before it
// (in name order), and the engine places no replica on a machine with a
// unit it conflicts with.
func TestStatusNamesConflictingUnit(t *testing.T) {
	t.Parallel() // its own etcd and fleet (newHarness): it waits on fleet's engine, not the CPU
	web := func() *deploy.Spec {
		s := replicated(2, "docker://web:1")
		s.MaxReplicasPerHost = 1
		return s
	}
	evil := func(global bool) *deploy.Spec {
		return &deploy.Spec{Name: "evil", Global: global, Conflicts: []string{"web"}, Apps: []deploy.App{{Image: "docker://evil:1"}}}
	}
	for _, tt := range []struct {
		name     string
		first    *deploy.Spec // stored and running before the second
		second   *deploy.Spec
		want     []string // in web's status message
		evicted  bool     // web ran 2/2 before
		unplaced bool
	}{
		{"a global unit loaded before web unloads it", web(), evil(true),
			[]string{"0 of 2 running the current spec", ":0.service is not loaded on machine ", "it conflicts with k2:evil:", " there"}, true, false},
		{"a unit already placed keeps web's replica off its machine", evil(false), web(),
			// which of web's two replicas fleet leaves unplaced is its choice
			[]string{"is unschedulable: no machine has been found for it in 6s (k2:web:", ".service cannot be placed: it conflicts with k2:evil:", ".service on machine "}, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, fleetsim.Machines(2))
			h.serve(h.api, testOptions)
			first := h.put(tt.first)
			h.waitStatus(tt.first.Name, store.PhaseRunning, first, 60*time.Second)
			h.put(tt.second)
			webHash := web().Hash(0)
			var st *store.Status
			eventually(t, 60*time.Second, func() (bool, string) {
				st = h.status("web")
				if st == nil {
					return false, "no status"
				}
				for _, w := range tt.want {
					if !strings.Contains(st.Message, w) {
						return false, fmt.Sprintf("web: %s %q lacks %q; fleet: %v", st.Phase, st.Message, w, h.view("web"))
					}
				}
				return st.SpecHash == webHash, st.Message
			})
			t.Logf("web: %s: %s", st.Phase, st.Message)
			if st.Phase == store.PhaseRunning {
				t.Errorf("web reported running while a conflict keeps a replica off: %q", st.Message)
			}
		})
	}
}

// inTheWay, pure: the unit in the way of a replica, from fleet's unit list
// (Conflicts either way, path.Match, the machines units are on).
func TestInTheWay(t *testing.T) {
	fu := func(name, machine string, conflicts ...string) *schema.Unit {
		u := &schema.Unit{Name: name, MachineID: machine, DesiredState: "launched"}
		for _, c := range conflicts {
			u.Options = append(u.Options, &schema.UnitOption{Section: "X-Fleet", Name: "Conflicts", Value: c})
		}
		return u
	}
	st := func(name, machine string) *schema.UnitState {
		return &schema.UnitState{Name: name, MachineID: machine, SystemdActiveState: "active", SystemdSubState: "running"}
	}
	meta := func(u *schema.Unit, md string) *schema.Unit {
		u.Options = append(u.Options, &schema.UnitOption{Section: "X-Fleet", Name: "MachineMetadata", Value: md})
		return u
	}
	machineID := func(u *schema.Unit, id string) *schema.Unit {
		u.Options = append(u.Options, &schema.UnitOption{Section: "X-Fleet", Name: "MachineID", Value: id})
		return u
	}
	const web0, web1 = "k2:web:11111111:aaaaaa:0.service", "k2:web:11111111:aaaaaa:1.service"
	const evil = "k2:evil:22222222:bbbbbb:0.service"
	for _, tt := range []struct {
		name    string
		replica *schema.Unit
		global  bool
		others  []*schema.Unit
		states  []*schema.UnitState
		want    string
	}{
		{"a global unit loaded on its machine conflicts with it", fu(web0, "m1", "k2:web:11111111:aaaaaa:*.service"), false,
			[]*schema.Unit{fu(evil, "", "k2:web:*.service")}, []*schema.UnitState{st(evil, "m1"), st(evil, "m2")},
			web0 + " is not loaded on machine m1 (10.0.0.1): it conflicts with " + evil + " there"},
		{"a unit stored before validation, conflicts k2:*:*.service", fu(web0, "m1"), false,
			[]*schema.Unit{fu(evil, "", "k2:*:*.service")}, []*schema.UnitState{st(evil, "m1")},
			web0 + " is not loaded on machine m1 (10.0.0.1): it conflicts with " + evil + " there"},
		{"the replica's own conflicts match the other", fu(web0, "m1", "k2:evil:*.service"), false,
			[]*schema.Unit{fu(evil, "m1")}, []*schema.UnitState{st(evil, "m1")},
			web0 + " is not loaded on machine m1 (10.0.0.1): it conflicts with " + evil + " there"},
		{"a unit fleet did not render, several values in one line", fu(web0, "m1"), false,
			[]*schema.Unit{fu("sidecar.service", "m1", "other.service  k2:web:*")}, []*schema.UnitState{st("sidecar.service", "m1")},
			web0 + " is not loaded on machine m1 (10.0.0.1): it conflicts with sidecar.service there"},
		{"scheduled there but not loaded: not in the way of a loaded replica", fu(web0, "m1"), false,
			[]*schema.Unit{fu(evil, "m1", "k2:web:*.service")}, nil, ""},
		{"no machine: in the way on every machine", fu(web0, ""), false,
			[]*schema.Unit{fu(evil, "", "k2:web:*.service")}, []*schema.UnitState{st(evil, "m1"), st(evil, "m2")},
			web0 + " cannot be placed: it conflicts with " + evil + " on every machine"},
		{"no machine: scheduled on one, its own replica on the other", fu(web1, "", "k2:web:11111111:aaaaaa:*.service"), false,
			[]*schema.Unit{fu(evil, "m1", "k2:web:*.service"), fu(web0, "m2", "k2:web:11111111:aaaaaa:*.service")}, []*schema.UnitState{st(web0, "m2")},
			web1 + " cannot be placed: it conflicts with " + evil + " on machine m1 (10.0.0.1)"},
		{"its own replicas are not named", fu(web1, "", "k2:web:11111111:aaaaaa:*.service"), false,
			[]*schema.Unit{fu(web0, "m2", "k2:web:11111111:aaaaaa:*.service")}, []*schema.UnitState{st(web0, "m2")}, ""},
		{"a global replica, kept off one machine", fu(web0, ""), true,
			[]*schema.Unit{fu("k2:a:33333333:cccccc:0.service", "m2", "k2:web:*.service")}, []*schema.UnitState{st("k2:a:33333333:cccccc:0.service", "m2"), st(web0, "m1")},
			web0 + " is not loaded on machine m2: it conflicts with k2:a:33333333:cccccc:0.service there"},
		{"no conflict", fu(web0, "m1"), false, []*schema.Unit{fu(evil, "m1")}, []*schema.UnitState{st(evil, "m1")}, ""},
		// m1 is role=web, m2 role=worker: a conflict on a machine the
		// replica's metadata keeps it off explains nothing; fleet's engine
		// has not placed it yet (1,000 units: minutes).
		{"no machine: the conflict is only where its metadata keeps it off", meta(fu(web0, "", "k2:evil:*.service"), "role=web"), false,
			[]*schema.Unit{fu(evil, "m2")}, []*schema.UnitState{st(evil, "m2")}, ""},
		{"no machine: in the way on the only machine its metadata allows", meta(fu(web0, "", "k2:evil:*.service"), "role=worker"), false,
			[]*schema.Unit{fu(evil, "m2")}, []*schema.UnitState{st(evil, "m2")},
			web0 + " cannot be placed: it conflicts with " + evil + " on machine m2"},
		{"no machine: in the way on one machine, the other free", fu(web0, "", "k2:evil:*.service"), false,
			[]*schema.Unit{fu(evil, "m2")}, []*schema.UnitState{st(evil, "m2")}, ""},
		{"no machine: pinned by machine ID away from the conflict", machineID(fu(web0, "", "k2:evil:*.service"), "m1"), false,
			[]*schema.Unit{fu(evil, "m2")}, []*schema.UnitState{st(evil, "m2")}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			machines := map[string]string{"m1": "10.0.0.1", "m2": ""}
			units := append([]*schema.Unit{tt.replica}, tt.others...)
			p := &planner{machines: machines, conflicts: newConflictView("k2", units, tt.states, machines),
				mem: &memory{meta: map[string]map[string]string{"m1": {"role": "web"}, "m2": {"role": "worker"}}}}
			id, _ := deploy.ParseUnitName("k2", tt.replica.Name)
			a := &actualUnit{id: id, unit: tt.replica, hash: unitHash(tt.replica.Options)}
			for _, s := range tt.states {
				if s.Name == tt.replica.Name {
					s.Hash = a.hash
					a.states = append(a.states, s)
				}
			}
			if got := p.inTheWay(a, tt.global); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}
