package realfleet_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/fleet/realfleet"
)

// byName maps the containers by name (KAYLEE_ID).
func byName(cs []realfleet.Container) map[string]realfleet.Container {
	out := make(map[string]realfleet.Container, len(cs))
	for _, c := range cs {
		out[c.Name] = c
	}
	return out
}

// watchKept checks, every 200ms until stop is called, that every container
// of keep runs with its ID (docker's) on its machine; it returns the first
// time one did not, or "".
func (e *env) watchKept(unit string, keep []realfleet.Container) (stop func() (samples int, broken string)) {
	quit := make(chan struct{})
	type result struct {
		n      int
		broken string
	}
	done := make(chan result, 1)
	go func() {
		var r result
		for {
			select {
			case <-quit:
				done <- r
				return
			case <-time.After(200 * time.Millisecond):
			}
			cs, err := realfleet.Containers(context.Background(), unit)
			if err != nil {
				continue
			}
			r.n++
			now := map[string]realfleet.Container{}
			for _, c := range cs {
				if strings.HasPrefix(c.Name, e.unitPrefix+"_") {
					now[c.Name] = c
				}
			}
			for _, k := range keep {
				c, ok := now[k.Name]
				if r.broken == "" && (!ok || c.ID != k.ID || c.Machine != k.Machine || !c.Running) {
					r.broken = fmt.Sprintf("container %s (%s on %s): now %+v (present %v)", k.Name, short(k.ID), short(k.Machine), c, ok)
				}
			}
		}
	}()
	return func() (int, string) { close(quit); r := <-done; return r.n, r.broken }
}

// TestRealScaleKeepsReplicas (issue 21, item 2): replicas 2 → 3 adds a
// container and leaves the two running ones as they are (the same docker
// containers on the same machines, never stopped); 3 → 1 keeps replica 0's
// container and removes the others. kaylee history records the change
// with the same spec hash. Item 7: a global unit's containers have a name
// and KAYLEE_ID of their own on each machine (its machine ID at the end).
func TestRealScaleKeepsReplicas(t *testing.T) {
	shareable(t) // t.Parallel, longest first: see newEnv
	e := newEnv(t, "rk")
	e.server()
	e.must("run", "--wait", "--timeout", "3m", e.unit("web", webUnit("web", 2, 0, "v1")))
	two := e.waitContainers("web", 2, "v1", 30*time.Second)
	st0, _ := e.status("web")

	// 2 → 3.
	stop := e.watchKept("web", two)
	start := time.Now()
	out := e.must("run", "--wait", "--timeout", "3m", e.unit("web", webUnit("web", 3, 0, "v1")))
	three := e.waitContainers("web", 3, "v1", 30*time.Second)
	samples, broken := stop()
	t.Logf("2 → 3: the third container serves %s after kaylee run; %d samples of the first two", time.Since(start).Round(100*time.Millisecond), samples)
	if !strings.Contains(out, "web: running, 3/3 running") {
		t.Errorf("kaylee run --wait of replicas 3 did not wait for the third:\n%s", out)
	}
	if broken != "" {
		t.Fatalf("scaling 2 → 3 disturbed a running replica: %s", broken)
	}
	if samples < 5 {
		t.Fatalf("only %d samples taken", samples)
	}
	now := byName(three)
	for _, c := range two {
		if n, ok := now[c.Name]; !ok || n.ID != c.ID || n.Machine != c.Machine {
			t.Fatalf("scaling 2 → 3 replaced container %s (%s on %s): now %+v", c.Name, short(c.ID), short(c.Machine), n)
		}
	}
	st, _ := e.status("web")
	if st.Phase != "running" || st.Running != 3 || st.Desired != 3 || st.SpecHash != st0.SpecHash {
		t.Errorf("status after 2 → 3: %s %d/%d spec %s (was %s): %s", st.Phase, st.Running, st.Desired, st.SpecHash, st0.SpecHash, st.Message)
	}
	hist := e.must("history", "web")
	if !strings.Contains(hist, "replicas 2 → 3: no replica replaced") || strings.Count(hist, st0.SpecHash) != 2 {
		t.Errorf("kaylee history web after 2 → 3:\n%s", hist)
	}

	// 3 → 1: replica 0 stays.
	sort.Slice(three, func(i, j int) bool { return three[i].Name < three[j].Name })
	first := three[0]
	if !strings.HasSuffix(first.Name, "_0") {
		t.Fatalf("first container %s is not replica 0", first.Name)
	}
	stop = e.watchKept("web", []realfleet.Container{first})
	e.must("run", "--wait", "--timeout", "3m", e.unit("web", webUnit("web", 1, 0, "v1")))
	one := e.waitContainers("web", 1, "v1", time.Minute)
	if _, broken := stop(); broken != "" {
		t.Fatalf("scaling 3 → 1 disturbed replica 0: %s", broken)
	}
	if one[0].ID != first.ID || one[0].Machine != first.Machine {
		t.Fatalf("after 3 → 1: %+v, want replica 0's container %s (%s on %s)", one[0], first.Name, short(first.ID), short(first.Machine))
	}

	// Item 7: a global unit, one fleet unit that fleet runs on every
	// machine, has a KAYLEE_ID (and container name) of its own on each.
	e.must("run", "--wait", "--timeout", "3m", e.unit("agent", fmt.Sprintf(`name: agent
engine: docker
global: true
apps:
- image: %s:v1
  args: [--version=v1]
`, realfleet.Image)))
	agents := e.waitContainers("agent", len(e.c.Machines), "v1", time.Minute)
	names := map[string]bool{}
	for _, c := range agents {
		names[c.Name] = true
		if !strings.HasSuffix(c.Name, "_"+c.Machine) {
			t.Errorf("global unit's container %s on machine %s: its name does not end in _<machine ID>", c.Name, c.Machine)
		}
		_, env, err := c.Get(context.Background(), "/env")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(env, "KAYLEE_ID="+c.Name+"\n") {
			t.Errorf("global unit's container %s: KAYLEE_ID is not its name:\n%s", c.Name, env)
		}
	}
	if len(names) != len(e.c.Machines) {
		t.Errorf("global unit's containers on %d machines have %d names: %v", len(e.c.Machines), len(names), names)
	}
}
