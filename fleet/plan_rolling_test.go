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

// servingMachines counts the machines running any version of the unit,
// and reports a machine running two of its fleet units at once.
func servingMachines(v fleetView) (int, string) {
	per := perMachine(v)
	for m, n := range per {
		if n > 1 {
			return len(per), fmt.Sprintf("machine %s runs %d fleet units of the unit", m, n)
		}
	}
	return len(per), ""
}

// On fleet's engine and agents: a rolling global unit on 3 machines is
// updated one machine at a time (a sampler never sees fewer than 2
// machines serving, nor two versions on one machine); a machine that
// leaves loses it and gets it back when it joins again; an update that
// fails leaves every machine on the old version.
func TestRollingGlobalOnFleet(t *testing.T) {
	h := newHarness(t, fleetsim.Machines(3, map[string]string{"role": "edge"}))
	h.serve(h.api, testOptions)
	ctx := context.Background()
	spec := func(image string) *deploy.Spec {
		return &deploy.Spec{Name: "router", Global: true, Machine: []string{"role=edge"}, Apps: []deploy.App{{Image: image}},
			Update: &deploy.Update{Strategy: deploy.StrategyRolling}}
	}
	v1 := h.put(spec("docker://router:1"))
	st := h.waitStatus("router", store.PhaseRunning, v1, 60*time.Second)
	if v := h.view("router"); v.runningWithHash(v1) != 3 || len(v.units) != 3 || st.Desired != 3 {
		t.Fatalf("first rollout: %v, status %+v", v, st)
	}
	if n, msg := servingMachines(h.view("router")); n != 3 || msg != "" {
		t.Fatalf("machines serving: %d %s", n, msg)
	}

	least := 3
	check := h.sample("router", func(v fleetView) string {
		n, msg := servingMachines(v)
		least = min(least, n)
		if msg != "" {
			return msg + ": " + v.String()
		}
		if n < 2 {
			return fmt.Sprintf("only %d machine(s) serving: %v", n, v)
		}
		return ""
	})
	v2 := h.put(spec("docker://router:2"))
	h.waitStatus("router", store.PhaseRunning, v2, 90*time.Second)
	if msg := check(); msg != "" {
		t.Fatalf("rolling update of a global unit: %s", msg)
	}
	if least != 2 {
		t.Errorf("at least %d machines served during the update; with maxUnavailable 1 one machine at a time is replaced (want 2)", least)
	}
	if v := h.view("router"); v.runningWithHash(v2) != 3 || len(v.units) != 3 {
		t.Fatalf("after the update: %v", v)
	}

	// A machine leaves: its fleet unit goes. It joins again: it gets one.
	gone := h.cluster.Machines()[2].ID()
	if err := h.cluster.Kill(gone); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() (bool, string) {
		st := h.status("router")
		v := h.view("router")
		return st != nil && st.Desired == 2 && len(v.units) == 2 && v.runningWithHash(v2) == 2, fmt.Sprintf("%v %+v", v, st)
	})
	if err := h.cluster.Revive(ctx, gone); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() (bool, string) {
		v := h.view("router")
		for _, ms := range v.running {
			for _, m := range ms {
				if m == gone {
					return len(v.units) == 3 && v.runningWithHash(v2) == 3, v.String()
				}
			}
		}
		return false, v.String()
	})

	// An update that crash-loops fails on the first machine; that machine
	// runs the old version again, and so do the others.
	check = h.sample("router", func(v fleetView) string {
		if n, msg := servingMachines(v); msg != "" || n < 2 {
			return fmt.Sprintf("%d serving %s: %v", n, msg, v)
		}
		return ""
	})
	bad := spec("docker://sim-fail/router")
	badHash := h.put(bad)
	st = h.waitStatus("router", store.PhaseFailed, badHash, 60*time.Second)
	if !strings.Contains(st.Message, "restart loop") && !strings.Contains(st.Message, "failed on") {
		t.Fatalf("failed status: %q", st.Message)
	}
	eventually(t, 60*time.Second, func() (bool, string) {
		v := h.view("router")
		return v.runningWithHash(v2) == 3 && len(v.units) == 3, v.String()
	})
	if msg := check(); msg != "" {
		t.Fatalf("failed rolling update: %s", msg)
	}
}
