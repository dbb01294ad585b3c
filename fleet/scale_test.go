package fleet

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/store"
)

// placement is where a unit's replicas run: fleet unit name → machine.
type placement map[string]string

func (p placement) String() string {
	var out []string
	for n, m := range p {
		out = append(out, n+" on "+m)
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// placed is where each fleet unit of the unit runs, once each of its n
// fleet units runs on one machine.
func (h *harness) placed(name string, n int) placement {
	h.t.Helper()
	var p placement
	eventually(h.t, 60*time.Second, func() (bool, string) {
		v := h.view(name)
		p = placement{}
		for u, ms := range v.running {
			if len(ms) == 1 {
				p[u] = ms[0]
			}
		}
		return len(v.units) == n && len(p) == n, v.String()
	})
	return p
}

// waitScaled waits until the unit's status is running for hash with n
// replicas desired, and returns it.
func (h *harness) waitScaled(name, hash string, n int) *store.Status {
	h.t.Helper()
	var st *store.Status
	eventually(h.t, 60*time.Second, func() (bool, string) {
		st = h.status(name)
		return st != nil && st.Phase == store.PhaseRunning && st.SpecHash == hash && st.Desired == n,
			fmt.Sprintf("status of %s: %+v; fleet: %v", name, st, h.view(name))
	})
	return st
}

// byIndex returns the fleet unit of p with replica index i.
func (p placement) byIndex(t *testing.T, i int) string {
	t.Helper()
	for n := range p {
		if id, ok := deploy.ParseUnitName("k2", n); ok && id.Index == i {
			return n
		}
	}
	t.Fatalf("no replica %d in %v", i, p)
	return ""
}

// keeps is an invariant for sample: every fleet unit of keep exists and
// runs, on the machine it ran on, at every look.
func keeps(keep placement) func(fleetView) string {
	return func(v fleetView) string {
		for n, m := range keep {
			if !v.units[n] {
				return fmt.Sprintf("%s (on %s) is gone: %v", n, m, v)
			}
			if ms := v.running[n]; len(ms) != 1 || ms[0] != m {
				return fmt.Sprintf("%s is not running on %s (running on %v): %v", n, m, ms, v)
			}
		}
		return ""
	}
}

// Issue 21, item 2: changing only replicas adds or removes replicas and
// leaves the others running, under their fleet unit names on their
// machines; scaling down removes the highest indexes first. For plain,
// grouped (maxReplicasPerHost) and spread units.
func TestScaleKeepsReplicas(t *testing.T) {
	t.Parallel() // as its cases (each its own etcd and fleet): beside the other tests, not before them
	az := func(z string) map[string]string { return map[string]string{"az": z} }
	tests := []struct {
		name string
		spec func(replicas int) *deploy.Spec
	}{{
		name: "plain",
		spec: func(n int) *deploy.Spec {
			return &deploy.Spec{Name: "web", Replicas: n, Engine: deploy.EngineDocker, Apps: []deploy.App{{Image: "docker://web:1"}}}
		},
	}, {
		name: "maxReplicasPerHost",
		spec: func(n int) *deploy.Spec {
			return &deploy.Spec{Name: "web", Replicas: n, MaxReplicasPerHost: 1, Engine: deploy.EngineDocker, Apps: []deploy.App{{Image: "docker://web:1"}}}
		},
	}, {
		name: "spread",
		spec: func(n int) *deploy.Spec {
			return &deploy.Spec{Name: "web", Replicas: n, Engine: deploy.EngineDocker, Apps: []deploy.App{{Image: "docker://web:1"}},
				Spread: &deploy.Spread{Key: "az"}}
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, fleetsim.Machines(3, az("a"), az("b"), az("c")))
			opts := testOptions
			opts.MinReady = 200 * time.Millisecond
			h.serve(h.api, opts)

			hash := h.put(tc.spec(2))
			h.waitStatus("web", store.PhaseRunning, hash, 60*time.Second)
			before := h.placed("web", 2)

			// 2 → 3: the two keep running where they ran; a third joins.
			check := h.sample("web", keeps(before))
			hash3 := h.put(tc.spec(3))
			if hash3 != hash {
				t.Errorf("spec hash changed with replicas only: %s → %s", hash, hash3)
			}
			st := h.waitScaled("web", hash3, 3)
			after := h.placed("web", 3)
			if msg := check(); msg != "" {
				t.Fatalf("scaling 2 → 3 disturbed a running replica: %s", msg)
			}
			for n, m := range before {
				if after[n] != m {
					t.Fatalf("scaling 2 → 3: %s ran on %s, now %q (%v)", n, m, after[n], after)
				}
			}
			if st.Desired != 3 || st.Running != 3 {
				t.Fatalf("status after 2 → 3: %+v", st)
			}
			if tc.name != "plain" {
				machines := map[string]bool{}
				for _, m := range after {
					machines[m] = true
				}
				if len(machines) != 3 {
					t.Fatalf("3 replicas of a %s unit on 3 machines (one zone each) share a machine: %v", tc.name, after)
				}
			}

			// 3 → 1: replica 0 keeps running where it ran; 1 and 2 go.
			first := after.byIndex(t, 0)
			check = h.sample("web", keeps(placement{first: after[first]}))
			h.put(tc.spec(1))
			eventually(t, 60*time.Second, func() (bool, string) {
				v := h.view("web")
				return len(v.units) == 1 && v.units[first], v.String()
			})
			st = h.waitScaled("web", hash, 1)
			if msg := check(); msg != "" {
				t.Fatalf("scaling 3 → 1 disturbed replica 0: %s", msg)
			}
			if got := h.placed("web", 1); got[first] != after[first] {
				t.Fatalf("after 3 → 1: %v, want %s on %s", got, first, after[first])
			}
			if st.Desired != 1 || st.Running != 1 {
				t.Fatalf("status after 3 → 1: %+v", st)
			}
		})
	}
}

// A replicas-only change is recorded in the unit's history as a revision
// of its own, with the same spec hash and what changed, and it is no
// rollout: no "rollout-started" event.
func TestScaleRecordedInHistory(t *testing.T) {
	t.Parallel() // its own etcd and fleet (newHarness): it waits on fleet's engine, not the CPU
	h := newHarness(t, fleetsim.Machines(2))
	opts := testOptions
	opts.MinReady = 200 * time.Millisecond
	h.serve(h.api, opts)
	ctx := context.Background()
	spec := func(n int) *deploy.Spec {
		return &deploy.Spec{Name: "web", Replicas: n, Engine: deploy.EngineDocker, Apps: []deploy.App{{Image: "docker://web:1"}}}
	}
	hash := h.put(spec(2))
	h.waitStatus("web", store.PhaseRunning, hash, 60*time.Second)
	h.put(spec(3))
	eventually(t, 60*time.Second, func() (bool, string) {
		hist, err := h.store.History(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range hist {
			got = append(got, fmt.Sprintf("%d %s %s %q", e.Revision, e.SpecHash, e.Outcome, e.Change))
		}
		want := []string{fmt.Sprintf("1 %s deployed \"\"", hash), fmt.Sprintf("2 %s deployed \"replicas 2 → 3\"", hash)}
		return strings.Join(got, "\n") == strings.Join(want, "\n"), "history:\n" + strings.Join(got, "\n")
	})
	evs, _, err := h.store.ListEvents(ctx, "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range evs {
		if e.Kind != store.EventCreated && e.Kind != store.EventStopped && e.Kind != store.EventDestroyed {
			kinds = append(kinds, e.Kind+": "+e.Message)
		}
	}
	got := strings.Join(kinds, "\n")
	if strings.Count(got, store.EventRolloutStarted) != 1 || !strings.Contains(got, store.EventChanged+": replicas 2 → 3: no replica replaced") {
		t.Fatalf("events of web: want one rollout-started (the first spec) and a changed one:\n%s", got)
	}
}
