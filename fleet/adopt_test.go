package fleet

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coreos/fleet/machine"
	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/internal/original"
	"github.com/kaylee-gitops/kaylee/store"
)

// storedUnit decodes a stored JSON value as the store does.
func storedUnit(t *testing.T, raw string) *store.Unit {
	t.Helper()
	doc, err := deploy.DecodeJSON("test", []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return &store.Unit{Name: doc.Spec.Name, Spec: doc.Spec, Raw: doc.Spec.CanonicalJSON()}
}

// originalUnits is what monder/kaylee created for a stored unit (group ids
// from a fixed seed).
func originalUnits(t *testing.T, u *store.Unit, seed byte) []*schema.Unit {
	t.Helper()
	units, err := original.Units("k2", u.Raw, bytes.NewReader(bytes.Repeat([]byte{seed, seed + 1, seed + 2, seed + 3}, 8)))
	if err != nil {
		t.Fatal(err)
	}
	return units
}

// on adds fleet units to the snapshot, unit i on machine on[i] (a global
// unit: a state on every machine listed), in fleet's state active/sub.
func (s *snapshot) on(units []*schema.Unit, on []string, target, active, sub string) *snapshot {
	for i, u := range units {
		cp := *u
		cp.DesiredState = target
		ms := []string{on[i]}
		if on[i] == "*" {
			ms = []string{"m0", "m1", "m2"}
		} else {
			cp.MachineID = on[i]
		}
		s.fleetUnits = append(s.fleetUnits, &cp)
		for _, m := range ms {
			if active != "" {
				s.states = append(s.states, &schema.UnitState{Name: u.Name, MachineID: m,
					SystemdActiveState: active, SystemdSubState: sub, Hash: unitHash(u.Options)})
			}
		}
	}
	return s
}

// adoptOps is opsString with the unit's name, the original's units
// tagged orig<i>, Kaylee's of another spec old<i>, and a unit created
// loaded (not started) create-loaded; hashes: each stored unit's current
// spec hash.
func adoptOps(ops []op, hashes map[string]string) string {
	var out []string
	for _, o := range ops {
		if id, ok := deploy.ParseOriginalUnitName("k2", o.name); ok {
			out = append(out, fmt.Sprintf("%s:%s/orig%d", o.kind, id.Name, id.Index))
			continue
		}
		id, _ := deploy.ParseUnitName("k2", o.name)
		tag := fmt.Sprint(id.Index)
		if id.SpecHash != hashes[id.Name] {
			tag = "old" + tag
		}
		kind := o.kind.String()
		if o.kind == opCreate && o.unit.DesiredState == targetLoaded {
			kind = "create-loaded"
		}
		out = append(out, fmt.Sprintf("%s:%s/%s", kind, id.Name, tag))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// Adoption, planned from snapshots: the fleet units monder/kaylee created
// for a stored unit are its previous version, replaced by an ordinary
// rollout that holds maxReplicasPerHost across old and new; units that
// cannot overlap stop first; the original's units of names not stored are
// left alone, and said so.
func TestPlanAdoption(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	countlyJSON := `{"name":"countly","replicas":4,"maxReplicasPerHost":2,"env":[{"name":"MONGO_URL","value":"mongodb://mongo-1.lan,mongo-2.lan,mongo-3.lan/countly?replicaSet=main"}],"apps":[{"image":"docker://monder/countly-docker:latest"},{"image":"monder.cc/rkt-sidekick:v0.0.3","args":["--cidr 10.5.0.0/16","--interval 10m","--expireDir /services","--format '$$ip:80'","/services/countly/${KAYLEE_ID}"]}],"args":["--dns=10.0.0.2","--net=flannel,default"],"machine":["ssd=false"]}`
	countly := storedUnit(t, countlyJSON)
	orig := originalUnits(t, countly, 1) // indexes 1..4; groups: 1, 3 | 2, 4
	cur := render(t, &countly.Spec)      // indexes 0..3; groups: 0, 2 | 1, 3
	single := storedUnit(t, `{"name":"single","apps":[{"image":"docker://single:1"}]}`)
	pinned := storedUnit(t, `{"name":"pinned","apps":[{"image":"docker://pinned:1"}],"machineId":"m1"}`)
	global := storedUnit(t, `{"name":"everywhere","apps":[{"image":"docker://agent:1"}],"global":true}`)
	gone := storedUnit(t, `{"name":"gone","apps":[{"image":"docker://gone:1"}]}`)
	// web: the original ran it without replicas (Conflicts=k2:web:*.service,
	// which keeps every replica of web off its machine); now stored with 3
	// replicas, at most 1 per machine, or with 2 on ssd machines only.
	webOrig := originalUnits(t, storedUnit(t, `{"name":"web","apps":[{"image":"docker://web:1"}]}`), 13)
	web := storedUnit(t, `{"name":"web","replicas":3,"maxReplicasPerHost":1,"apps":[{"image":"docker://web:1"}]}`)
	webCur := render(t, &web.Spec)
	webSSD := storedUnit(t, `{"name":"web","replicas":2,"apps":[{"image":"docker://web:1"}],"machine":["ssd=true"]}`)
	tests := []struct {
		name     string
		ssdOn    string // the machine with ssd=true (the others have ssd=false)
		snap     *snapshot
		wantOps  string
		wantMsg  map[string]string // unit → a part of its status message
		notMsg   string            // no status message contains it
		wantEvts string            // kind:unit of the events the plan adds
		wantWarn string            // a part of a warning
	}{{
		name:     "countly on 2/1/1: m0 is full and the first new replica may land there: it is created loaded (fleet places it, nothing starts)",
		snap:     (&snapshot{units: []*store.Unit{countly}}).on(orig, []string{"m0", "m1", "m2", "m0"}, "launched", "active", "running"),
		wantOps:  "create-loaded:countly/0",
		wantMsg:  map[string]string{"countly": "replacing 4 replicas of monder/kaylee"},
		wantEvts: "adopted:countly",
	}, {
		name: "countly: new replica 0 loaded on m0, full: the highest original replica there stops before it starts",
		snap: (&snapshot{units: []*store.Unit{countly}}).on(orig, []string{"m0", "m1", "m2", "m0"}, "launched", "active", "running").
			on(cur[:1], []string{"m0"}, "loaded", "inactive", "dead"),
		wantOps: "stop:countly/orig4",
		wantMsg: map[string]string{"countly": cur[0].Name + " is loaded on machine m0 (10.0.0.0), at maxReplicasPerHost (2) counting old and new replicas: " +
			orig[3].Name + " stops before it starts; replacing 4 replicas of monder/kaylee"},
		wantEvts: "adopted:countly",
	}, {
		name: "countly, the original replica of m0 stopped: it is destroyed and new replica 0 launched; new replica 2 (group 0, which new 0 keeps off m0) may only land on m1 or m2, with room: created launched",
		snap: (&snapshot{units: []*store.Unit{countly}}).on(orig[:3], []string{"m0", "m1", "m2"}, "launched", "active", "running").
			on(orig[3:], []string{"m0"}, "loaded", "inactive", "dead").
			on(cur[:1], []string{"m0"}, "loaded", "inactive", "dead"),
		wantOps: "create:countly/2 destroy:countly/orig4 launch:countly/0", wantEvts: "adopted:countly",
		wantMsg: map[string]string{"countly": "replacing 4 replicas of monder/kaylee"},
	}, {
		name:     "countly on 1/1/1 with room everywhere: the first new replica is created launched, the second (surge: 3 serving) loaded, nothing stops",
		snap:     (&snapshot{units: []*store.Unit{countly}}).on(orig[:3], []string{"m0", "m1", "m2"}, "launched", "active", "running"),
		wantOps:  "create-loaded:countly/1 create:countly/0",
		wantEvts: "adopted:countly",
	}, {
		name: "new replica 0 ready on m0 (2 there, old and new): the next new replica of group 1 may land on m0, that of group 0 (2) may not: 2 is created, nothing stops",
		snap: (&snapshot{units: []*store.Unit{countly}}).on(orig[:3], []string{"m0", "m1", "m2"}, "launched", "active", "running").
			on(cur[:1], []string{"m0"}, "launched", "active", "running"),
		// surplus: 1 ready + 3 serving - 4 = 0; budget 4+1-(1+3) = 1;
		// replica 1 (group 1) would need room on m0, full; replica 2
		// (group 0) conflicts with replica 0 there: it lands on m1 or m2.
		wantOps:  "create:countly/2",
		wantMsg:  map[string]string{"countly": "1 of 4 running the current spec, 1 ready; 3 old still to replace"},
		wantEvts: "adopted:countly",
	}, {
		name: "the next new replica (2, group 0) cannot land on m0, full but holding new replica 0: it is created",
		snap: (&snapshot{units: []*store.Unit{countly}}).on(orig[1:3], []string{"m0", "m2"}, "launched", "active", "running").
			on(cur[:2], []string{"m0", "m1"}, "launched", "active", "running"),
		wantOps:  "create:countly/2",
		wantEvts: "adopted:countly",
	}, {
		name: "every new replica ready, the original replicas stopping: rolled out, the status says they are on their way out",
		snap: (&snapshot{units: []*store.Unit{countly}}).on(cur, []string{"m0", "m1", "m2", "m1"}, "launched", "active", "running").
			on(orig[:1], []string{"m2"}, "loaded", "deactivating", "stop-sigterm"),
		wantMsg:  map[string]string{"countly": "4 of 4 running; 1 fleet unit of the old version on its way out; 1 fleet unit of monder/kaylee stopping"},
		wantEvts: "adopted:countly",
	}, {
		name: "a new replica fails: the rollout fails, the new ones go, the original's replicas keep serving",
		snap: (&snapshot{units: []*store.Unit{countly}}).on(orig[:3], []string{"m0", "m1", "m2"}, "launched", "active", "running").
			on(cur[:1], []string{"m1"}, "launched", "failed", "failed"),
		wantOps:  "stop:countly/0",
		wantMsg:  map[string]string{"countly": "failed on machine m1"},
		wantEvts: "adopted:countly",
	}, {
		name:     "a single unit (Conflicts=k2:single:*): the original's unit stops first",
		snap:     (&snapshot{units: []*store.Unit{single}}).on(originalUnits(t, single, 7), []string{"m0"}, "launched", "active", "running"),
		wantOps:  "stop:single/orig1",
		wantMsg:  map[string]string{"single": "waiting for 1 old fleet unit(s) to stop before starting the new one; replacing 1 fleet unit of monder/kaylee"},
		notMsg:   "1 of 1 running",
		wantEvts: "adopted:single",
	}, {
		name:     "a single unit, the original's stopped: destroyed, nothing created while it is in fleet",
		snap:     (&snapshot{units: []*store.Unit{single}}).on(originalUnits(t, single, 7), []string{"m0"}, "loaded", "inactive", "dead"),
		wantOps:  "destroy:single/orig1",
		wantEvts: "adopted:single",
	}, {
		name:     "a single unit, the original's gone: Kaylee's is created; the adoption is over",
		snap:     &snapshot{units: []*store.Unit{single}},
		wantOps:  "create:single/0",
		wantEvts: "", // no original was seen by this planner: nothing to end
	}, {
		name:     "a machineId unit: the original's unit (which conflicts with Kaylee's on its machine) stops first",
		snap:     (&snapshot{units: []*store.Unit{pinned}}).on(originalUnits(t, pinned, 9), []string{"m1"}, "launched", "active", "running"),
		wantOps:  "stop:pinned/orig1",
		wantEvts: "adopted:pinned",
	}, {
		name:     "a global unit: the original's unit stops on every machine first",
		snap:     (&snapshot{units: []*store.Unit{global}}).on(originalUnits(t, global, 11), []string{"*"}, "launched", "active", "running"),
		wantOps:  "stop:everywhere/orig1",
		wantMsg:  map[string]string{"everywhere": "replacing 1 fleet unit of monder/kaylee"},
		wantEvts: "adopted:everywhere",
	}, {
		name:    "web, run by the original without replicas on m0, stored with 3 replicas at most 1 per machine: the 2 that fit on m1 and m2 come first (the second loaded until the first is placed)",
		snap:    (&snapshot{units: []*store.Unit{web}}).on(webOrig, []string{"m0"}, "launched", "active", "running"),
		wantOps: "create-loaded:web/1 create:web/0",
		wantMsg: map[string]string{"web": "rolling out: starting the first new replica; " + webOrig[0].Name +
			" keeps every new replica off machine m0 (10.0.0.0) (its Conflicts): it stops once the 2 new replicas that fit elsewhere are ready; replacing 1 replica of monder/kaylee"},
		wantEvts: "adopted:web",
	}, {
		name: "web: new replicas 0 and 1 ready on m1 and m2, all that fit beside the original's unit: it stops (serving: 2), the third is not created yet",
		snap: (&snapshot{units: []*store.Unit{web}}).on(webOrig, []string{"m0"}, "launched", "active", "running").
			on(webCur[:2], []string{"m1", "m2"}, "launched", "active", "running"),
		wantOps:  "stop:web/orig1",
		wantMsg:  map[string]string{"web": webOrig[0].Name + " stops (2 new replicas ready): its Conflicts keep every new replica off its machine"},
		wantEvts: "adopted:web",
	}, {
		name: "web: the original's unit stopped: destroyed; the third new replica waits until it is gone from fleet",
		snap: (&snapshot{units: []*store.Unit{web}}).on(webOrig, []string{"m0"}, "loaded", "inactive", "dead").
			on(webCur[:2], []string{"m1", "m2"}, "launched", "active", "running"),
		wantOps:  "destroy:web/orig1",
		wantEvts: "adopted:web",
	}, {
		name:    "web: the original's unit gone: the third new replica is created (on m0, the only machine left for it)",
		snap:    (&snapshot{units: []*store.Unit{web}}).on(webCur[:2], []string{"m1", "m2"}, "launched", "active", "running"),
		wantOps: "create:web/2",
	}, {
		name:     "web stored with 2 replicas on ssd machines, only m0, which the original's unit holds: no new replica fits elsewhere, so it stops first",
		ssdOn:    "m0",
		snap:     (&snapshot{units: []*store.Unit{webSSD}}).on(webOrig, []string{"m0"}, "launched", "active", "running"),
		wantOps:  "stop:web/orig1",
		wantMsg:  map[string]string{"web": webOrig[0].Name + " stops (no new replica fits elsewhere): its Conflicts keep every new replica off its machine"},
		wantEvts: "adopted:web",
	}, {
		name: "a stored unit the new validation refuses: the original's units are left as they are, nothing is adopted",
		snap: (&snapshot{units: []*store.Unit{{Name: "single", Raw: single.Raw, Err: errors.New("unknown field")}}}).
			on(originalUnits(t, single, 7), []string{"m0"}, "launched", "active", "running"),
		wantMsg: map[string]string{"single": "the stored unit is invalid; its fleet units are left as they are"},
	}, {
		name:     "the original's units of a name not stored: left alone, reported once",
		snap:     (&snapshot{units: []*store.Unit{single}}).on(originalUnits(t, gone, 5), []string{"m2"}, "launched", "active", "running"),
		wantOps:  "create:single/0",
		wantEvts: "original-left-alone:gone",
		wantWarn: "fleet units of monder/kaylee for a unit that is not stored: left alone",
	}, {
		// monder/kaylee named its fleet units after the JSON's name,
		// whatever the key: those of frontend are the refused unit web's.
		name: "the original's units of a JSON name stored under another key (refused): held, not adopted, not reported as not stored",
		snap: (&snapshot{units: []*store.Unit{single, {Name: "web", Raw: []byte(`{"name":"gone","apps":[{"image":"docker://gone:1"}]}`), Err: errors.New("the key is web")}}}).
			on(originalUnits(t, gone, 5), []string{"m2"}, "launched", "active", "running"),
		wantOps:  "create:single/0",
		wantEvts: "original-held:gone",
		wantWarn: "fleet units of monder/kaylee held by a refused unit stored under another key: left alone",
		wantMsg:  map[string]string{"web": "the stored unit is invalid"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := tt.snap
			for _, id := range []string{"m0", "m1", "m2"} {
				ssd := map[bool]string{true: "true", false: "false"}[id == tt.ssdOn]
				snap.machines = append(snap.machines, machine.MachineState{ID: id, PublicIP: "10.0.0." + id[1:], Metadata: map[string]string{"ssd": ssd}})
			}
			snap.registry = &registry{}
			pp := newPassPlanner(Options{}.withDefaults())
			for _, s := range snap.states {
				if s.SystemdActiveState == "active" {
					pp.mem.readySince[s.Name] = now.Add(-time.Minute)
				}
			}
			plan := pp.plan(snap, now)
			hashes := map[string]string{}
			for _, u := range snap.units {
				hashes[u.Name] = u.Spec.Hash(0)
			}
			if got := adoptOps(plan.ops, hashes); got != tt.wantOps {
				t.Errorf("ops = %q, want %q", got, tt.wantOps)
			}
			for _, st := range plan.statuses {
				if st.status == nil {
					continue
				}
				t.Logf("%s: %s: %s", st.name, st.status.Phase, st.status.Message)
				if want, ok := tt.wantMsg[st.name]; ok && !strings.Contains(st.status.Message, want) {
					t.Errorf("status of %s: %q, want it to contain %q", st.name, st.status.Message, want)
				}
				if tt.notMsg != "" && strings.Contains(st.status.Message, tt.notMsg) {
					t.Errorf("status of %s: %q contains %q", st.name, st.status.Message, tt.notMsg)
				}
			}
			var evts []string
			for _, e := range plan.events {
				evts = append(evts, e.Kind+":"+e.Unit)
			}
			if got := strings.Join(evts, " "); got != tt.wantEvts {
				t.Errorf("events = %q, want %q", got, tt.wantEvts)
			}
			var warns []string
			for _, w := range plan.warnings {
				warns = append(warns, w.msg)
			}
			if got := strings.Join(warns, "; "); !strings.Contains(got, tt.wantWarn) || tt.wantWarn == "" && got != "" {
				t.Errorf("warnings = %q, want %q", got, tt.wantWarn)
			}
			// A second pass with the same snapshot tells nothing again.
			plan = pp.plan(snap, now.Add(time.Second))
			if len(plan.events) > 0 || len(plan.warnings) > 0 {
				t.Errorf("second pass: events %v, warnings %v", plan.events, plan.warnings)
			}
		})
	}
}

// The adoption's events: one when the original's units of a unit are
// first seen, one when the last of them is gone.
func TestPlanAdoptionEvents(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	single := storedUnit(t, `{"name":"single","apps":[{"image":"docker://single:1"}]}`)
	machines := []machine.MachineState{{ID: "m0", PublicIP: "10.0.0.1"}}
	pp := newPassPlanner(Options{}.withDefaults())
	passes := []struct {
		snap *snapshot
		want string
	}{
		{(&snapshot{units: []*store.Unit{single}}).on(originalUnits(t, single, 7), []string{"m0"}, "launched", "active", "running"),
			"adopted:single:1 fleet unit that monder/kaylee created for this unit taken over as its previous version: a rollout replaces it"},
		{(&snapshot{units: []*store.Unit{single}}).on(originalUnits(t, single, 7), []string{"m0"}, "loaded", "inactive", "dead"), ""},
		{(&snapshot{units: []*store.Unit{single}}).on(render(t, &single.Spec), []string{"m0"}, "launched", "active", "running"),
			"adoption-done:single:the last fleet unit monder/kaylee created for this unit is gone: Kaylee's own replaced them all"},
		{(&snapshot{units: []*store.Unit{single}}).on(render(t, &single.Spec), []string{"m0"}, "launched", "active", "running"), ""},
	}
	for i, p := range passes {
		p.snap.machines, p.snap.registry = machines, &registry{}
		plan := pp.plan(p.snap, now.Add(time.Duration(i)*time.Second))
		var got []string
		for _, e := range plan.events {
			got = append(got, e.Kind+":"+e.Unit+":"+e.Message)
		}
		if g := strings.Join(got, "; "); g != p.want {
			t.Errorf("pass %d: events %q, want %q", i, g, p.want)
		}
	}
}

// The original's units of a name not stored have a status of their own
// (left-alone: desired 0, the fleet units with their machines and states,
// a message saying why), which becomes the stored unit's status once one
// of that name is stored, tells of the refused unit holding the name, and
// goes with the fleet units.
func TestPlanLeftAloneStatus(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	gone := storedUnit(t, `{"name":"gone","replicas":2,"apps":[{"image":"docker://gone:1"}]}`)
	refused := &store.Unit{Name: "web", Raw: []byte(`{"name":"gone","apps":[{"image":"docker://gone:1"}]}`),
		Err: errors.New(`the key is web but the JSON's name is gone`)}
	machines := []machine.MachineState{{ID: "m0", PublicIP: "10.0.0.1"}, {ID: "m1", PublicIP: "10.0.0.2"}}
	orig := originalUnits(t, gone, 3)
	sort.Slice(orig, func(i, j int) bool { return orig[i].Name < orig[j].Name })
	origUnits := func(state, sub string) string {
		return fmt.Sprintf("%s@m0(10.0.0.1)=%s/%s %s@m1(10.0.0.2)=%s/%s", orig[0].Name, state, sub, orig[1].Name, state, sub)
	}
	pp := newPassPlanner(Options{}.withDefaults())
	statuses := map[string]*store.Status{}
	passes := []struct {
		name  string
		units []*store.Unit
		fleet bool // the original's units are in fleet
		state string
		want  string // phase|desired|running|message|units, "" for no status
		// dropped: gone's history (Kaylee deployed it before it was
		// removed from the store) is dropped, as any removed unit's.
		dropped bool
	}{
		{"not stored", nil, true, "running",
			"left-alone|0|2|2 fleet units of monder/kaylee; no unit named gone is stored: left alone|" + origUnits("active", "running"), true},
		{"stopped by hand", nil, true, "dead",
			"left-alone|0|0|2 fleet units of monder/kaylee; no unit named gone is stored: left alone|" + origUnits("inactive", "dead"), true},
		{"held by a refused unit", []*store.Unit{refused}, true, "running",
			"left-alone|0|2|2 fleet units of monder/kaylee; held by the refused unit web (its JSON's name is gone): left alone, never removed; store that JSON under the key gone and they are adopted|" + origUnits("active", "running"), true},
		{"removed by the operator", nil, false, "", "", true},
		{"back again", nil, true, "running",
			"left-alone|0|2|2 fleet units of monder/kaylee; no unit named gone is stored: left alone|" + origUnits("active", "running"), true},
		{"stored: adopted", []*store.Unit{gone}, true, "running", "pending|2|0|", false},
	}
	hist := map[string][]*store.HistoryEntry{"gone": {{Unit: "gone", Revision: 3, SpecHash: "abcd1234", Outcome: store.OutcomeDeployed}}}
	for i, p := range passes {
		snap := &snapshot{units: p.units, machines: machines, registry: &registry{}, statuses: statuses, history: hist}
		if p.fleet {
			active := map[string]string{"running": "active", "dead": "inactive"}[p.state]
			snap.on(orig, []string{"m0", "m1"}, "launched", active, p.state)
		}
		plan := pp.plan(snap, now.Add(time.Duration(i)*time.Second))
		var st *store.Status
		for _, ns := range plan.statuses {
			if ns.name == "gone" {
				st = ns.status
			}
		}
		got := ""
		if st != nil {
			var us []string
			for _, u := range st.Units {
				us = append(us, fmt.Sprintf("%s@%s(%s)=%s/%s", u.Name, u.MachineID, u.MachineIP, u.ActiveState, u.SubState))
			}
			got = fmt.Sprintf("%s|%d|%d|%s|%s", st.Phase, st.Desired, st.Running, st.Message, strings.Join(us, " "))
			statuses["gone"] = st
		} else {
			delete(statuses, "gone")
		}
		if strings.HasPrefix(p.want, "pending|") {
			got = strings.Join(strings.SplitN(got, "|", 4)[:3], "|") + "|"
		}
		if got != p.want {
			t.Errorf("pass %d (%s): status of gone\n got %q\nwant %q", i, p.name, got, p.want)
		}
		dropped := false
		for _, h := range plan.history {
			dropped = dropped || h.name == "gone" && h.drop
		}
		if dropped != p.dropped {
			t.Errorf("pass %d (%s): gone's history dropped: %v, want %v", i, p.name, dropped, p.dropped)
		}
		if st != nil && st.Phase == store.PhaseLeftAlone && plan.busy() {
			t.Errorf("pass %d (%s): a left-alone name keeps the scheduler busy", i, p.name)
		}
	}
}
