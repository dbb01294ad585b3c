package fleet

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coreos/fleet/machine"
	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// maxReplicasPerHost while the original's units are adopted, planned
// from snapshots (see plan_perhost.go; on fleet's engine and agents:
// TestAdoptOriginalOnFleet), and in Kaylee's own rolling updates, where
// each replica's group conflict holds it (the last cases; on fleet:
// TestRollingUpdateHoldsMaxPerHost).
func TestPlanRollingMaxPerHost(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const countly = `{"name":"countly","replicas":4,"maxReplicasPerHost":2,"env":[{"name":"V","value":"%d"}],"apps":[{"image":"docker://countly:1"}],"machine":["ssd=false"]}`
	v1, v2 := storedUnit(t, fmt.Sprintf(countly, 1)), storedUnit(t, fmt.Sprintf(countly, 2))
	old, cur := render(t, &v1.Spec), render(t, &v2.Spec) // groups: 0, 2 | 1, 3
	// The rule holds while the original's units are adopted: v1's units
	// here carry monder/kaylee's names (6-digit hash, index from 1).
	for i, u := range old {
		id, _ := deploy.ParseUnitName("k2", u.Name)
		o := *u
		// The original's group ids are its own (random), not Kaylee's.
		on := deploy.OriginalUnitName{Prefix: "k2", Name: "countly", SpecHash: id.SpecHash[:6], Group: fmt.Sprintf("0%d0%d0%d", i%2, i%2, i%2), Index: i + 1}
		o.Name = on.String()
		// and the original's group conflict, of its spec alone
		o.Options = nil
		for _, opt := range u.Options {
			if opt.Section == "X-Fleet" && opt.Name == "Conflicts" {
				opt = &schema.UnitOption{Section: "X-Fleet", Name: "Conflicts", Value: fmt.Sprintf("k2:countly:%s:%s:*.service", on.SpecHash, on.Group)}
			}
			o.Options = append(o.Options, opt)
		}
		old[i] = &o
	}
	const free = `{"name":"countly","replicas":4,"env":[{"name":"V","value":"%d"}],"apps":[{"image":"docker://countly:1"}]}`
	free1, free2 := storedUnit(t, fmt.Sprintf(free, 1)), storedUnit(t, fmt.Sprintf(free, 2))
	oldName := func(i int) string { return old[i].Name }
	// Kaylee's own unit without replicas (Conflicts=k2:countly:*.service),
	// stored with 3 replicas at most 1 per machine now.
	single := storedUnit(t, `{"name":"countly","apps":[{"image":"docker://countly:1"}]}`)
	three := storedUnit(t, `{"name":"countly","replicas":3,"maxReplicasPerHost":1,"apps":[{"image":"docker://countly:1"}]}`)
	singleOld, threeCur := render(t, &single.Spec), render(t, &three.Spec)
	// web, run without replicas on m0, stored with 2 replicas at most 1
	// per machine that conflict with db, which runs on m1 and m2 (and m3).
	webSingle := storedUnit(t, `{"name":"web","apps":[{"image":"docker://web:1"}]}`)
	web := storedUnit(t, `{"name":"web","replicas":2,"maxReplicasPerHost":1,"conflicts":["db"],"apps":[{"image":"docker://web:1"}]}`)
	db := storedUnit(t, `{"name":"db","replicas":2,"maxReplicasPerHost":1,"apps":[{"image":"docker://db:1"}]}`)
	db3 := storedUnit(t, `{"name":"db","replicas":3,"maxReplicasPerHost":1,"apps":[{"image":"docker://db:1"}]}`)
	webOld, webCur, dbUnits, db3Units := render(t, &webSingle.Spec), render(t, &web.Spec), render(t, &db.Spec), render(t, &db3.Spec)
	m0to3 := []string{"m0", "m1", "m2", "m3"}
	// Kaylee's own unit on a packed cluster: 3 replicas, at most 1 per
	// machine, on 3 machines.
	packed := `{"name":"countly","replicas":3,"maxReplicasPerHost":1,"env":[{"name":"V","value":"%d"}],"apps":[{"image":"docker://countly:1"}]}`
	packed1, packed2 := storedUnit(t, fmt.Sprintf(packed, 1)), storedUnit(t, fmt.Sprintf(packed, 2))
	packedOld, packedCur := render(t, &packed1.Spec), render(t, &packed2.Spec)
	tests := []struct {
		name     string
		snap     *snapshot
		machines []string // in fleet: m0, m1 and m2 unless set
		wantOps  string
		wantMsg  string // a part of the last stored unit's status message
	}{{
		name:    "v1 on 2/1/1: m0 is full and the first new replica may land there: it is created loaded (fleet places it, nothing starts)",
		snap:    (&snapshot{units: []*store.Unit{v2}}).on(old, []string{"m0", "m0", "m1", "m2"}, "launched", "active", "running"),
		wantOps: "create-loaded:countly/0",
		wantMsg: "rolling out: starting the first new replica",
	}, {
		name: "new replica 0 loaded on m0, full: old replica 1, the highest there, stops before it starts",
		snap: (&snapshot{units: []*store.Unit{v2}}).on(old, []string{"m0", "m0", "m1", "m2"}, "launched", "active", "running").
			on(cur[:1], []string{"m0"}, "loaded", "inactive", "dead"),
		wantOps: "stop:countly/old1",
		wantMsg: cur[0].Name + " is loaded on machine m0 (10.0.0.0), at maxReplicasPerHost (2) counting old and new replicas: " + oldName(1) + " stops before it starts",
	}, {
		name: "new replica 0 loaded on m1, which has room: it is launched",
		snap: (&snapshot{units: []*store.Unit{v2}}).on(old, []string{"m0", "m0", "m1", "m2"}, "launched", "active", "running").
			on(cur[:1], []string{"m1"}, "loaded", "inactive", "dead"),
		wantOps: "launch:countly/0",
	}, {
		name: "new replica 0 loaded on m0 (full) while new replica 2 starts on m1: no old replica stops yet",
		snap: (&snapshot{units: []*store.Unit{v2}}).on(old, []string{"m0", "m0", "m1", "m2"}, "launched", "active", "running").
			on(cur[:1], []string{"m0"}, "loaded", "inactive", "dead").
			on(cur[2:3], []string{"m1"}, "launched", "activating", "start"),
		wantOps: "",
		wantMsg: cur[0].Name + " is loaded on machine m0 (10.0.0.0), at maxReplicasPerHost (2) counting old and new replicas: it starts once an old replica there has stopped, after the replicas on their way up or down",
	}, {
		name: "old replica 1 stopped: destroyed, and new replica 0 launched on m0; new replica 2 (group 0, which new 0 keeps off m0) may only land on m1 or m2, with room: created launched",
		snap: (&snapshot{units: []*store.Unit{v2}}).on(old[:1], []string{"m0"}, "launched", "active", "running").
			on(old[1:2], []string{"m0"}, "loaded", "inactive", "dead").
			on(old[2:], []string{"m1", "m2"}, "launched", "active", "running").
			on(cur[:1], []string{"m0"}, "loaded", "inactive", "dead"),
		wantOps: "create:countly/2 destroy:countly/old1 launch:countly/0",
	}, {
		name: "new replica 0 ready on m1, full (old 2, new 0): new 1 (group 1) may land on m1, new 2 (group 0) may not: 2 is created launched, nothing stops",
		snap: (&snapshot{units: []*store.Unit{v2}}).on(append(append([]*schema.Unit{}, old[0]), old[2:]...), []string{"m0", "m1", "m2"}, "launched", "active", "running").
			on(cur[:1], []string{"m1"}, "launched", "active", "running"),
		wantOps: "create:countly/2",
	}, {
		name: "new replica 0 not placed by fleet yet: the next is created loaded (it may land on any machine), nothing stops",
		snap: (&snapshot{units: []*store.Unit{v2}}).on(append(append([]*schema.Unit{}, old[0]), old[2:]...), []string{"m0", "m1", "m2"}, "launched", "active", "running").
			on(cur[:1], []string{""}, "launched", "", ""),
		wantOps: "create-loaded:countly/1",
	}, {
		name: "new replica 0 launched but not placed by fleet yet: new replica 1, loaded on m1 (room), waits (0 may land on m1)",
		snap: (&snapshot{units: []*store.Unit{v2}}).on(old, []string{"m0", "m0", "m1", "m2"}, "launched", "active", "running").
			on(cur[:1], []string{""}, "launched", "", "").
			on(cur[1:2], []string{"m1"}, "loaded", "inactive", "dead"),
		wantOps: "",
	}, {
		name: "new replicas 0 and 2 ready on m1 and m2: the surplus old replica 3 stops; new 1 (group 1), which may land on full m1 or m2, waits until old 3 is gone (fleet then sees the room on m2)",
		snap: (&snapshot{units: []*store.Unit{v2}}).on(append(append([]*schema.Unit{}, old[0]), old[2:]...), []string{"m0", "m1", "m2"}, "launched", "active", "running").
			on([]*schema.Unit{cur[0], cur[2]}, []string{"m1", "m2"}, "launched", "active", "running"),
		// surplus: 2 ready + 3 serving - 4 = 1: old 3 stops; budget 4+1-(2+2) = 1.
		wantOps: "stop:countly/old3",
	}, {
		name: "old replica 3 stopped, still in fleet: destroyed; new 1 still waits",
		snap: (&snapshot{units: []*store.Unit{v2}}).on([]*schema.Unit{old[0], old[2]}, []string{"m0", "m1"}, "launched", "active", "running").
			on(old[3:], []string{"m2"}, "loaded", "inactive", "dead").
			on([]*schema.Unit{cur[0], cur[2]}, []string{"m1", "m2"}, "launched", "active", "running"),
		wantOps: "destroy:countly/old3",
	}, {
		name: "old replica 3 gone: new 1 is created loaded (m1 is full, m0 and m2 have room)",
		snap: (&snapshot{units: []*store.Unit{v2}}).on([]*schema.Unit{old[0], old[2]}, []string{"m0", "m1"}, "launched", "active", "running").
			on([]*schema.Unit{cur[0], cur[2]}, []string{"m1", "m2"}, "launched", "active", "running"),
		wantOps: "create-loaded:countly/1",
	}, {
		name:    "Kaylee's own unit without replicas on m0, stored with 3 at most 1 per machine: its old unit keeps every new replica off m0, so only the 2 that fit on m1 and m2 are created",
		snap:    (&snapshot{units: []*store.Unit{three}}).on(singleOld, []string{"m0"}, "launched", "active", "running"),
		wantOps: "create:countly/0 create:countly/1",
		wantMsg: singleOld[0].Name + " keeps every new replica off machine m0 (10.0.0.0) (its Conflicts): it stops once the 2 new replicas that fit elsewhere are ready",
	}, {
		name: "the unit without replicas, new replicas 0 and 1 ready on m1 and m2: its old unit stops",
		snap: (&snapshot{units: []*store.Unit{three}}).on(singleOld, []string{"m0"}, "launched", "active", "running").
			on(threeCur[:2], []string{"m1", "m2"}, "launched", "active", "running"),
		wantOps: "stop:countly/old0",
		wantMsg: singleOld[0].Name + " stops (2 new replicas ready): its Conflicts keep every new replica off its machine",
	}, {
		name: "new replica 0 loaded on m0, which has left fleet with old replicas 0 and 1: it stays loaded (fleet places it again), the old replicas that are not up stop",
		snap: (&snapshot{units: []*store.Unit{v2}}).on(old[:2], []string{"m0", "m0"}, "launched", "", "").
			on(old[2:], []string{"m1", "m1"}, "launched", "active", "running").
			on(cur[:1], []string{"m0"}, "loaded", "", ""),
		machines: []string{"m1", "m2"},
		wantOps:  "stop:countly/old0 stop:countly/old1",
	}, {
		name:     "web's old unit on m0 keeps new replicas off it, db (web's conflicts) runs on m1 and m2: 1 new replica fits elsewhere (m3), only it is created",
		snap:     (&snapshot{units: []*store.Unit{db, web}}).on(webOld, []string{"m0"}, "launched", "active", "running").on(dbUnits, []string{"m1", "m2"}, "launched", "active", "running"),
		machines: m0to3,
		wantOps:  "create:web/0",
		wantMsg:  webOld[0].Name + " keeps every new replica off machine m0 (10.0.0.0) (its Conflicts): it stops once the 1 new replica that fits elsewhere is ready",
	}, {
		name: "web's new replica 0 ready on m3, the only machine it fits besides m0: web's old unit stops",
		snap: (&snapshot{units: []*store.Unit{db, web}}).on(webOld, []string{"m0"}, "launched", "active", "running").on(dbUnits, []string{"m1", "m2"}, "launched", "active", "running").
			on(webCur[:1], []string{"m3"}, "launched", "active", "running"),
		machines: m0to3,
		wantOps:  "stop:web/old0",
		wantMsg:  webOld[0].Name + " stops (1 new replica ready): its Conflicts keep every new replica off its machine",
	}, {
		name:     "db on m1, m2 and m3: no new replica of web fits besides m0: web's old unit stops first, nothing is created while it is there",
		snap:     (&snapshot{units: []*store.Unit{db3, web}}).on(webOld, []string{"m0"}, "launched", "active", "running").on(db3Units, []string{"m1", "m2", "m3"}, "launched", "active", "running"),
		machines: m0to3,
		wantOps:  "stop:web/old0",
		wantMsg:  webOld[0].Name + " stops (no new replica fits elsewhere)",
	}, {
		name:     "web's old unit stopped, still in fleet on m0: destroyed; no machine may take a new replica yet: none is created",
		snap:     (&snapshot{units: []*store.Unit{db3, web}}).on(webOld, []string{"m0"}, "loaded", "inactive", "dead").on(db3Units, []string{"m1", "m2", "m3"}, "launched", "active", "running"),
		machines: m0to3,
		wantOps:  "destroy:web/old0",
	}, {
		name:     "web's old unit gone: its new replica 0 is created launched (it may land only on m0)",
		snap:     (&snapshot{units: []*store.Unit{db3, web}}).on(db3Units, []string{"m1", "m2", "m3"}, "launched", "active", "running"),
		machines: m0to3,
		wantOps:  "create:web/0 create:web/1",
	}, {
		name:    "without maxReplicasPerHost: the first new replica is created at once, as before",
		snap:    (&snapshot{units: []*store.Unit{free2}}).on(render(t, &free1.Spec), []string{"m0", "m0", "m1", "m2"}, "launched", "active", "running"),
		wantOps: "create:countly/0",
	}, {
		name:    "Kaylee's own v1 on 2/1/1: the first new replica is created launched (its group conflict keeps it off m0 and m1, which run its group)",
		snap:    (&snapshot{units: []*store.Unit{v2}}).on(render(t, &v1.Spec), []string{"m0", "m0", "m1", "m2"}, "launched", "active", "running"),
		wantOps: "create:countly/0",
	}, {
		name:    "Kaylee's own v1 on 2/1/1 with new 0 ready on m2: the surplus old 3 stops; new 1 (group 1, which runs on m0 and m2) may land on m1 only, beside old 2 (group 0): created launched",
		snap:    (&snapshot{units: []*store.Unit{v2}}).on(render(t, &v1.Spec), []string{"m0", "m0", "m1", "m2"}, "launched", "active", "running").on(cur[:1], []string{"m2"}, "launched", "active", "running"),
		wantOps: "create:countly/1 stop:countly/old3",
	}, {
		name:    "packed (3 at most 1 per machine on 3 machines): no machine has room for a new replica: old 2 stops first, its machine takes new 0",
		snap:    (&snapshot{units: []*store.Unit{packed2}}).on(packedOld, []string{"m0", "m1", "m2"}, "launched", "active", "running"),
		wantOps: "stop:countly/old2",
		wantMsg: "no machine has room for " + packedCur[0].Name + " under maxReplicasPerHost (1): every machine it may run on has an old replica of its group: " +
			packedOld[2].Name + " stops on machine m2 (10.0.0.2) and the new one takes its place",
	}, {
		name:    "packed, old 2 stopping: nothing more stops, new 0 waits for its machine",
		snap:    (&snapshot{units: []*store.Unit{packed2}}).on(packedOld[:2], []string{"m0", "m1"}, "launched", "active", "running").on(packedOld[2:], []string{"m2"}, "inactive", "deactivating", "stop-sigterm"),
		wantOps: "",
		wantMsg: "one stops for it once the replicas on their way up or down are done",
	}, {
		name:     "packed, m2 left: 2 of 3 serve on m0 and m1: no old replica stops (the rollout cannot end on 2 machines)",
		snap:     (&snapshot{units: []*store.Unit{packed2}}).on(packedOld[:2], []string{"m0", "m1"}, "launched", "active", "running"),
		machines: []string{"m0", "m1"},
		wantOps:  "",
		wantMsg:  "no old replica stops for it while 2 of 3 serve",
	}, {
		name: "packed: new 1 and 2 ready on m1 and m2, new 0 launched and unplaced (old 0 holds m0, the only machine left to it): old 0 stops",
		snap: (&snapshot{units: []*store.Unit{packed2}}).on(packedOld[:1], []string{"m0"}, "launched", "active", "running").
			on(packedCur[1:], []string{"m1", "m2"}, "launched", "active", "running").on(packedCur[:1], []string{""}, "launched", "", ""),
		wantOps: "stop:countly/old0",
		wantMsg: packedOld[0].Name + " stops on machine m0 (10.0.0.0) and the new one takes its place",
	}, {
		name:    "packed, old 2 gone: new 0 is created, for m2",
		snap:    (&snapshot{units: []*store.Unit{packed2}}).on(packedOld[:2], []string{"m0", "m1"}, "launched", "active", "running"),
		wantOps: "create:countly/0",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := tt.snap
			if tt.machines == nil {
				tt.machines = []string{"m0", "m1", "m2"}
			}
			for _, id := range tt.machines {
				snap.machines = append(snap.machines, machine.MachineState{ID: id, PublicIP: "10.0.0." + id[1:], Metadata: map[string]string{"ssd": "false"}})
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
			if got := origAsOld(adoptOps(plan.ops, hashes)); got != tt.wantOps {
				t.Errorf("ops = %q, want %q", got, tt.wantOps)
			}
			for _, st := range plan.statuses {
				if st.status == nil || st.name != snap.units[len(snap.units)-1].Name {
					continue
				}
				t.Logf("%s: %s: %s", st.name, st.status.Phase, st.status.Message)
				if !strings.Contains(st.status.Message, tt.wantMsg) {
					t.Errorf("status: %q, want it to contain %q", st.status.Message, tt.wantMsg)
				}
			}
		})
	}
}

// The events of the per-host rule's calls say why: a replica created
// loaded, and started once its machine has room, is no drift repair.
func TestOpEventStaged(t *testing.T) {
	for _, tt := range []struct {
		o    op
		want string
	}{
		{op{kind: opCreate, owner: "countly", name: "k2:countly:e8530328:9d5234:0.service", staged: true},
			"created: created loaded: it starts once the machine fleet puts it on has room under maxReplicasPerHost. why"},
		{op{kind: opLaunch, owner: "countly", name: "k2:countly:e8530328:9d5234:0.service", staged: true},
			"launched: started: its machine has room under maxReplicasPerHost. why"},
		{op{kind: opLaunch, owner: "countly", name: "k2:countly:e8530328:9d5234:0.service"},
			"launched: drift repaired: it was stopped outside Kaylee. why"},
		{op{kind: opCreate, owner: "countly", name: "k2:countly:e8530328:9d5234:0.service"}, "created: why"},
	} {
		e := opEvent(tt.o, "why")
		if got := e.Kind + ": " + e.Message; got != tt.want {
			t.Errorf("%s (staged %v): %q, want %q", tt.o.kind, tt.o.staged, got, tt.want)
		}
	}
}

// origAsOld labels the original's replica i (from 1) as old replica i-1,
// as Kaylee's own old replicas are labelled.
func origAsOld(ops string) string {
	return regexp.MustCompile(`/orig(\d+)`).ReplaceAllStringFunc(ops, func(m string) string {
		n, _ := strconv.Atoi(m[len("/orig"):])
		return fmt.Sprintf("/old%d", n-1)
	})
}
