package realfleet_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/fleet/realfleet"
	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
)

// TestRealRollbackSuspend, with a kaylee agent syncing git: rollback
// brings containers of the old version back and sync keeps them while git
// still has the newer file; a suspended unit keeps its containers through
// a new commit and a fleet unit destroyed by hand; resume rolls out what
// git has.
func TestRealRollbackSuspend(t *testing.T) {
	shareable(t) // t.Parallel, longest first: see newEnv
	e := newEnv(t, "rb")
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"units/web.yaml": healthUnit("web", 2, "v1")})
	repo.Commit("web v1")
	e.start("agent", "--repo", repo.FileURL(), "--path", "units", "--interval", "2s", "--listen", "",
		"--cache-dir", filepath.Join(e.dir, "cache"), "--unit-prefix", e.unitPrefix, "--min-ready", "2s", "--lease-ttl", "5s")
	e.waitContainers("web", 2, "v1", 2*time.Minute)
	e.waitFor("revision 1 deployed", time.Minute, func() (bool, string) {
		out := e.must("history", "web")
		return strings.Contains(out, "deployed"), out
	})
	repo.Write(map[string]string{"units/web.yaml": healthUnit("web", 2, "v2")})
	repo.Commit("web v2")
	e.waitContainers("web", 2, "v2", 3*time.Minute)
	e.waitPhase("web", "running", time.Minute)

	start := time.Now()
	out := e.must("rollback", "web", "--wait", "--timeout", "3m")
	if !strings.Contains(out, "web rolled back to revision 1") || !strings.Contains(out, "web: running, 2/2") {
		t.Fatalf("rollback output:\n%s", out)
	}
	back := e.waitContainers("web", 2, "v1", time.Minute)
	t.Logf("rollback to v1: containers of v1 serving %s after kaylee rollback", time.Since(start).Round(100*time.Millisecond))
	time.Sleep(6 * time.Second) // three sync intervals: git still has v2
	now := e.waitContainers("web", 2, "v1", 10*time.Second)
	for i := range now {
		if now[i].ID != back[i].ID {
			t.Fatalf("sync undid the rollback: container %s replaced", now[i].Name)
		}
	}
	if h := e.must("history", "web"); !strings.Contains(h, "rolled back") || !strings.Contains(h, "rollback to 1") {
		t.Fatalf("history after the rollback:\n%s", h)
	}

	// Suspended: a new commit and a destroyed fleet unit change nothing.
	e.must("suspend", "web")
	e.waitPhase("web", "suspended", 30*time.Second)
	repo.Write(map[string]string{"units/web.yaml": healthUnit("web", 2, "v3")})
	repo.Commit("web v3")
	api := e.c.API(t)
	gone := strings.ReplaceAll(back[0].Name, "_", ":") + ".service"
	if err := api.DestroyUnit(gone); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the destroyed replica's container to go", time.Minute, func() (bool, string) {
		cs := e.containers("web")
		return len(cs) == 1, fmt.Sprint(cs)
	})
	time.Sleep(8 * time.Second) // sync passes and scheduler passes
	if cs := e.containers("web"); len(cs) != 1 || cs[0].ID != back[1].ID {
		t.Fatalf("a suspended unit was changed: %v", cs)
	}
	st, _ := e.status("web")
	if st.Phase != "suspended" || !strings.Contains(st.Message, "is rolled out on resume") {
		t.Fatalf("suspended status: %s %q", st.Phase, st.Message)
	}

	start = time.Now()
	e.must("resume", "web")
	e.waitContainers("web", 2, "v3", 3*time.Minute)
	t.Logf("resume: 2 containers of v3 (the commit made while suspended) %s after kaylee resume", time.Since(start).Round(100*time.Millisecond))
}

// TestRealRollingGlobal: a rolling global unit with a health check on the
// 3 machines is updated machine by machine; a sampler of the containers
// never sees fewer than 2 machines serving, nor two on one machine; a
// machine that dies loses its replica from the status and gets one back
// when it comes back.
func TestRealRollingGlobal(t *testing.T) {
	// Exclusive (no t.Parallel, see newEnv): it kills a machine.
	e := newEnv(t, "rw")
	e.server("--min-ready", "2s")
	unit := func(version string) string {
		return e.unit("edge", fmt.Sprintf(`name: edge
engine: docker
global: true
apps:
- image: %s:%s
  args: [--version=%s]
health:
  http: {port: 8080, path: /healthz}
  interval: 1s
  startPeriod: 20s
update:
  strategy: rolling
`, realfleet.Image, version, version))
	}
	machines := len(e.c.Machines)
	e.must("run", "--wait", "--timeout", "3m", unit("v1"))
	e.waitContainers("edge", machines, "v1", time.Minute)

	// Sample the containers every 200ms: the fewest machines serving, and
	// any machine serving two.
	type seen struct {
		fewest int
		worst  string
	}
	stop := make(chan struct{})
	result := make(chan seen, 1)
	go func() {
		r := seen{fewest: machines}
		for {
			select {
			case <-stop:
				result <- r
				return
			case <-time.After(200 * time.Millisecond):
			}
			perMachine := map[string]int{}
			var desc []string
			for _, c := range e.mine(context.Background(), "edge") {
				if c.Running && c.Serving(context.Background()) {
					perMachine[c.Machine]++
				}
				desc = append(desc, c.Name+"@"+short(c.Machine))
			}
			for m, n := range perMachine {
				if n > 1 {
					r.worst = fmt.Sprintf("machine %s serves %d containers: %v", short(m), n, desc)
				}
			}
			if len(perMachine) < r.fewest {
				r.fewest = len(perMachine)
				if r.worst == "" {
					r.worst = fmt.Sprint(desc)
				}
			}
		}
	}()
	start := time.Now()
	out := e.must("run", "--wait", "--timeout", "4m", unit("v2"))
	e.waitContainers("edge", machines, "v2", time.Minute)
	close(stop)
	r := <-result
	t.Logf("rolling update of a global unit on %d machines: %s; fewest machines serving %d", machines, time.Since(start).Round(100*time.Millisecond), r.fewest)
	if r.fewest < machines-1 || strings.Contains(r.worst, "serves") {
		t.Fatalf("during the rolling update: fewest machines serving %d (want ≥ %d); %s\n%s", r.fewest, machines-1, r.worst, out)
	}

	// A machine dies: the status desires one fewer; it comes back: it
	// runs the unit again.
	cs := e.containers("edge")
	dead, ok := e.c.Machine(cs[0].Machine)
	if !ok {
		t.Fatalf("unknown machine %s", cs[0].Machine)
	}
	t.Cleanup(func() { e.c.Revive(t) })
	e.c.Kill(t, dead)
	e.waitFor("the dead machine's replica gone from the status", 2*time.Minute, func() (bool, string) {
		st, _ := e.status("edge")
		return st.Desired == machines-1 && st.Phase == "running", fmt.Sprintf("%s %d/%d %s", st.Phase, st.Running, st.Desired, st.Message)
	})
	e.c.Revive(t)
	e.waitContainers("edge", machines, "v2", 3*time.Minute)
	e.waitPhase("edge", "running", time.Minute)
}
