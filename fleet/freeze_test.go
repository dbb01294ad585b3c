package fleet

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/store"
	ksync "github.com/kaylee-gitops/kaylee/sync"
)

// A change freeze holds what git brings, not the scheduler: a frozen
// unit's replica destroyed by hand is repaired, and the change git has
// for it stays recorded, not applied.
func TestFrozenUnitIsStillRepaired(t *testing.T) {
	t.Parallel() // its own etcd and fleet (newHarness): it waits on fleet's engine, not the CPU
	h := newHarness(t, fleetsim.Machines(2))
	h.serve(h.api, testOptions)
	ctx := context.Background()
	// Frozen at all times: a window every minute, lasting an hour.
	const file = "name: web\nreplicas: 2\napps: [{image: docker://nginx:1}]\nfreeze: [{schedule: \"* * * * *\", duration: 1h, reason: always}]\n"
	pass := func(body, rev string) *ksync.Result {
		t.Helper()
		snap := &gitsource.Snapshot{Revision: rev, Ref: "main", Files: []gitsource.File{{Path: "web.yaml", Data: []byte(body)}}}
		res, err := ksync.Pass(ctx, h.store, snap, ksync.Options{Source: "team"})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := pass(file, strings.Repeat("1", 40)); res.Count(ksync.Create) != 1 {
		t.Fatalf("first pass: %s", res.Summary())
	}
	u, err := h.store.GetUnit(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	hash := u.Spec.Hash(0)
	h.waitStatus("web", store.PhaseRunning, hash, 60*time.Second)

	// A change in git is held by the unit's own window.
	res := pass(strings.Replace(file, "nginx:1", "nginx:2", 1), strings.Repeat("2", 40))
	if res.Count(ksync.Frozen) != 1 || res.FrozenUnits["web"] == nil {
		t.Fatalf("second pass: %s %+v", res.Summary(), res.Changes)
	}

	// Drift: one replica destroyed by hand is repaired at the frozen spec.
	v := h.view("web")
	var names []string
	for n := range v.units {
		names = append(names, n)
	}
	sort.Strings(names)
	if err := h.api.DestroyUnit(names[0]); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() (bool, string) {
		v := h.view("web")
		return len(v.running[names[0]]) == 1 && v.runningWithHash(hash) == 2, v.String()
	})
	if u, _ := h.store.GetUnit(ctx, "web"); !strings.Contains(string(u.Raw), "nginx:1") {
		t.Fatalf("the frozen change was applied: %s", u.Raw)
	}
}
