package fleet

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/internal/original"
	"github.com/kaylee-gitops/kaylee/store"
)

// adoptLimits is what a sampler holds of one stored unit during adoption:
// at most running replicas up (old and new, the original's and Kaylee's)
// and at most perMachine on one machine.
type adoptLimits struct {
	running, perMachine int
}

// adoptViolation checks one look at what runs: the states of the
// units (what the machines' systemd says, see sampleAdoption) of each
// unit (by the original's names and Kaylee's), against its limits.
func adoptViolation(states []*schema.UnitState, limits map[string]adoptLimits) string {
	running := map[string][]string{} // unit → "fleet unit on machine"
	perMachine := map[string]map[string]int{}
	for _, s := range states {
		name := ""
		if id, ok := deploy.ParseUnitName("k2", s.Name); ok {
			name = id.Name
		} else if id, ok := deploy.ParseOriginalUnitName("k2", s.Name); ok {
			name = id.Name
		}
		if _, watched := limits[name]; !watched || s.SystemdActiveState != "active" || s.SystemdSubState != "running" {
			continue
		}
		running[name] = append(running[name], fmt.Sprintf("%s on %.8s", s.Name, s.MachineID))
		if perMachine[name] == nil {
			perMachine[name] = map[string]int{}
		}
		perMachine[name][s.MachineID]++
	}
	for _, name := range sortedKeys(limits) {
		l := limits[name]
		if len(running[name]) > l.running {
			return fmt.Sprintf("%s: %d running (at most %d): %s", name, len(running[name]), l.running, strings.Join(running[name], ", "))
		}
		for m, n := range perMachine[name] {
			if n > l.perMachine {
				return fmt.Sprintf("%s: %d running on machine %.8s (at most %d): %s", name, n, m, l.perMachine, strings.Join(running[name], ", "))
			}
		}
	}
	return ""
}

// sampleAdoption looks at what runs every 20ms until stopped and returns
// the first violation of limits and how many looks it took. It reads
// the machines' systemd (fleetsim's Cluster.UnitStates), not fleet's
// unit states: those lag by up to a second or more, machine by machine,
// so fleet can report an old replica running after its machine stopped
// it while a new one that started since on another machine is reported
// already — more at once than ever ran.
func (h *harness) sampleAdoption(limits map[string]adoptLimits) (stop func() (string, int)) {
	return sampleEvery(20*time.Millisecond, func() (string, bool) {
		return adoptViolation(h.cluster.UnitStates(), limits), true
	})
}

// sampleFleet reads fleet's units and states every interval and checks
// them, until the returned func is called; that returns the first
// violation check reported and how many looks it took.
func (h *harness) sampleFleet(every time.Duration, check func([]*schema.Unit, []*schema.UnitState) string) func() (string, int) {
	return sampleEvery(every, func() (string, bool) {
		units, err1 := h.api.Units()
		states, err2 := h.api.UnitStates()
		if err1 != nil || err2 != nil {
			return "", false
		}
		return check(units, states), true
	})
}

// sampleEvery calls look every interval until the returned func is
// called; that returns the first violation look reported and how many
// looks it took (a look that could not see, ok false, does not count).
func sampleEvery(every time.Duration, look func() (msg string, ok bool)) func() (string, int) {
	var mu sync.Mutex
	quit, done := make(chan struct{}), make(chan struct{})
	first, looks := "", 0
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-time.After(every):
			}
			msg, ok := look()
			if !ok {
				continue
			}
			mu.Lock()
			looks++
			if msg != "" && first == "" {
				first = msg
			}
			mu.Unlock()
		}
	}()
	return func() (string, int) {
		close(quit)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return first, looks
	}
}

// Issue 24: a cluster where monder/kaylee ran — the seed's countly
// example (4 replicas, at most 2 per machine), a single unit, a machineId
// unit, a global unit and a unit it ran without replicas that is stored
// with 3 now (at most 1 per machine, while the original's unit keeps
// every replica of it off its machine), all running as the original
// created them on 3 machines, plus the original's unit of a name no
// longer stored — is taken over by Kaylee's scheduler once the same units
// are stored (v3 keys, as Kaylee stores them). A sampler of what the
// machines' systemd runs (every 20ms, see sampleAdoption) never sees more running replicas of a unit than desired +
// surge, more than maxReplicasPerHost of countly or web on a machine, nor
// two copies of the single, machineId or global unit on a machine; at
// the end every unit
// runs Kaylee's rendering, the original's units of stored units are gone,
// and the orphan still runs, reported by an event.
func TestAdoptOriginalOnFleet(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fleetsim.Machines(3, map[string]string{"ssd": "false"}))
	pinTo := h.cluster.Machines()[1].ID()
	raw, err := os.ReadFile("../deploy/testdata/countly.json")
	if err != nil {
		t.Fatal(err)
	}
	countly := storedUnit(t, string(bytes.TrimSpace(raw)))
	units := []*store.Unit{countly,
		storedUnit(t, `{"name":"single","apps":[{"image":"docker://single:1"}]}`),
		storedUnit(t, `{"name":"pinned","apps":[{"image":"docker://pinned:1"}],"machineId":"`+pinTo+`"}`),
		storedUnit(t, `{"name":"everywhere","apps":[{"image":"docker://agent:1"}],"global":true}`),
		storedUnit(t, `{"name":"web","replicas":3,"maxReplicasPerHost":1,"apps":[{"image":"docker://web:1"}]}`),
	}
	// web: the original ran it without replicas (its Conflicts keep every
	// replica of web off its machine); it is stored with replicas now.
	was := map[string]*store.Unit{"web": storedUnit(t, `{"name":"web","apps":[{"image":"docker://web:1"}]}`)}
	orphan := storedUnit(t, `{"name":"gone","apps":[{"image":"docker://gone:1"}]}`)
	groups := rand.New(rand.NewSource(24))
	launched := time.Now()
	var orphanNames []string
	var all []*schema.Unit
	for _, u := range append(units, orphan) {
		raw := u.Raw
		if w := was[u.Name]; w != nil {
			raw = w.Raw
		}
		fus, err := original.Units("k2", raw, groups)
		if err != nil {
			t.Fatal(err)
		}
		if u == orphan {
			for _, fu := range fus {
				orphanNames = append(orphanNames, fu.Name)
			}
		}
		all = append(all, fus...)
	}
	original.LaunchAll(t, h.api, all, 30*time.Second)
	t.Logf("the original's units run after %s", time.Since(launched).Round(time.Millisecond))
	h.loadOtherMachines(countly.Name, 2, 3)

	limits := map[string]adoptLimits{"countly": {running: 5, perMachine: 2}, "single": {1, 1}, "pinned": {1, 1}, "everywhere": {3, 1}, "web": {4, 1}}
	check := h.sampleAdoption(limits)
	start := time.Now()
	for _, u := range units {
		h.put(&u.Spec)
	}
	h.serve(h.api, testOptions)
	for _, u := range units {
		st := h.waitStatus(u.Name, store.PhaseRunning, u.Spec.Hash(0), 90*time.Second)
		t.Logf("%s running after %s: %s", u.Name, time.Since(start).Round(time.Millisecond), st.Message)
	}
	// Done when the original's units of stored units are gone from fleet.
	eventually(t, 30*time.Second, func() (bool, string) {
		fus, err := h.api.Units()
		if err != nil {
			return false, err.Error()
		}
		var left []string
		for _, fu := range fus {
			if id, ok := deploy.ParseOriginalUnitName("k2", fu.Name); ok && id.Name != "gone" {
				left = append(left, fu.Name)
			}
		}
		return len(left) == 0, "the original's units still in fleet: " + strings.Join(left, " ")
	})
	msg, looks := check()
	t.Logf("adoption done after %s, %d looks at fleet", time.Since(start).Round(time.Millisecond), looks)
	if msg != "" {
		t.Fatalf("during adoption: %s", msg)
	}
	if looks < 20 {
		t.Fatalf("the sampler looked only %d times", looks)
	}
	h.adoptedEndState(units, pinTo, orphanNames)
}

// loadOtherMachines gives every machine that runs fewer than full of the
// unit's replicas (the original's or Kaylee's) n other fleet units (not Kaylee's, pinned there), so
// that fleet's least-loaded engine puts the unit's next replica on a
// machine that holds full already: without a per-host limit counting old
// and new replicas, it would run full+1 there.
func (h *harness) loadOtherMachines(name string, full, n int) {
	t := h.t
	t.Helper()
	var states []*schema.UnitState
	eventually(t, 30*time.Second, func() (bool, string) {
		var err error
		states, err = h.api.UnitStates()
		return err == nil, fmt.Sprintf("fleet unit states: %v", err)
	})
	count := map[string]int{}
	for _, s := range states {
		if id, ok := deploy.ParseOriginalUnitName("k2", s.Name); ok && id.Name == name {
			count[s.MachineID]++
		} else if id, ok := deploy.ParseUnitName("k2", s.Name); ok && id.Name == name {
			count[s.MachineID]++
		}
	}
	var fillers []*schema.Unit
	for _, m := range h.cluster.Machines() {
		if count[m.ID()] >= full {
			t.Logf("machine %.8s runs %d replicas of %s", m.ID(), count[m.ID()], name)
			continue
		}
		for i := range n {
			fillers = append(fillers, &schema.Unit{Name: fmt.Sprintf("other-%.8s-%d.service", m.ID(), i), DesiredState: "launched",
				Options: []*schema.UnitOption{{Section: "Service", Name: "ExecStart", Value: "/bin/sleep infinity"},
					{Section: "X-Fleet", Name: "MachineID", Value: m.ID()}}})
		}
	}
	if len(fillers) == len(h.cluster.Machines())*n {
		t.Fatalf("no machine runs %d replicas of %s: %v", full, name, count)
	}
	original.LaunchAll(t, h.api, fillers, 30*time.Second)
}

// adoptedEndState checks the end of an adoption: every stored unit runs
// Kaylee's rendering (countly within maxReplicasPerHost, pinned on its
// machine, the global unit on each machine), the orphan's original unit
// still runs, and the events tell the adoption and the orphan.
func (h *harness) adoptedEndState(units []*store.Unit, pinTo string, orphanNames []string) {
	t := h.t
	t.Helper()
	fus, err := h.api.Units()
	if err != nil {
		t.Fatal(err)
	}
	states, err := h.api.UnitStates()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		want, err := deploy.Render(&u.Spec, deploy.RenderOptions{UnitPrefix: "k2"})
		if err != nil {
			t.Fatal(err)
		}
		var wantNames, got []string
		for _, w := range want {
			wantNames = append(wantNames, w.Name)
		}
		for _, fu := range fus {
			if id, ok := deploy.ParseUnitName("k2", fu.Name); ok && id.Name == u.Name {
				got = append(got, fu.Name)
			}
		}
		sort.Strings(wantNames)
		sort.Strings(got)
		if strings.Join(got, " ") != strings.Join(wantNames, " ") {
			t.Errorf("%s: fleet units %v, want Kaylee's rendering %v", u.Name, got, wantNames)
		}
		// The pass after the last one's destruction tells it.
		eventually(t, 10*time.Second, func() (bool, string) {
			evs := countKinds(h.eventsOf(u.Name))
			return evs[store.EventAdopted] == 1 && evs[store.EventAdoptionDone] == 1,
				fmt.Sprintf("%s: events %v, want one %s and one %s", u.Name, evs, store.EventAdopted, store.EventAdoptionDone)
		})
	}
	if v := h.view("pinned"); len(v.running) != 1 || fmt.Sprint(v.running) != fmt.Sprintf("map[%s:[%s]]", firstKey(v.running), pinTo) {
		t.Errorf("pinned runs %v, want on %s", v.running, pinTo)
	}
	if v := h.view("everywhere"); len(perMachine(v)) != 3 {
		t.Errorf("everywhere runs on %v, want every machine", perMachine(v))
	}
	if msg := adoptViolation(states, map[string]adoptLimits{"countly": {4, 2}}); msg != "" {
		t.Errorf("at the end: %s", msg)
	}
	for _, n := range orphanNames {
		if !runsSomewhere(n, states) {
			t.Errorf("the orphan %s does not run any more", n)
		}
	}
	evs := h.eventsOf("gone")
	if len(evs) != 1 || evs[0].Kind != store.EventOriginalLeftAlone || !strings.Contains(evs[0].Message, "which is not stored: left alone") {
		t.Errorf("events of gone: %+v", evs)
	}
	h.leftAloneStatus("gone", orphanNames)
}

// leftAloneStatus: the original's units of a name not stored are shown
// with a status of their own, each on its machine, running.
func (h *harness) leftAloneStatus(name string, fleetUnits []string) {
	h.t.Helper()
	eventually(h.t, 10*time.Second, func() (bool, string) {
		st := h.status(name)
		if st == nil {
			return false, name + " has no status"
		}
		var got []string
		for _, u := range st.Units {
			if u.MachineID != "" && u.MachineIP != "" && u.ActiveState == "active" && u.SubState == "running" {
				got = append(got, u.Name)
			}
		}
		want := fmt.Sprintf("%s of monder/kaylee; no unit named %s is stored: left alone", plural(len(fleetUnits), "fleet unit"), name)
		return st.Phase == store.PhaseLeftAlone && st.Desired == 0 && st.Message == want && fmt.Sprint(got) == fmt.Sprint(fleetUnits),
			fmt.Sprintf("status of %s: %s, desired %d, %q, units running on a machine %v; want %s, 0, %q, %v",
				name, st.Phase, st.Desired, st.Message, got, store.PhaseLeftAlone, want, fleetUnits)
	})
}

func firstKey(m map[string][]string) string {
	for k := range m {
		return k
	}
	return ""
}

func runsSomewhere(name string, states []*schema.UnitState) bool {
	for _, s := range states {
		if s.Name == name && s.SystemdActiveState == "active" && s.SystemdSubState == "running" {
			return true
		}
	}
	return false
}
