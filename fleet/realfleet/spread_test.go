package realfleet_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/fleet/realfleet"
)

// TestRealSpreadAndRegistry: on the real cluster's machines (az=a|b|c,
// as kaylee dev's), 6 replicas with spread: {key: az} run 2 containers per
// zone and kaylee endpoints lists the 6 with their machines' IPs; killing
// zone a's machine moves its replicas to b and c (3 + 3), and the registry
// follows; when it comes back, 2 + 2 + 2 again.
func TestRealSpreadAndRegistry(t *testing.T) {
	// Exclusive (no t.Parallel, see newEnv): it kills a machine.
	e := newEnv(t, "rz")
	// A machine that comes back changes no unit state of this env: the
	// scheduler sees it at its next full reconcile (--resync, 30s by
	// default), and only then moves replicas back to zone a.
	e.server("--resync", "5s")
	zoneOf := map[string]string{} // machine ID → az
	for i, m := range e.c.Machines {
		zoneOf[m.ID] = string(rune('a' + i%3))
	}
	unit := webUnit("api", 6, 0, "v1") + "spread: {key: az}\nports:\n- {name: http, port: 8080}\n"
	unit = strings.Replace(unit, "maxReplicasPerHost: 0\n", "", 1)
	e.must("run", "--wait", "--timeout", "3m", e.unit("api", unit))
	perZone := func(cs []realfleet.Container) string {
		c := map[string]int{}
		for _, x := range cs {
			if x.Running {
				c[zoneOf[x.Machine]]++
			}
		}
		var out []string
		for z, n := range c {
			out = append(out, fmt.Sprintf("%s=%d", z, n))
		}
		sort.Strings(out)
		return strings.Join(out, " ")
	}
	endpoints := func() (string, int) {
		out := e.must("endpoints", "api", "-o", "json")
		var ins []struct{ MachineID, MachineIP string }
		if err := json.Unmarshal([]byte(out), &ins); err != nil {
			t.Fatalf("endpoints -o json: %v\n%s", err, out)
		}
		c := map[string]int{}
		for _, in := range ins {
			c[zoneOf[in.MachineID]]++
		}
		var parts []string
		for z, n := range c {
			parts = append(parts, fmt.Sprintf("%s=%d", z, n))
		}
		sort.Strings(parts)
		return strings.Join(parts, " "), len(ins)
	}
	e.waitFor("2 containers per zone", time.Minute, func() (bool, string) { z := perZone(e.containers("api")); return z == "a=2 b=2 c=2", z })
	e.waitFor("the registry lists 2 per zone", 30*time.Second, func() (bool, string) { z, _ := endpoints(); return z == "a=2 b=2 c=2", z })

	var dead realfleet.Machine
	for _, m := range e.c.Machines {
		if zoneOf[m.ID] == "a" {
			dead = m
		}
	}
	t.Cleanup(func() { e.c.Revive(t) })
	start := time.Now()
	e.c.Kill(t, dead)
	took := e.waitFor("zone a's replicas in b and c", 3*time.Minute, func() (bool, string) {
		z := perZone(e.containers("api"))
		return z == "b=3 c=3", z
	})
	e.waitFor("the registry follows", 30*time.Second, func() (bool, string) { z, n := endpoints(); return z == "b=3 c=3" && n == 6, z })
	t.Logf("zone a's machine killed: 3 + 3 containers in b and c %s later, the registry %s later", took.Round(100*time.Millisecond),
		time.Since(start).Round(100*time.Millisecond))

	e.c.Revive(t)
	back := time.Now()
	e.waitFor("2 per zone again", 3*time.Minute, func() (bool, string) { z := perZone(e.containers("api")); return z == "a=2 b=2 c=2", z })
	e.waitFor("the registry lists 2 per zone again", 30*time.Second, func() (bool, string) { z, _ := endpoints(); return z == "a=2 b=2 c=2", z })
	t.Logf("zone a back: 2 + 2 + 2 %s later", time.Since(back).Round(100*time.Millisecond))
}
