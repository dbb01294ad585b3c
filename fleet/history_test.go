package fleet

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/store"
)

// historyChanges opens an entry for each new spec hash and closes it when
// its rollout ends, in the op notation "rev:outcome".
func TestHistoryChanges(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	entry := func(rev int64, hash, outcome string) *store.HistoryEntry {
		return &store.HistoryEntry{Unit: "web", Revision: rev, SpecHash: hash, Spec: []byte(`{"name":"web","v":"` + hash + `"}`), Outcome: outcome}
	}
	input := func(hash string) *unitInput {
		return &unitInput{name: "web", spec: &deploy.Spec{Name: "web"}, raw: []byte(`{"name":"web","v":"` + hash + `"}`)}
	}
	records := map[string]*store.SyncRecord{"prod": {Source: "prod", Revision: "abc123", Inventory: map[string]string{"web": "units/web.yaml"}}}
	tests := []struct {
		name    string
		entries []*store.HistoryEntry
		pin     *store.RollbackPin
		in      *unitInput
		st      store.Status
		want    string
	}{
		{"first spec seen rolling out", nil, nil, input("aaaa"),
			store.Status{SpecHash: "aaaa", Phase: store.PhasePending}, "1:progressing"},
		{"first spec seen running (a new leader, or an upgrade)", nil, nil, input("aaaa"),
			store.Status{SpecHash: "aaaa", Deployed: "aaaa", Phase: store.PhaseRunning}, "1:deployed"},
		{"rollout still going: nothing", []*store.HistoryEntry{entry(1, "aaaa", "progressing")}, nil, input("aaaa"),
			store.Status{SpecHash: "aaaa", Phase: store.PhaseProgressing}, ""},
		{"rollout done", []*store.HistoryEntry{entry(1, "aaaa", "progressing")}, nil, input("aaaa"),
			store.Status{SpecHash: "aaaa", Deployed: "aaaa", Phase: store.PhaseRunning}, "1:deployed"},
		{"rollout failed", []*store.HistoryEntry{entry(1, "aaaa", "deployed"), entry(2, "bbbb", "progressing")}, nil, input("bbbb"),
			store.Status{SpecHash: "bbbb", Deployed: "aaaa", Phase: store.PhaseFailed, Message: "boom"}, "2:failed"},
		{"a failed one stays failed", []*store.HistoryEntry{entry(2, "bbbb", "failed")}, nil, input("bbbb"),
			store.Status{SpecHash: "bbbb", Phase: store.PhaseFailed}, ""},
		{"new spec while one rolls out: superseded", []*store.HistoryEntry{entry(1, "aaaa", "progressing")}, nil, input("bbbb"),
			store.Status{SpecHash: "bbbb", Phase: store.PhasePending}, "1:superseded 2:progressing"},
		{"new spec after a deployed one", []*store.HistoryEntry{entry(1, "aaaa", "deployed")}, nil, input("bbbb"),
			store.Status{SpecHash: "bbbb", Phase: store.PhasePending}, "2:progressing"},
		{"rollback: the replaced one is rolled back, the new one names its target",
			[]*store.HistoryEntry{entry(1, "aaaa", "deployed"), entry(2, "bbbb", "deployed")}, &store.RollbackPin{Unit: "web", Revision: 1}, input("aaaa"),
			store.Status{SpecHash: "aaaa", Phase: store.PhasePending}, "2:rolled back 3:progressing(rollback to 1)"},
		{"a pin for another spec is not this rollback",
			[]*store.HistoryEntry{entry(1, "aaaa", "deployed"), entry(2, "bbbb", "deployed")}, &store.RollbackPin{Unit: "web", Revision: 1}, input("cccc"),
			store.Status{SpecHash: "cccc", Phase: store.PhasePending}, "3:progressing"},
		// Issue 21, item 2: a change of replicas (or update, ports) keeps
		// the spec hash: a revision of its own that names the change.
		{"replicas changed after a deployed one", []*store.HistoryEntry{entry(1, "aaaa", "deployed")}, nil,
			&unitInput{name: "web", spec: &deploy.Spec{Name: "web"}, raw: []byte(`{"name":"web","replicas":3,"v":"aaaa"}`)},
			store.Status{SpecHash: "aaaa", Deployed: "aaaa", Phase: store.PhaseProgressing}, "2:progressing[replicas 0 → 3]"},
		{"replicas and update changed while a rollout goes on: the rollout goes on under the new revision",
			[]*store.HistoryEntry{{Unit: "web", Revision: 1, SpecHash: "aaaa", Spec: []byte(`{"name":"web","replicas":2,"v":"aaaa"}`), Outcome: "progressing"}}, nil,
			&unitInput{name: "web", spec: &deploy.Spec{Name: "web"}, raw: []byte(`{"name":"web","replicas":1,"v":"aaaa","update":{"maxSurge":2}}`)},
			store.Status{SpecHash: "aaaa", Phase: store.PhaseProgressing}, "1:superseded 2:progressing"},
		{"the added replicas run: deployed", []*store.HistoryEntry{entry(1, "aaaa", "deployed"),
			{Unit: "web", Revision: 2, SpecHash: "aaaa", Spec: []byte(`{"name":"web","replicas":3,"v":"aaaa"}`), Outcome: "progressing", Change: "replicas 0 → 3"}}, nil,
			&unitInput{name: "web", spec: &deploy.Spec{Name: "web"}, raw: []byte(`{"name":"web","replicas":3,"v":"aaaa"}`)},
			store.Status{SpecHash: "aaaa", Deployed: "aaaa", Phase: store.PhaseRunning}, "2:deployed[replicas 0 → 3]"},
		{"suspended: nothing", []*store.HistoryEntry{entry(1, "aaaa", "progressing")}, nil,
			&unitInput{name: "web", spec: &deploy.Spec{Name: "web"}, suspended: &store.Suspension{}},
			store.Status{SpecHash: "aaaa", Deployed: "aaaa", Phase: store.PhaseSuspended}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hist := map[string][]*store.HistoryEntry{"web": tt.entries}
			pins := map[string]*store.RollbackPin{}
			if tt.pin != nil {
				pins["web"] = tt.pin
			}
			st := tt.st
			var got []string
			for _, c := range historyChanges(now, 10, hist, tt.in, &st, historySources{pins: pins, records: records}) {
				s := fmt.Sprintf("%d:%s", c.entry.Revision, c.entry.Outcome)
				if c.entry.RollbackTo != 0 {
					s += fmt.Sprintf("(rollback to %d)", c.entry.RollbackTo)
				}
				if c.entry.Change != "" {
					s += "[" + c.entry.Change + "]"
				}
				got = append(got, s)
				if c.entry.Outcome == store.OutcomeFailed && c.entry.Message != "boom" {
					t.Errorf("failed entry message %q", c.entry.Message)
				}
				closedBefore := c.entry.Outcome == store.OutcomeSuperseded || c.entry.Outcome == store.OutcomeRolledBack
				if !closedBefore && (c.entry.Source != "prod" || c.entry.GitRevision != "abc123" || c.entry.File != "units/web.yaml") {
					t.Errorf("entry %d source %q %q %q", c.entry.Revision, c.entry.Source, c.entry.GitRevision, c.entry.File)
				}
			}
			if g := strings.Join(got, " "); g != tt.want {
				t.Errorf("changes = %q, want %q", g, tt.want)
			}
		})
	}
}

// The history keeps the last limit revisions.
func TestHistoryLimit(t *testing.T) {
	var entries []*store.HistoryEntry
	for i := int64(1); i <= 3; i++ {
		entries = append(entries, &store.HistoryEntry{Unit: "web", Revision: i, SpecHash: fmt.Sprint(i), Outcome: store.OutcomeDeployed})
	}
	in := &unitInput{name: "web", spec: &deploy.Spec{Name: "web"}}
	changes := historyChanges(time.Now(), 3, map[string][]*store.HistoryEntry{"web": entries}, in,
		&store.Status{SpecHash: "4", Phase: store.PhasePending}, historySources{})
	if len(changes) != 1 || changes[0].entry.Revision != 4 || fmt.Sprint(changes[0].drop) != "[1]" {
		t.Fatalf("changes %+v", changes)
	}
	if got := applyHistory(entries, changes[0]); len(got) != 3 || got[0].Revision != 2 || got[2].Revision != 4 {
		t.Fatalf("after: %+v", got)
	}
}

// On fleet's engine and agents: two versions rolled out, then rolled back
// with the store's Rollback; the history shows all three with their
// outcomes; the old version's replicas run again.
func TestRollbackOnFleet(t *testing.T) {
	t.Parallel() // its own etcd and fleet (newHarness): it waits on fleet's engine, not the CPU
	h := newHarness(t, fleetsim.Machines(3, nil))
	opts := testOptions
	opts.HistoryLimit = 3
	h.serve(h.api, opts)
	ctx := context.Background()
	spec := func(image string) *deploy.Spec { return replicated(2, image) }
	v1 := h.put(spec("docker://web:1"))
	h.waitStatus("web", store.PhaseRunning, v1, 60*time.Second)
	v2 := h.put(spec("docker://web:2"))
	h.waitStatus("web", store.PhaseRunning, v2, 60*time.Second)
	eventually(t, 10*time.Second, func() (bool, string) {
		hs, _ := h.store.History(ctx, "web")
		return len(hs) == 2 && hs[1].Outcome == store.OutcomeDeployed, fmt.Sprint(hs)
	})

	target, err := h.store.Rollback(ctx, "web", "", "test")
	if err != nil {
		t.Fatal(err)
	}
	if target.Revision != 1 || target.SpecHash != v1 {
		t.Fatalf("rolled back to %d %s, want revision 1 (%s)", target.Revision, target.SpecHash, v1)
	}
	h.waitStatus("web", store.PhaseRunning, v1, 60*time.Second)
	h.waitUnits("web", v1, 2, 30*time.Second)
	var hs []*store.HistoryEntry
	eventually(t, 10*time.Second, func() (bool, string) {
		hs, _ = h.store.History(ctx, "web")
		return len(hs) == 3 && hs[2].Outcome == store.OutcomeDeployed, fmt.Sprint(hs)
	})
	if hs[1].Outcome != store.OutcomeRolledBack || hs[2].RollbackTo != 1 || hs[2].SpecHash != v1 || hs[0].Outcome != store.OutcomeDeployed {
		t.Fatalf("history after the rollback: %+v %+v %+v", hs[0], hs[1], hs[2])
	}

	// Rolling back to what is stored is refused; the limit of 3 drops revision 1.
	if _, err := h.store.Rollback(ctx, "web", "3", "test"); err == nil || !strings.Contains(err.Error(), "revision 3 is what is stored now") {
		t.Fatalf("rollback to the stored revision: %v", err)
	}
	h.put(spec("docker://web:4"))
	eventually(t, 10*time.Second, func() (bool, string) {
		hs, _ = h.store.History(ctx, "web")
		return len(hs) == 3 && hs[0].Revision == 2 && hs[2].Revision == 4, fmt.Sprint(hs)
	})

	// Gone from the store: the history goes with the status.
	if _, err := h.store.DeleteUnit(ctx, "web", store.Fence{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() (bool, string) {
		hs, _ = h.store.History(ctx, "web")
		return len(hs) == 0 && h.status("web") == nil, fmt.Sprint(hs)
	})
}

// A suspended unit is left as it is: a replica destroyed by hand is not
// repaired, a new spec is not rolled out; on resume both happen.
func TestSuspendOnFleet(t *testing.T) {
	t.Parallel() // its own etcd and fleet (newHarness): it waits on fleet's engine, not the CPU
	h := newHarness(t, fleetsim.Machines(3, nil))
	h.serve(h.api, testOptions)
	ctx := context.Background()
	spec := func(image string) *deploy.Spec { return replicated(2, image) }
	v1 := h.put(spec("docker://web:1"))
	h.waitStatus("web", store.PhaseRunning, v1, 60*time.Second)
	if ok, err := h.store.Suspend(ctx, "web", "ops@test"); err != nil || !ok {
		t.Fatalf("suspend: %v %v", ok, err)
	}
	if ok, _ := h.store.Suspend(ctx, "web", "again"); ok {
		t.Fatal("a second suspend reported a new suspension")
	}
	h.waitStatus("web", store.PhaseSuspended, v1, 10*time.Second)
	v := h.view("web")
	var gone string
	for n := range v.units {
		gone = n
		break
	}
	if err := h.api.DestroyUnit(gone); err != nil {
		t.Fatal(err)
	}
	v2 := h.put(spec("docker://web:2"))
	check := h.sample("web", func(v fleetView) string {
		for n := range v.units {
			if strings.Contains(n, v2) || n == gone {
				return "the scheduler changed a suspended unit: " + v.String()
			}
		}
		return ""
	})
	time.Sleep(4 * time.Second) // several passes (300ms poll, 5s resync)
	if msg := check(); msg != "" {
		t.Fatal(msg)
	}
	st := h.status("web")
	if st.Phase != store.PhaseSuspended || !strings.Contains(st.Message, "suspended by ops@test") ||
		!strings.Contains(st.Message, "the stored spec "+v2+" is rolled out on resume") || st.Running != 1 {
		t.Fatalf("suspended status: %+v", st)
	}

	if sus, pinned, err := h.store.Resume(ctx, "web", "test"); err != nil || !sus || pinned {
		t.Fatalf("resume: %v %v %v", sus, pinned, err)
	}
	h.waitStatus("web", store.PhaseRunning, v2, 60*time.Second)
	h.waitUnits("web", v2, 2, 30*time.Second)
}
