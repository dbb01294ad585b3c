package fleet

import (
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

func namedReplicas(name string, n int, image string, deps ...string) *deploy.Spec {
	return &deploy.Spec{Name: name, Replicas: n, Apps: []deploy.App{{Image: image}}, DependsOn: deps}
}

// Issue 27: web dependsOn db. web's rollout (first start and update)
// waits until db's status is running at the hash of db's stored spec; a
// failed db holds it with db's message; a rollout under way and drift
// repair of a deployed spec are not held; removed together, db's fleet
// units go only once web's are gone.
func TestPlanDependsOn(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	opts := Options{}.withDefaults()
	db1, db2 := namedReplicas("db", 1, "docker://db:1"), namedReplicas("db", 1, "docker://db:2")
	web1, web2 := namedReplicas("web", 3, "docker://web:1", "db"), namedReplicas("web", 3, "docker://web:2", "db")
	h := func(s *deploy.Spec) string { return s.Hash(0) }
	type unit struct {
		in   func(t *testing.T) *unitInput
		name string
	}
	dbAt := func(s *deploy.Spec, st *store.Status) func(t *testing.T) *unitInput {
		return func(t *testing.T) *unitInput {
			in := newWorld(t, s, 0).with(render(t, s), "launched", "active", "running").input()
			in.prev = st
			return in
		}
	}
	running := func(s *deploy.Spec) *store.Status {
		return &store.Status{Name: "db", Phase: store.PhaseRunning, SpecHash: h(s), Deployed: h(s), Message: "1 of 1 running"}
	}
	webFirst := func(t *testing.T) *unitInput { return newWorld(t, web1, 0).input() }
	webUpdate := func(t *testing.T) *unitInput {
		in := newWorld(t, web2, 0).with(render(t, web1), "launched", "active", "running").input()
		in.prev = &store.Status{Name: "web", Phase: store.PhaseRunning, SpecHash: h(web1), Deployed: h(web1)}
		return in
	}
	removed := func(s *deploy.Spec, deps ...string) func(t *testing.T) *unitInput {
		return func(t *testing.T) *unitInput {
			w := newWorld(t, s, 0).with(render(t, s), "launched", "active", "running")
			return &unitInput{name: s.Name, actual: w.act, prev: &store.Status{Name: s.Name, Phase: store.PhaseRunning, SpecHash: h(s), Deployed: h(s), DependsOn: deps}}
		}
	}
	tests := []struct {
		name      string
		db, web   func(t *testing.T) *unitInput
		wantDB    string // db's ops
		wantWeb   string // web's ops
		webPhase  string
		webMsg    string // exactly
		dbMsg     string // a fragment
		waitingOn string
	}{{
		name: "first start waits while db starts",
		db: dbAt(db1, &store.Status{Name: "db", Phase: store.PhaseProgressing, SpecHash: h(db1),
			Message: "0 of 1 running the current spec, 0 ready; replica k2:db:x on machine m0 is restarting"}),
		web: webFirst, webPhase: store.PhasePending, waitingOn: "db",
		webMsg: "waiting for db (progressing: 0 of 1 running the current spec, 0 ready)",
	}, {
		name: "first start proceeds once db runs its current spec",
		db:   dbAt(db1, running(db1)), web: webFirst,
		wantWeb: "create:0 create:1 create:2", webPhase: store.PhasePending, webMsg: "waiting to start",
	}, {
		name: "db runs, but not its stored spec yet: wait",
		db:   dbAt(db2, running(db1)), web: webFirst, webPhase: store.PhasePending, waitingOn: "db",
		// db's status says running for db1; the planner knows db2 is stored.
		webMsg: "waiting for db (running: 1 of 1 running)",
	}, {
		name: "db not stored",
		db:   nil, web: webFirst, webPhase: store.PhasePending, waitingOn: "db",
		webMsg: "waiting for db (no unit db is stored)",
	}, {
		name: "db not started yet (no status)",
		db:   dbAt(db1, nil), web: webFirst, webPhase: store.PhasePending, waitingOn: "db",
		wantDB: "", webMsg: "waiting for db (not started yet)",
	}, {
		name: "db failed: web is held with db's message",
		db: dbAt(db1, &store.Status{Name: "db", Phase: store.PhaseFailed, SpecHash: h(db1),
			Message: "rollout of x failed: replica k2:db:x on machine m0 is in a restart loop"}),
		// (db's own failed rollout takes its new replica down.)
		wantDB: "stop:0", web: webFirst, webPhase: store.PhasePending, waitingOn: "db",
		webMsg: "held: dependency db failed: rollout of x failed: replica k2:db:x on machine m0 is in a restart loop",
	}, {
		name: "an update waits; the old replicas keep serving untouched",
		db: dbAt(db2, &store.Status{Name: "db", Phase: store.PhaseProgressing, SpecHash: h(db2),
			Message: "0 of 1 running the current spec, 0 ready"}),
		web: webUpdate, webPhase: store.PhasePending, waitingOn: "db",
		webMsg: "waiting for db (progressing: 0 of 1 running the current spec, 0 ready); the old version keeps running (3 serving) until then",
	}, {
		name: "an update proceeds once db runs",
		db:   dbAt(db2, running(db2)), web: webUpdate,
		wantWeb: "create:0", webPhase: store.PhasePending, webMsg: "rolling out: starting the first new replica",
	}, {
		name: "drift repair of the deployed spec is not held",
		db:   dbAt(db2, &store.Status{Name: "db", Phase: store.PhaseProgressing, SpecHash: h(db2), Message: "0 of 1 running"}),
		web: func(t *testing.T) *unitInput {
			in := newWorld(t, web1, 0).with(render(t, web1)[:2], "launched", "active", "running").input()
			in.prev = &store.Status{Name: "web", Phase: store.PhaseRunning, SpecHash: h(web1), Deployed: h(web1)}
			return in
		},
		wantWeb: "create:2", webPhase: store.PhaseProgressing, webMsg: "2 of 3 running the current spec, 2 ready",
	}, {
		name: "a rollout under way is not held again",
		db:   dbAt(db2, &store.Status{Name: "db", Phase: store.PhaseProgressing, SpecHash: h(db2), Message: "0 of 1 running"}),
		web: func(t *testing.T) *unitInput {
			in := newWorld(t, web1, 0).with(render(t, web1)[:1], "launched", "active", "running").input()
			in.prev = &store.Status{Name: "web", Phase: store.PhaseProgressing, SpecHash: h(web1)}
			return in
		},
		wantWeb: "create:1 create:2", webPhase: store.PhaseProgressing, webMsg: "1 of 3 running the current spec, 1 ready",
	}, {
		name: "removed together: web goes first, db waits",
		db:   removed(db1), web: removed(web1, "db"),
		wantDB: "", wantWeb: "stop:old0 stop:old1 stop:old2", webPhase: store.PhaseDeleting,
		webMsg: "removed from the store: destroying 3 fleet unit(s)",
		dbMsg:  "removed from the store: its 1 fleet unit(s) are destroyed once those of web, which depended on it, are gone",
	}, {
		name: "removed together, each depending on the other (written by hand): both go",
		db:   removed(db1, "web"), web: removed(web1, "db"),
		wantDB: "stop:old0", wantWeb: "stop:old0 stop:old1 stop:old2", webPhase: store.PhaseDeleting,
		webMsg: "removed from the store: destroying 3 fleet unit(s)", dbMsg: "removed from the store: destroying 1 fleet unit(s)",
	}, {
		name: "removed together, web gone: db goes",
		db:   removed(db1), web: func(t *testing.T) *unitInput {
			return &unitInput{name: "web", prev: &store.Status{Name: "web", Phase: store.PhaseDeleting, DependsOn: []string{"db"}}}
		},
		wantDB: "stop:old0", dbMsg: "removed from the store: destroying 1 fleet unit(s)",
	}, {
		name: "db removed alone while web stays: db goes",
		db:   removed(db1), web: func(t *testing.T) *unitInput {
			in := newWorld(t, web1, 0).with(render(t, web1), "launched", "active", "running").input()
			in.prev = &store.Status{Name: "web", Phase: store.PhaseRunning, SpecHash: h(web1), Deployed: h(web1)}
			return in
		},
		wantDB: "stop:old0", webPhase: store.PhaseRunning, webMsg: "3 of 3 running", dbMsg: "destroying 1 fleet unit(s)",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inputs := map[string]*unitInput{"web": tt.web(t)}
			if tt.db != nil {
				inputs["db"] = tt.db(t)
			}
			p := &planner{opts: opts, mem: newMemory(), now: now, machines: map[string]string{"m0": "10.0.0.1"}}
			for _, in := range inputs {
				for _, a := range in.actual {
					if a.running() {
						p.mem.readySince[a.name()] = now.Add(-time.Minute)
					}
				}
			}
			ops, statuses := planUnits(p, inputs)
			byOwner := map[string][]op{}
			for _, o := range ops {
				byOwner[o.owner] = append(byOwner[o.owner], o)
			}
			hashOf := func(name string) string {
				if in := inputs[name]; in != nil && in.desired != nil {
					return in.desired.hash
				}
				return "-"
			}
			if got := opsString(byOwner["web"], hashOf("web")); got != tt.wantWeb {
				t.Errorf("web's ops: %q, want %q", got, tt.wantWeb)
			}
			if got := opsString(byOwner["db"], hashOf("db")); got != tt.wantDB {
				t.Errorf("db's ops: %q, want %q", got, tt.wantDB)
			}
			for _, ns := range statuses {
				st := ns.status
				switch {
				case ns.name == "web" && tt.webPhase != "":
					if st == nil || st.Phase != tt.webPhase || st.Message != tt.webMsg || st.WaitingFor != tt.waitingOn {
						t.Errorf("web's status: %+v\nwant phase %s, waitingFor %q, message %q", st, tt.webPhase, tt.waitingOn, tt.webMsg)
					}
				case ns.name == "db" && tt.dbMsg != "":
					if st == nil || !strings.Contains(st.Message, tt.dbMsg) {
						t.Errorf("db's status: %+v\nwant a message with %q", st, tt.dbMsg)
					}
				}
			}
		})
	}
}

// TestPlanDependsOnWaitIsNoRolloutTime: an hour spent waiting for db does
// not count against web's progress deadline: the rollout's time starts
// when the wait ends.
func TestPlanDependsOnWaitIsNoRolloutTime(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	db := namedReplicas("db", 1, "docker://db:1")
	web := namedReplicas("web", 3, "docker://web:1", "db")
	dbIn := newWorld(t, db, 0).with(render(t, db), "launched", "active", "running").input()
	dbIn.prev = &store.Status{Name: "db", Phase: store.PhaseRunning, SpecHash: db.Hash(0), Deployed: db.Hash(0)}
	webIn := newWorld(t, web, 0).with(render(t, web), "launched", "activating", "start-pre").input()
	webIn.prev = &store.Status{Name: "web", Phase: store.PhasePending, SpecHash: web.Hash(0), WaitingFor: "db",
		Since: now.Add(-time.Hour), Message: "waiting for db (progressing: 0 of 1 running)"}
	p := &planner{opts: Options{}.withDefaults(), mem: newMemory(), now: now, machines: map[string]string{}}
	_, statuses := planUnits(p, map[string]*unitInput{"db": dbIn, "web": webIn})
	for _, ns := range statuses {
		if ns.name != "web" {
			continue
		}
		if st := ns.status; st.Phase != store.PhaseProgressing || st.WaitingFor != "" || !st.Since.Equal(now) {
			t.Fatalf("web after its wait: %+v; want progressing since now, not failed for the hour it waited", st)
		}
	}
}
