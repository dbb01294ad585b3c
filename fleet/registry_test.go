package fleet

import (
	"context"
	"fmt"
	"sort"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/coreos/fleet/client"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/store"
)

// instances returns a unit's registry entries: instance → "machineIP hash".
func (h *harness) instances(name string) map[string]string {
	h.t.Helper()
	ins, err := h.store.UnitInstances(context.Background(), name)
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]string{}
	for _, in := range ins {
		out[in.Instance] = in.MachineIP + " " + in.SpecHash
	}
	return out
}

// stopChecker is fleet's API with a check at each stop and destroy: the
// replica must have left the registry already.
type stopChecker struct {
	client.API
	h          *harness
	mu         gosync.Mutex
	stops      int
	violations []string
}

func (c *stopChecker) check(name, what string) {
	ins, err := c.h.store.ListInstances(context.Background())
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stops++
	if err != nil {
		c.violations = append(c.violations, err.Error())
	}
	for _, in := range ins {
		if in.FleetUnit == name {
			c.violations = append(c.violations, fmt.Sprintf("%s of %s while it is still in the registry", what, name))
		}
	}
}

func (c *stopChecker) SetUnitTargetState(name, target string) error {
	if target != "launched" {
		c.check(name, "target "+target)
	}
	return c.API.SetUnitTargetState(name, target)
}

func (c *stopChecker) DestroyUnit(name string) error {
	c.check(name, "destroy")
	return c.API.DestroyUnit(name)
}

// The instance registry on fleet's engine and agents: entries for running
// replicas only, with machine, IP, metadata and ports; during a rollout a
// replica leaves the registry before fleet is told to stop it (checked at
// each stop and destroy call, and by a sampler that reads fleet, then the
// registry, every 50 ms); a removed unit's entries go; and when the
// leader's session ends, every entry goes with its lease.
func TestInstanceRegistry(t *testing.T) {
	t.Parallel() // its own etcd and fleet: it waits on fleet's engine, not the CPU
	h := newHarness(t, fleetsim.Machines(3, map[string]string{"az": "a"}))
	opts := testOptions
	opts.MinReady = 300 * time.Millisecond
	checker := &stopChecker{API: h.api, h: h}
	stop := h.serve(checker, opts)
	spec := func(image string) *deploy.Spec {
		return &deploy.Spec{Name: "web", Replicas: 2, Apps: []deploy.App{{Image: image}},
			Ports: []deploy.Port{{Name: "http", Port: 8080}}}
	}
	v1 := h.put(spec("docker://web:1"))
	h.waitStatus("web", store.PhaseRunning, v1, 60*time.Second)
	eventually(t, 10*time.Second, func() (bool, string) {
		in := h.instances("web")
		return len(in) == 2, fmt.Sprint(in)
	})
	ins, _ := h.store.UnitInstances(context.Background(), "web")
	for _, in := range ins {
		if in.SpecHash != v1 || in.State != "active/running" || !strings.HasPrefix(in.MachineIP, "192.0.2.") || in.Metadata["az"] != "a" ||
			len(in.Ports) != 1 || in.Ports[0].Port != 8080 || in.FleetUnit != in.Instance+".service" || in.Since.IsZero() {
			t.Fatalf("instance %+v", in)
		}
	}

	// A rollout: no entry may outlive its replica's target state.
	var mu gosync.Mutex
	var violations []string
	samples := 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			units, err := h.api.Units() // fleet first, then the registry
			if err != nil {
				continue
			}
			target := map[string]string{}
			for _, u := range units {
				target[u.Name] = u.DesiredState
			}
			ins, err := h.store.UnitInstances(context.Background(), "web")
			if err != nil {
				continue
			}
			mu.Lock()
			samples++
			for _, in := range ins {
				if target[in.FleetUnit] != "launched" {
					violations = append(violations, fmt.Sprintf("%s listed while its fleet unit is %q", in.Instance, target[in.FleetUnit]))
				}
			}
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	v2 := h.put(spec("docker://web:2"))
	h.waitStatus("web", store.PhaseRunning, v2, 60*time.Second)
	h.waitUnits("web", v2, 2, 30*time.Second)
	eventually(t, 10*time.Second, func() (bool, string) {
		in := h.instances("web")
		n := 0
		for _, v := range in {
			if strings.HasSuffix(v, " "+v2) {
				n++
			}
		}
		return n == 2 && len(in) == 2, fmt.Sprint(in)
	})
	cancel()
	<-done
	mu.Lock()
	if len(violations) > 0 {
		sort.Strings(violations)
		t.Errorf("%d of %d samples saw a stopped replica in the registry, e.g. %s", len(violations), samples, violations[0])
	}
	mu.Unlock()

	// The leader's session ends: the entries go with its lease.
	stop()
	eventually(t, 10*time.Second, func() (bool, string) { in := h.instances("web"); return len(in) == 0, fmt.Sprint(in) })

	// A new leader writes them again; a removed unit's go.
	h.serve(checker, opts)
	eventually(t, 20*time.Second, func() (bool, string) { in := h.instances("web"); return len(in) == 2, fmt.Sprint(in) })
	if _, err := h.store.DeleteUnit(context.Background(), "web", store.Fence{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() (bool, string) { in := h.instances("web"); return len(in) == 0, fmt.Sprint(in) })
	checker.mu.Lock()
	defer checker.mu.Unlock()
	if len(checker.violations) > 0 {
		t.Errorf("%d of %d stop and destroy calls came while the replica was in the registry, e.g. %s", len(checker.violations), checker.stops, checker.violations[0])
	}
	if checker.stops < 4 {
		t.Errorf("only %d stop and destroy calls checked", checker.stops)
	}
}
