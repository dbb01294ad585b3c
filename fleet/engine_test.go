package fleet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/store"
)

// execStarts gives each fleet unit of a Kaylee unit with hash its
// ExecStart line, by fleet unit name.
func (h *harness) execStarts(name, hash string) map[string]string {
	h.t.Helper()
	units, err := h.api.Units()
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]string{}
	for _, u := range units {
		id, ok := deploy.ParseUnitName("k2", u.Name)
		if !ok || id.Name != name || id.SpecHash != hash {
			continue
		}
		for _, o := range u.Options {
			if o.Section == "Service" && o.Name == "ExecStart" {
				out[u.Name] = o.Value
			}
		}
	}
	return out
}

// storedValue is the stored JSON of a unit, as etcd holds it.
func (h *harness) storedValue(name string) string {
	h.t.Helper()
	r, err := h.etcd.Client(h.t).Get(context.Background(), store.DefaultPrefix+"/units/"+name)
	if err != nil || len(r.Kvs) != 1 {
		h.t.Fatalf("reading the stored %s: %v (%d values)", name, err, len(r.Kvs))
	}
	return string(r.Kvs[0].Value)
}

// fleetUnitNames lists the fleet units of a Kaylee unit.
func (h *harness) fleetUnitNames(name string) []string {
	h.t.Helper()
	var out []string
	for n := range h.view(name).units {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// wantEngine checks that every fleet unit of name at hash runs its
// ExecStart with path (n of them).
func (h *harness) wantEngine(name, hash, path string, n int) {
	h.t.Helper()
	got := h.execStarts(name, hash)
	if len(got) != n {
		h.t.Fatalf("%s: %d fleet units of spec %s, want %d: %v", name, len(got), hash, n, got)
	}
	for fu, line := range got {
		if !strings.HasPrefix(line, path+" ") {
			h.t.Fatalf("%s runs %q, want %s", fu, line, path)
		}
	}
}

// Issue 25: a scheduler whose default engine is docker runs the units that
// name no engine as docker fleet units (the stored JSON unchanged), and a
// unit that names rkt with rkt.
func TestDefaultEngineRunsUnitsWithoutEngine(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fleetsim.Machines(2, nil))
	web := storedUnit(t, `{"name":"web","replicas":2,"apps":[{"image":"docker://web:1"}]}`)
	own := storedUnit(t, `{"name":"own","engine":"rkt","apps":[{"image":"docker://own:1"}]}`)
	h.put(&web.Spec)
	h.put(&own.Spec)
	before := h.storedValue("web")
	opts := testOptions
	opts.DefaultEngine = deploy.EngineDocker
	h.serve(h.api, opts)
	hash := web.Spec.WithDefaultEngine(deploy.EngineDocker).Hash(0)
	if hash == web.Spec.Hash(0) {
		t.Fatal("the docker default hashes as rkt")
	}
	if st := h.waitStatus("web", store.PhaseRunning, hash, 30*time.Second); st.Engine != deploy.EngineDocker {
		t.Fatalf("status of web: engine %q, want docker", st.Engine)
	}
	if st := h.waitStatus("own", store.PhaseRunning, own.Spec.Hash(0), 30*time.Second); st.Engine != "" {
		t.Fatalf("status of own: engine %q, want none (its own)", st.Engine)
	}
	h.wantEngine("web", hash, deploy.DockerPath, 2)
	h.wantEngine("own", own.Spec.Hash(0), deploy.RktPath, 1)
	if after := h.storedValue("web"); after != before {
		t.Fatalf("the stored JSON changed:\n%s\n%s", before, after)
	}

	// The published settings, deleted, are published again at the next
	// pass (a waiter would hash with rkt meanwhile).
	ctx := context.Background()
	if _, err := h.etcd.Client(t).Delete(ctx, store.DefaultPrefix+"/scheduler"); err != nil {
		t.Fatal(err)
	}
	h.put(&storedUnit(t, `{"name":"more","engine":"rkt","apps":[{"image":"docker://more:1"}]}`).Spec) // a pass
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := h.store.GetSchedulerSettings(ctx)
		if err == nil && st.DefaultEngine == deploy.EngineDocker {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("published settings %+v (%v) after the key was deleted, want docker again", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Issue 25: a cluster whose scheduler restarts with --default-engine
// docker rolls every unit that names no engine over to docker, one
// replica at a time (a sampler of fleet never sees more than desired +
// surge launched, nor fewer than desired running), while a unit that names rkt does not roll; the stored
// JSON stays byte for byte. kaylee rollback to the revision before
// brings rkt back (the engine it ran with), though the default is still
// docker.
func TestSwitchingDefaultEngineRollsUnitsOver(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fleetsim.Machines(3, nil))
	web := storedUnit(t, `{"name":"web","replicas":3,"apps":[{"image":"docker://web:1"}]}`)
	own := storedUnit(t, `{"name":"own","engine":"rkt","replicas":2,"apps":[{"image":"docker://own:1"}]}`)
	h.put(&web.Spec)
	h.put(&own.Spec)
	stop := h.serve(h.api, testOptions)
	rkt, docker := web.Spec.Hash(0), web.Spec.WithDefaultEngine(deploy.EngineDocker).Hash(0)
	h.waitStatus("web", store.PhaseRunning, rkt, 30*time.Second)
	h.waitStatus("own", store.PhaseRunning, own.Spec.Hash(0), 30*time.Second)
	h.waitUnits("web", rkt, 3, 30*time.Second)
	h.wantEngine("web", rkt, deploy.RktPath, 3)
	before, ownUnits := h.storedValue("web"), h.fleetUnitNames("own")
	stop()

	// As TestCountlyLifecycle: never fewer than 3 serving, never more than
	// 3 + 1 (maxSurge) up or starting (one being stopped is on its way
	// out, though fleet may still report it running).
	check := h.sampleFleet(50*time.Millisecond, func(units []*schema.Unit, states []*schema.UnitState) string {
		v := viewOf("web", units, states)
		if n := v.runningWithHash(rkt) + v.runningWithHash(docker); n < 3 || v.launched > 4 {
			return fmt.Sprintf("%d replicas of web running (at least 3), %d launched (at most 3 + 1): %s", n, v.launched, v)
		}
		return ""
	})
	opts := testOptions
	opts.DefaultEngine = deploy.EngineDocker
	stop = h.serve(h.api, opts)
	h.waitStatus("web", store.PhaseRunning, docker, 60*time.Second)
	h.waitUnits("web", docker, 3, 30*time.Second)
	if msg, looks := check(); msg != "" || looks < 20 {
		t.Fatalf("during the switch (%d looks): %s", looks, msg)
	}
	h.wantEngine("web", docker, deploy.DockerPath, 3)
	if got := h.fleetUnitNames("own"); strings.Join(got, " ") != strings.Join(ownUnits, " ") {
		t.Fatalf("own (engine: rkt) rolled: %v, was %v", got, ownUnits)
	}
	if after := h.storedValue("web"); after != before {
		t.Fatalf("the stored JSON changed:\n%s\n%s", before, after)
	}
	evs, _, err := h.store.ListEvents(context.Background(), "", 0)
	var switched []string
	for _, e := range evs {
		if e.Kind == store.EventDefaultEngineChanged {
			switched = append(switched, e.Message)
		}
	}
	if err != nil || len(switched) != 1 || !strings.Contains(switched[0], "the default engine is docker") || !strings.Contains(switched[0], "ran with rkt") {
		t.Fatalf("default-engine-changed events %q (%v), want one: rkt to docker", switched, err)
	}
	hist, err := h.store.History(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].SpecHash != rkt || hist[0].Engine != "" || hist[1].SpecHash != docker || hist[1].Engine != deploy.EngineDocker {
		t.Fatalf("history of web: %s", historyLines(hist))
	}

	e, err := h.store.Rollback(context.Background(), "web", "", "test")
	if err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if e.Revision != 1 {
		t.Fatalf("rolled back to revision %d, want 1", e.Revision)
	}
	h.waitStatus("web", store.PhaseRunning, rkt, 60*time.Second)
	h.waitUnits("web", rkt, 3, 30*time.Second)
	h.wantEngine("web", rkt, deploy.RktPath, 3)
	if after := h.storedValue("web"); after != before {
		t.Fatalf("the rollback changed the stored JSON:\n%s\n%s", before, after)
	}
	stop()
}

func historyLines(hist []*store.HistoryEntry) string {
	var out []string
	for _, e := range hist {
		out = append(out, fmt.Sprintf("#%d %s engine %q %s", e.Revision, e.SpecHash, e.Engine, e.Outcome))
	}
	return strings.Join(out, "; ")
}

// Issue 25: a failed rollout brings the version before it back to full
// strength from its history (renderPrevious): after a change of the
// default engine, that version is rendered with the engine it ran with
// (its entry's Engine; none is rkt), not with the new default, so it
// hashes as it did and its replicas are the ones still serving.
func TestRenderPreviousWithItsEngine(t *testing.T) {
	web := storedUnit(t, `{"name":"web","replicas":2,"apps":[{"image":"docker://web:1"}]}`)
	rkt, docker := web.Spec.Hash(0), web.Spec.WithDefaultEngine(deploy.EngineDocker).Hash(0)
	tests := []struct {
		name     string
		now      string // the scheduler's default engine
		entry    store.HistoryEntry
		wantHash string
		wantPath string
	}{
		{"rkt, then the default docker", deploy.EngineDocker, store.HistoryEntry{Revision: 1, SpecHash: rkt}, rkt, deploy.RktPath},
		{"the default docker, then rkt again", "", store.HistoryEntry{Revision: 1, SpecHash: docker, Engine: deploy.EngineDocker}, docker, deploy.DockerPath},
		{"the default docker, then podman", deploy.EnginePodman, store.HistoryEntry{Revision: 1, SpecHash: docker, Engine: deploy.EngineDocker}, docker, deploy.DockerPath},
		{"rkt, then the default podman", deploy.EnginePodman, store.HistoryEntry{Revision: 1, SpecHash: rkt}, rkt, deploy.RktPath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pp := newPassPlanner(Options{UnitPrefix: "k2", DefaultEngine: tt.now})
			snap := &snapshot{units: []*store.Unit{web}, statuses: map[string]*store.Status{"web": {Name: "web", SpecHash: tt.entry.SpecHash, Deployed: tt.entry.SpecHash}}}
			e := tt.entry
			e.Unit, e.Spec, e.Outcome = "web", web.Raw, store.OutcomeDeployed
			snap.history = map[string][]*store.HistoryEntry{"web": {&e}}
			var warnings []planWarning
			in := pp.unitInputs(snap, []deploy.Machine{{ID: "m1"}}, nil, &warnings)["web"]
			if len(warnings) > 0 || in.previous == nil {
				t.Fatalf("no previous rendering: %v", warnings)
			}
			if in.desired.hash == tt.wantHash || in.previous.hash != tt.wantHash {
				t.Fatalf("desired %s, previous %s; want previous %s", in.desired.hash, in.previous.hash, tt.wantHash)
			}
			for _, u := range in.previous.units {
				for _, o := range u.Options {
					if o.Name == "ExecStart" && !strings.HasPrefix(o.Value, tt.wantPath+" ") {
						t.Fatalf("%s runs %q, want %s", u.Name, o.Value, tt.wantPath)
					}
				}
			}
		})
	}
}

// Issue 25: the seed's countly JSON, stored byte for byte as the seed
// shows it (no engine), runs as podman pods under a scheduler whose
// default engine is podman, and stays byte for byte what it was.
func TestDefaultPodmanRunsTheSeedsCountly(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fleetsim.Machines(2, map[string]string{"ssd": "false"}))
	raw, err := os.ReadFile("../deploy/testdata/countly.json")
	if err != nil {
		t.Fatal(err)
	}
	seed := string(bytes.TrimSpace(raw))
	if _, err := h.etcd.Client(t).Put(context.Background(), store.DefaultPrefix+"/units/countly", seed); err != nil {
		t.Fatal(err)
	}
	countly := storedUnit(t, seed)
	opts := testOptions
	opts.DefaultEngine = deploy.EnginePodman
	h.serve(h.api, opts)
	hash := countly.Spec.WithDefaultEngine(deploy.EnginePodman).Hash(0)
	if st := h.waitStatus("countly", store.PhaseRunning, hash, 60*time.Second); st.Engine != deploy.EnginePodman || st.Running != 4 {
		t.Fatalf("status of countly: %+v", st)
	}
	for fu, line := range h.execStarts("countly", hash) {
		if !strings.Contains(line, deploy.PodmanPath) || !strings.Contains(line, "countly-docker") || !strings.Contains(line, "rkt-sidekick") {
			t.Fatalf("%s runs %q, want a pod of both apps with %s", fu, line, deploy.PodmanPath)
		}
	}
	if got := h.storedValue("countly"); got != seed {
		t.Fatalf("the stored JSON changed:\n%s\nwant the seed's:\n%s", got, seed)
	}
}

// A rollback pin's engine holds while the pin restores the stored spec,
// whether or not its revision is still in the history (the history is
// trimmed to HistoryLimit, the rollback's own entry included): a trimmed
// revision must not roll the unit over to the default engine again.
func TestPinnedEngineOutlivesItsHistory(t *testing.T) {
	web := storedUnit(t, `{"name":"web","replicas":2,"apps":[{"image":"docker://web:1"}]}`)
	rkt := web.Spec.Hash(0)
	entry := &store.HistoryEntry{Unit: "web", Revision: 1, SpecHash: rkt, Spec: web.Raw, Outcome: store.OutcomeDeployed}
	later := &store.HistoryEntry{Unit: "web", Revision: 12, SpecHash: rkt, Spec: web.Raw, Outcome: store.OutcomeDeployed}
	tests := []struct {
		name    string
		pin     store.RollbackPin
		history []*store.HistoryEntry
		want    string // the desired hash
	}{
		{"pin with its revision in the history", store.RollbackPin{Revision: 1, Engine: deploy.EngineRkt, Restored: store.ContentHash(web.Raw)}, []*store.HistoryEntry{entry, later}, rkt},
		{"pin whose revision was trimmed", store.RollbackPin{Revision: 1, Engine: deploy.EngineRkt, Restored: store.ContentHash(web.Raw)}, []*store.HistoryEntry{later}, rkt},
		{"older pin (no Restored) with its revision", store.RollbackPin{Revision: 1, Engine: deploy.EngineRkt}, []*store.HistoryEntry{entry, later}, rkt},
		{"pin of another spec", store.RollbackPin{Revision: 1, Engine: deploy.EngineRkt, Restored: store.ContentHash([]byte(`{"name":"web"}`))}, []*store.HistoryEntry{later}, web.Spec.WithDefaultEngine(deploy.EngineDocker).Hash(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pp := newPassPlanner(Options{UnitPrefix: "k2", DefaultEngine: deploy.EngineDocker})
			pin := tt.pin
			pin.Unit = "web"
			snap := &snapshot{units: []*store.Unit{web}, statuses: map[string]*store.Status{}, pins: map[string]*store.RollbackPin{"web": &pin},
				history: map[string][]*store.HistoryEntry{"web": tt.history}}
			var warnings []planWarning
			in := pp.unitInputs(snap, []deploy.Machine{{ID: "m1"}}, nil, &warnings)["web"]
			if in == nil || in.desired == nil {
				t.Fatalf("no desired rendering: %v", warnings)
			}
			if in.desired.hash != tt.want {
				t.Errorf("desired hash %s, want %s", in.desired.hash, tt.want)
			}
		})
	}
}

// A unit that names no engine and that the default engine refuses fails
// with a message that says the engine came from the scheduler's default.
func TestDefaultEngineRefusalNamesTheDefault(t *testing.T) {
	u := storedUnit(t, `{"name":"web","args":["--set-env=A=1"],"apps":[{"image":"docker://web:1"}]}`)
	pp := newPassPlanner(Options{UnitPrefix: "k2", DefaultEngine: deploy.EnginePodman})
	snap := &snapshot{units: []*store.Unit{u}, statuses: map[string]*store.Status{}}
	var warnings []planWarning
	in := pp.unitInputs(snap, []deploy.Machine{{ID: "m1"}}, nil, &warnings)["web"]
	if in.specErr == nil || !strings.Contains(in.specErr.Error(), "it names no engine: the scheduler runs it with its default engine, podman") {
		t.Fatalf("spec error %v, want it to name the default engine", in.specErr)
	}
}
