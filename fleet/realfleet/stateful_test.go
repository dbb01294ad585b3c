package realfleet_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/fleet/realfleet"
)

// counterDir is the host directory of the stateful test's member volumes:
// dockerd runs on the host, bound into every machine, so a volume source
// is a host path, and docker run -v creates it.
const counterDir = "/var/lib/kaylee-test"

// statefulUnit is a stateful unit of 2 members, one per machine, each
// keeping a counter in its own host directory (round is an env value: a
// change rolls the members).
func statefulUnit(round int) string {
	return fmt.Sprintf(`name: db
engine: docker
replicas: 2
maxReplicasPerHost: 1
stateful: true
env:
- name: ROUND
  value: '%d'
volumes:
- {source: '%s/rs-counter-${KAYLEE_MEMBER}', path: /data}
apps:
- image: %s:v1
  args: [--version=v1, --count=/data/count]
health:
  http: {port: 8080, path: /healthz}
  interval: 1s
  timeout: 1s
  startPeriod: 12s
  failures: 2
`, round, counterDir, realfleet.Image)
}

// ordinalOf is a member container's ordinal: the last field of its name.
func ordinalOf(c realfleet.Container) int {
	n, err := strconv.Atoi(c.Name[strings.LastIndex(c.Name, "_")+1:])
	if err != nil {
		return -1
	}
	return n
}

// members waits until db runs exactly one serving container of spec hash
// per ordinal in want (ordinal → machine ID; "" for any machine) and none
// of another, and returns them by ordinal.
func (e *env) members(hash string, want map[int]string, timeout time.Duration) map[int]realfleet.Container {
	e.t.Helper()
	var got map[int]realfleet.Container
	e.waitFor(fmt.Sprintf("members %v of db at spec %s", want, hash), timeout, func() (bool, string) {
		got = map[int]realfleet.Container{}
		ok := true
		var desc []string
		for _, c := range e.containers("db") {
			o := ordinalOf(c)
			serving := c.Running && c.Serving(context.Background())
			desc = append(desc, fmt.Sprintf("%s@%s serving=%v", c.Name, short(c.Machine), serving))
			if _, dup := got[o]; dup || !strings.Contains(c.Name, "_"+hash+"_") || !serving {
				ok = false
			}
			got[o] = c
		}
		for o, m := range want {
			if c, found := got[o]; !found || m != "" && c.Machine != m {
				ok = false
			}
		}
		return ok && len(got) == len(want), strings.Join(desc, " ")
	})
	return got
}

// counter reads a member's counter file over HTTP, without bumping it.
func counter(t *testing.T, c realfleet.Container) int {
	t.Helper()
	code, body, err := c.Get(context.Background(), "/file?path=/data/count")
	if err != nil || code != 200 {
		t.Fatalf("member %s: reading /data/count: %d %q %v", c.Name, code, body, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(body))
	if err != nil {
		t.Fatalf("member %s: /data/count holds %q", c.Name, body)
	}
	return n
}

// bump increments a member's counter n times over HTTP and returns the last
// value it answered.
func bump(t *testing.T, c realfleet.Container, n int) int {
	t.Helper()
	v := 0
	for range n {
		code, body, err := c.Get(context.Background(), "/count")
		if err != nil || code != 200 {
			t.Fatalf("member %s: /count: %d %q %v", c.Name, code, body, err)
		}
		if v, err = strconv.Atoi(strings.TrimSpace(body)); err != nil {
			t.Fatalf("member %s: /count answered %q", c.Name, body)
		}
	}
	return v
}

// TestRealStatefulKeepsData: a stateful unit's members keep their machines
// and their data (a counter in a per-member host volume) through an env
// update, a restart and a rollback; when member 1's machine dies, the member
// waits for it (the status says so) and runs nowhere else, and once the
// machine is back it runs there again with its counter intact.
func TestRealStatefulKeepsData(t *testing.T) {
	// Exclusive (no t.Parallel, see newEnv): it kills a machine.
	e := newEnv(t, "rs")
	clearCounters := func() {
		old, _ := filepath.Glob(filepath.Join(counterDir, "rs-counter-*"))
		for _, d := range old {
			_ = os.RemoveAll(d)
		}
		_ = os.Remove(counterDir) // if nothing else is in it
	}
	clearCounters()
	t.Cleanup(clearCounters)
	e.server("--min-ready", "2s")

	start := time.Now()
	e.must("run", "--wait", "--timeout", "3m", e.unit("db", statefulUnit(1)))
	st, _ := e.waitPhase("db", "running", time.Minute)
	ms := e.members(st.SpecHash, map[int]string{0: "", 1: ""}, time.Minute)
	on := map[int]string{0: ms[0].Machine, 1: ms[1].Machine}
	if on[0] == on[1] {
		t.Fatalf("both members on machine %s (maxReplicasPerHost 1)", on[0])
	}
	t.Logf("spec %s: 2 members running %s after kaylee run: member 0 on %s, member 1 on %s", st.SpecHash, time.Since(start).Round(100*time.Millisecond), short(on[0]), short(on[1]))
	count := map[int]int{0: bump(t, ms[0], 3), 1: bump(t, ms[1], 5)}

	// check waits for the members of a new spec hash (other than old) on
	// their machines, their counters where they were, and bumps each once.
	// s samples db's containers during the step: one member serves at
	// all times (update.maxUnavailable 1) and none runs twice.
	check := func(step string, old string, began time.Time, s *sampler) {
		t.Helper()
		var first string // the first status of the new spec seen
		e.waitFor("db running a new spec after "+step, 3*time.Minute, func() (bool, string) {
			s, ok := e.status("db")
			if ok && s.SpecHash != old && first == "" {
				first = fmt.Sprintf("%s %d/%d: %s", s.Phase, s.Running, s.Desired, s.Message)
			}
			return ok && s.Phase == "running" && s.SpecHash != old, fmt.Sprintf("%s %s %d/%d: %s", s.SpecHash, s.Phase, s.Running, s.Desired, s.Message)
		})
		now, _ := e.status("db")
		ms := e.members(now.SpecHash, on, time.Minute)
		took := time.Since(began)
		samples, minServe, maxTotal, worst := s.finish()
		if minServe < 1 || maxTotal > 2 {
			t.Errorf("during %s: %d member(s) served at the least (want 1), %d containers at the most (want 2, a member never runs twice): %s", step, minServe, maxTotal, worst)
		}
		for _, o := range []int{0, 1} {
			if got := counter(t, ms[o]); got != count[o] {
				t.Errorf("after %s: member %d's counter is %d, was %d", step, o, got, count[o])
			}
			count[o] = bump(t, ms[o], 1)
		}
		_, env, _ := ms[0].Get(context.Background(), "/env")
		round := ""
		for _, l := range strings.Split(env, "\n") {
			if v, ok := strings.CutPrefix(l, "ROUND="); ok {
				round = v
			}
		}
		t.Logf("%s: first status %q", step, first)
		t.Logf("%s: spec %s (ROUND=%s) running %s later, members on the same machines, counters continue at %d and %d; %d samples: at least %d serving, at most %d containers",
			step, now.SpecHash, round, took.Round(100*time.Millisecond), count[0], count[1], samples, minServe, maxTotal)
	}

	s, began := e.sample("db"), time.Now()
	e.must("run", e.unit("db", statefulUnit(2)))
	check("env update (ROUND=2)", st.SpecHash, began, s)
	hash := func() string { s, _ := e.status("db"); return s.SpecHash }

	old := hash()
	s, began = e.sample("db"), time.Now()
	e.must("restart", "db")
	check("kaylee restart", old, began, s)

	old = hash()
	s, began = e.sample("db"), time.Now()
	out := e.must("rollback", "db", "--wait", "--timeout", "3m")
	if !strings.Contains(out, "db rolled back to revision") {
		t.Fatalf("rollback output:\n%s", out)
	}
	check("kaylee rollback", old, began, s)

	e.memberWaitsForItsMachine(on, count)
}

// memberWaitsForItsMachine kills member 1's machine: the status says the
// member waits for it, no copy runs elsewhere; revived, the member runs on
// it again with its counter.
func (e *env) memberWaitsForItsMachine(on map[int]string, count map[int]int) {
	t := e.t
	dead, ok := e.c.Machine(on[1])
	if !ok {
		t.Fatalf("member 1 on %s, not a machine of the cluster", on[1])
	}
	hash := func() string { s, _ := e.status("db"); return s.SpecHash }()
	t.Cleanup(func() { e.c.Revive(t) })
	killed := time.Now()
	e.c.Kill(t, dead)
	want := fmt.Sprintf("member 1 waits for machine %.8s (%s), its data is there", dead.ID, dead.IP)
	elsewhere := func() string {
		var bad []string
		for _, c := range e.containers("db") {
			if ordinalOf(c) == 1 {
				bad = append(bad, c.Name+"@"+short(c.Machine))
			}
		}
		sort.Strings(bad)
		return strings.Join(bad, " ")
	}
	var st string
	took := e.waitFor("the status names the waiting member", 3*time.Minute, func() (bool, string) {
		if bad := elsewhere(); bad != "" {
			t.Fatalf("member 1 runs elsewhere while its machine is gone: %s", bad)
		}
		s, _ := e.status("db")
		st = fmt.Sprintf("%s %d/%d: %s", s.Phase, s.Running, s.Desired, s.Message)
		return strings.Contains(s.Message, want), st
	})
	t.Logf("member 1's machine %s killed: status %q %s later", dead.Name, st, took.Round(100*time.Millisecond))
	// The scheduler passes a few more times: still no copy of member 1.
	for range 20 {
		if bad := elsewhere(); bad != "" {
			t.Fatalf("member 1 runs elsewhere while its machine is gone: %s", bad)
		}
		time.Sleep(time.Second)
	}
	if out := e.must("status", "db"); !strings.Contains(out, want) {
		t.Errorf("kaylee status db does not say %q:\n%s", want, out)
	}

	back := time.Now()
	e.c.Revive(t)
	ms := e.members(hash, on, 3*time.Minute)
	took = time.Since(back)
	e.waitPhase("db", "running", time.Minute)
	if got := counter(t, ms[1]); got != count[1] {
		t.Errorf("member 1's counter is %d after its machine came back, was %d", got, count[1])
	}
	if got := bump(t, ms[1], 1); got != count[1]+1 {
		t.Errorf("member 1's counter answered %d, want %d", got, count[1]+1)
	}
	if got := counter(t, ms[0]); got != count[0] {
		t.Errorf("member 0's counter is %d, was %d", got, count[0])
	}
	t.Logf("%s revived: member 1 running on it again %s later, counter %d intact (killed %s ago)",
		dead.Name, took.Round(100*time.Millisecond), count[1], time.Since(killed).Round(100*time.Millisecond))
}
