package fleet

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/store"
)

// eventsOf lists the event log as "kind fleetUnit-or-spec" lines for web.
func (h *harness) eventsOf(name string) []store.Event {
	h.t.Helper()
	evs, _, err := h.store.ListEvents(context.Background(), name, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	return evs
}

func countKinds(evs []store.Event) map[string]int {
	n := map[string]int{}
	for _, e := range evs {
		n[e.Kind]++
	}
	return n
}

// TestEventLogOfARollout: the scheduler writes what it did to fleet, and
// why, and each rollout's start and end.
func TestEventLogOfARollout(t *testing.T) {
	t.Parallel() // its own etcd and fleet (newHarness): it waits on fleet's engine, not the CPU
	h := newHarness(t, fleetsim.Machines(3))
	opts := testOptions
	opts.ID = "sched-1"
	h.serve(h.api, opts)

	v1 := h.put(replicated(3, "docker://web:1"))
	h.waitStatus("web", store.PhaseRunning, v1, 60*time.Second)
	eventually(t, 10*time.Second, func() (bool, string) {
		n := countKinds(h.eventsOf("web"))
		return n[store.EventCreated] == 3 && n[store.EventRolloutStarted] == 1 && n[store.EventRolloutSucceeded] == 1, fmt.Sprint(n)
	})
	evs := h.eventsOf("web")
	if first := evs[0]; first.Kind != store.EventRolloutStarted || first.SpecHash != v1 {
		t.Errorf("first event %+v, want the rollout of %s started", first, v1)
	}
	if last := evs[len(evs)-1]; last.Kind != store.EventRolloutSucceeded || last.SpecHash != v1 {
		t.Errorf("last event %+v, want the rollout of %s succeeded", last, v1)
	}
	for _, e := range evs {
		if e.By != "sched-1" {
			t.Errorf("event %s by %q, want the scheduler's ID", e.Kind, e.By)
		}
		if e.Kind == store.EventCreated && (!strings.HasPrefix(e.FleetUnit, "k2:web:"+v1+":") || e.Message == "") {
			t.Errorf("created event %+v: want the fleet unit of %s and the reason", e, v1)
		}
	}

	// An update: the old replicas are stopped and destroyed, each said.
	v2 := h.put(replicated(3, "docker://web:2"))
	h.waitStatus("web", store.PhaseRunning, v2, 60*time.Second)
	eventually(t, 10*time.Second, func() (bool, string) {
		n := countKinds(h.eventsOf("web"))
		return n[store.EventCreated] == 6 && n[store.EventDestroyed] == 3 && n[store.EventRolloutSucceeded] == 2, fmt.Sprint(n)
	})
	var destroyed []string
	stops := map[string]int{}
	for _, e := range h.eventsOf("web") {
		switch e.Kind {
		case store.EventDestroyed:
			destroyed = append(destroyed, e.FleetUnit)
		case store.EventStopped:
			stops[e.FleetUnit]++
		}
	}
	for fu, n := range stops {
		if n != 1 {
			t.Errorf("%s: %d stopped events, want one (the scheduler repeats the call, the log tells it once)", fu, n)
		}
	}
	if len(stops) != 3 {
		t.Errorf("stopped events for %v, want v1's 3 replicas", stops)
	}
	sort.Strings(destroyed)
	for _, d := range destroyed {
		if !strings.HasPrefix(d, "k2:web:"+v1+":") {
			t.Errorf("destroyed %s, want only v1's replicas: %v", d, destroyed)
		}
	}

	// A replica stopped by hand is launched again: drift repaired.
	units, err := h.api.Units()
	if err != nil {
		t.Fatal(err)
	}
	var victim string
	for _, u := range units {
		if strings.HasPrefix(u.Name, "k2:web:"+v2+":") {
			victim = u.Name
			break
		}
	}
	if err := h.api.SetUnitTargetState(victim, "inactive"); err != nil {
		t.Fatal(err)
	}
	launches := func() (int, string) {
		n, msg := 0, ""
		for _, e := range h.eventsOf("web") {
			if e.Kind == store.EventLaunched && e.FleetUnit == victim {
				n, msg = n+1, e.Message
			}
		}
		return n, msg
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		n, msg := launches()
		return n == 1 && strings.Contains(msg, "drift repaired"), fmt.Sprint(countKinds(h.eventsOf("web")))
	})
	// Once it runs again, a second stop by hand is repaired, and told, again.
	h.waitStatus("web", store.PhaseRunning, v2, 30*time.Second)
	eventually(t, 10*time.Second, func() (bool, string) {
		return len(h.view("web").running[victim]) == 1, fmt.Sprint(h.view("web"))
	})
	if err := h.api.SetUnitTargetState(victim, "inactive"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		n, _ := launches()
		return n == 2, fmt.Sprintf("%d launched events of %s", n, victim)
	})
}
