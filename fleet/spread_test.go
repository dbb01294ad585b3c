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

// zonesOf counts a unit's serving replicas per zone, from the registry.
func (h *harness) zonesOf(name string) string {
	h.t.Helper()
	ins, err := h.store.UnitInstances(context.Background(), name)
	if err != nil {
		h.t.Fatal(err)
	}
	c := map[string]int{}
	for _, in := range ins {
		c[in.Metadata["az"]]++
	}
	var out []string
	for z, n := range c {
		out = append(out, fmt.Sprintf("%s=%d", z, n))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// spread: {key: az} over five machines, three of them in zone a: 6
// replicas land 2 per zone (fleet alone would put 3 or 4 in a); when
// every machine of zone a dies its replicas move to b and c (3 + 3) and
// the registry follows; when they come back the zones even out again
// (2 + 2 + 2), which fleet never does by itself.
func TestSpreadAcrossZones(t *testing.T) {
	t.Parallel() // its own etcd and fleet (newHarness): it waits on fleet's engine, not the CPU
	a, b, c := map[string]string{"az": "a"}, map[string]string{"az": "b"}, map[string]string{"az": "c"}
	machines := fleetsim.Machines(5, a, a, a, b, c)
	h := newHarness(t, machines)
	opts := testOptions
	opts.MinReady = 200 * time.Millisecond
	h.serve(h.api, opts)
	spec := &deploy.Spec{Name: "api", Replicas: 6, Apps: []deploy.App{{Image: "docker://api"}}, Spread: &deploy.Spread{Key: "az"},
		Ports: []deploy.Port{{Name: "http", Port: 80}}}
	hash := h.put(spec)
	h.waitStatus("api", store.PhaseRunning, hash, 60*time.Second)
	eventually(t, 20*time.Second, func() (bool, string) { z := h.zonesOf("api"); return z == "a=2 b=2 c=2", z })

	for _, m := range machines[:3] {
		if err := h.cluster.Kill(m.ID); err != nil {
			t.Fatal(err)
		}
	}
	killed := time.Now()
	eventually(t, 90*time.Second, func() (bool, string) { z := h.zonesOf("api"); return z == "b=3 c=3", z })
	t.Logf("zone a lost: its replicas serve in b and c %s later (fleet's machine TTL 4s)", time.Since(killed).Round(100*time.Millisecond))

	for _, m := range machines[:3] {
		if err := h.cluster.Revive(context.Background(), m.ID); err != nil {
			t.Fatal(err)
		}
	}
	back := time.Now()
	eventually(t, 90*time.Second, func() (bool, string) { z := h.zonesOf("api"); return z == "a=2 b=2 c=2", z })
	t.Logf("zone a back: 2 + 2 + 2 again %s later", time.Since(back).Round(100*time.Millisecond))
	h.waitStatus("api", store.PhaseRunning, hash, 30*time.Second)
}

// spread with maxReplicasPerHost 1, a rolling update and kaylee restart:
// on six machines (two per zone), 6 replicas run one per machine and 2 per
// zone, and stay so through an update of the image and a restart.
func TestSpreadWithPerHostUpdateAndRestart(t *testing.T) {
	t.Parallel() // its own etcd and fleet (newHarness): it waits on fleet's engine, not the CPU
	a, b, c := map[string]string{"az": "a"}, map[string]string{"az": "b"}, map[string]string{"az": "c"}
	h := newHarness(t, fleetsim.Machines(6, a, a, b, b, c, c))
	opts := testOptions
	opts.MinReady = 200 * time.Millisecond
	h.serve(h.api, opts)
	spec := func(image string) *deploy.Spec {
		return &deploy.Spec{Name: "api", Replicas: 6, MaxReplicasPerHost: 1, Apps: []deploy.App{{Image: image}}, Spread: &deploy.Spread{Key: "az"}}
	}
	placed := func(hash string) {
		t.Helper()
		eventually(t, 60*time.Second, func() (bool, string) {
			v := h.view("api")
			machines := map[string]bool{}
			for name, ms := range v.running {
				if strings.Contains(name, ":"+hash+":") {
					for _, m := range ms {
						machines[m] = true
					}
				}
			}
			z := h.zonesOf("api")
			return z == "a=2 b=2 c=2" && len(machines) == 6 && v.runningWithHash(hash) == 6, fmt.Sprintf("zones %s, %d machines: %v", z, len(machines), v)
		})
	}
	v1 := h.put(spec("docker://api:1"))
	h.waitStatus("api", store.PhaseRunning, v1, 60*time.Second)
	placed(v1)
	v2 := h.put(spec("docker://api:2"))
	h.waitStatus("api", store.PhaseRunning, v2, 90*time.Second)
	h.waitUnits("api", v2, 6, 30*time.Second)
	placed(v2)
	n, err := h.store.Restart(context.Background(), "api", "test")
	if err != nil {
		t.Fatal(err)
	}
	u, err := h.store.GetUnit(context.Background(), "api")
	if err != nil {
		t.Fatal(err)
	}
	v3 := u.Spec.Hash(n)
	h.waitStatus("api", store.PhaseRunning, v3, 90*time.Second)
	h.waitUnits("api", v3, 6, 30*time.Second)
	placed(v3)
}

// Issue 20: fleet's machine metadata is rendered into spread units, so it
// is held to the rules of a unit file's own values. A machine whose zone
// holds a newline (a directive after it) or a second = is left out of
// the zones: no unit gets a line from it, and the replicas spread over
// the zones that can be written.
func TestSpreadLeavesOutHostileMetadata(t *testing.T) {
	t.Parallel() // its own etcd and fleet (newHarness): it waits on fleet's engine, not the CPU
	machines := fleetsim.Machines(4, map[string]string{"az": "a"}, map[string]string{"az": "b"},
		map[string]string{"az": "c\nExecStartPre=/nonexistent/evil"}, map[string]string{"az": "x=y"})
	h := newHarness(t, machines)
	opts := testOptions
	opts.MinReady = 200 * time.Millisecond
	h.serve(h.api, opts)
	spec := &deploy.Spec{Name: "api", Replicas: 4, Apps: []deploy.App{{Image: "docker://api"}}, Spread: &deploy.Spread{Key: "az"},
		Ports: []deploy.Port{{Name: "http", Port: 80}}}
	hash := h.put(spec)
	h.waitStatus("api", store.PhaseRunning, hash, 60*time.Second)
	units, err := h.api.Units()
	if err != nil {
		t.Fatal(err)
	}
	var zones []string
	for _, u := range units {
		for _, o := range u.Options {
			if strings.ContainsAny(o.Value, "\n\r") {
				t.Errorf("%s: %s=%q holds a line break", u.Name, o.Name, o.Value)
			}
			if o.Name == "MachineMetadata" {
				zones = append(zones, o.Value)
			}
		}
	}
	sort.Strings(zones)
	if got := strings.Join(zones, " "); got != "az=a az=a az=b az=b" {
		t.Fatalf("spread units' MachineMetadata: %s, want az=a az=a az=b az=b", got)
	}
	eventually(t, 20*time.Second, func() (bool, string) { z := h.zonesOf("api"); return z == "a=2 b=2", z })
}
