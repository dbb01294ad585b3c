package realfleet_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/fleet/realfleet"
)

// seedCountly is the seed's countly unit file (its README's example, in
// /work/shared/seeds), byte for byte: no engine, the cluster's default
// runs it.
const seedCountly = `# vim: ts=2:sw=2
name: countly
replicas: 4
maxReplicasPerHost: 2
env:
- name: MONGO_URL
  value: mongodb://mongo-1.lan,mongo-2.lan,mongo-3.lan/countly?replicaSet=main
machine:
- ssd=false
args:
- --dns=10.0.0.2
- --net=flannel,default
apps:
- image: docker://monder/countly-docker:latest
- image: monder.cc/rkt-sidekick:v0.0.3
  args:
  - --cidr 10.5.0.0/16
  - --interval 10m
  - --expireDir /services
  - --format '$$ip:80'
  - /services/countly/${KAYLEE_ID}
`

// TestRealSeedCountlyOnPodman runs the seed's countly unit file, its two
// images replaced by the cluster's, on a scheduler whose default engine is
// podman: 4 pods of countly and its sidekick, at most 2 on a machine
// (sampled through the whole test), each sidekick reaching its own countly
// on localhost; a rolling update (MONGO_URL changed) replaces every pod and
// leaves nothing of the old spec; the sidekick killed in one pod restarts
// the whole pod, its journal and kaylee status say so; kaylee rm leaves no
// pod and no container, and every fleet unit stops inactive, not failed.
func TestRealSeedCountlyOnPodman(t *testing.T) {
	shareable(t) // t.Parallel, longest first: see newEnv
	c := requireCluster(t)
	const prefix = "sp"
	t.Cleanup(func() { removePods(t, c, prefix+"_") }) // after the env's cleanup (LIFO)
	e := newEnv(t, prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	removePods(t, c, prefix+"_") // what a failed run left
	countly, sidekick, err := c.PushPodImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seed := strings.NewReplacer("docker://monder/countly-docker:latest", "docker://"+countly,
		"monder.cc/rkt-sidekick:v0.0.3", sidekick).Replace(seedCountly)
	if strings.Contains(seed, "monder") || strings.Contains(seed, "engine:") {
		t.Fatalf("the seed's unit with the cluster's images:\n%s", seed)
	}
	e.server("--default-engine", "podman")
	s := e.samplePods(prefix + "_countly_")
	t.Cleanup(func() { // also what it saw until a failure
		failed := t.Failed()
		s.finish()
		s.check(t, 2, 4, 5, failed)
	})

	// Start: 4 pods, each of countly, the sidekick and the infra container.
	s.setPhase("start")
	start := time.Now()
	if out := e.must("run", "--wait", "--timeout", "5m", e.unit("countly", seed)); !strings.Contains(out, "countly: running, 4/4") {
		t.Fatalf("kaylee run --wait:\n%s", out)
	}
	toRunning := time.Since(start)
	st, _ := e.waitPhase("countly", "running", time.Minute)
	pods := e.wantPods(ctx, prefix+"_countly_", st.SpecHash)
	e.wantReports(ctx, pods, sidekick)
	t.Logf("seed's countly on podman: running 4/4 %s after kaylee run; pods per machine %s",
		toRunning.Round(100*time.Millisecond), podsPerMachine(pods))

	// Rolling update: a new MONGO_URL replaces every pod, one at a time.
	s.setPhase("update")
	old := e.fleetMachines(prefix + ":countly:")
	update := strings.Replace(seed, "replicaSet=main", "replicaSet=main&w=majority", 1)
	start = time.Now()
	if out := e.must("run", "--wait", "--timeout", "6m", e.unit("countly", update)); !strings.Contains(out, "countly: running, 4/4") {
		t.Fatalf("kaylee run --wait (update):\n%s", out)
	}
	updateTime := time.Since(start)
	st2, _ := e.waitPhase("countly", "running", time.Minute)
	if st2.SpecHash == st.SpecHash {
		t.Fatalf("the update kept spec %s", st.SpecHash)
	}
	e.waitFor("the old spec's fleet units to go", time.Minute, func() (bool, string) {
		left := e.fleetMachines(prefix + ":countly:" + short(st.SpecHash))
		return len(left) == 0, fmt.Sprint(left)
	})
	pods = e.wantPods(ctx, prefix+"_countly_", st2.SpecHash)
	e.wantReports(ctx, pods, sidekick)
	e.wantStoppedClean(ctx, old)
	t.Logf("rolling update (MONGO_URL): 4 pods replaced in %s", updateTime.Round(100*time.Millisecond))

	// Crash: the sidekick of one pod is killed; the whole pod restarts.
	s.setPhase("crash")
	e.crashSidekick(ctx, pods[0], sidekick)
	pods = e.wantPods(ctx, prefix+"_countly_", st2.SpecHash)
	e.wantReports(ctx, pods, sidekick)

	// Remove: no pod, no container; every fleet unit stops inactive.
	s.setPhase("rm")
	units := e.fleetMachines(prefix + ":countly:")
	start = time.Now()
	e.must("rm", "countly")
	failed := e.waitRemoved(ctx, prefix)
	t.Logf("kaylee rm: every pod and container gone %s after", time.Since(start).Round(100*time.Millisecond))
	if len(failed) > 0 {
		t.Errorf("fleet units seen failed while kaylee rm stopped them: %v", failed)
	}
	e.wantStoppedClean(ctx, units)
}

// seedPod is one of the unit's pods and the machine it runs on.
type seedPod struct {
	realfleet.Pod
	Machine realfleet.Machine
}

// wantPods checks every machine's podman: 4 pods of spec hash, Running,
// each of its 2 apps and its infra container, running, at most 2 on a
// machine, on the machine its label names; no other pod or container of
// this env (other tests' run beside it), nor of its unit (listed filtered by
// the io.kaylee.unit label).
func (e *env) wantPods(ctx context.Context, podPrefix, hash string) []seedPod {
	e.t.Helper()
	var pods []seedPod
	var desc strings.Builder
	e.waitFor("4 pods of spec "+short(hash)+" and nothing else", 2*time.Minute, func() (bool, string) {
		pods = pods[:0]
		desc.Reset()
		ok := true
		for _, m := range e.c.Machines {
			st, err := e.c.Podmans(ctx, m)
			if err != nil {
				return false, err.Error()
			}
			st = st.Of(e.unitPrefix + "_")
			fmt.Fprintf(&desc, "%s:\n%s", m.Name, st)
			on, bad := seedPodsOf(st, m, podPrefix+short(hash)+"_")
			pods = append(pods, on...)
			ok = ok && !bad && len(on) <= 2
		}
		return ok && len(pods) == 4, desc.String()
	})
	for _, m := range e.c.Machines {
		for _, args := range [][]string{
			{"pod", "ps", "--filter", "label=io.kaylee.unit=countly", "--format", "{{.Name}}"},
			{"ps", "--all", "--filter", "label=io.kaylee.unit=countly", "--format", "{{.Names}}"},
		} {
			out, err := e.c.Podman(ctx, m, args...)
			if err != nil {
				e.t.Fatal(err)
			}
			for _, name := range strings.Fields(out) {
				if !strings.HasPrefix(name, podPrefix+short(hash)+"_") {
					e.t.Errorf("podman %s on %s lists %s: not a pod (or container of a pod) of spec %s", strings.Join(args, " "), m.Name, name, short(hash))
				}
			}
		}
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	return pods
}

// seedPodsOf returns machine m's pods named want…; bad when anything else
// is there, or a pod is not Running with its 3 containers running.
func seedPodsOf(st realfleet.PodmanState, m realfleet.Machine, want string) (pods []seedPod, bad bool) {
	for _, p := range st.Pods {
		wantCts := []string{p.Name + "-0", p.Name + "-1", p.Name + "-infra"}
		if !strings.HasPrefix(p.Name, want) || p.Status != "Running" || p.Labels["io.kaylee.machine"] != m.ID ||
			strings.Join(p.Containers, ",") != strings.Join(wantCts, ",") {
			bad = true
			continue
		}
		pods = append(pods, seedPod{Pod: p, Machine: m})
	}
	for _, ct := range st.Containers {
		if !strings.HasPrefix(ct.PodName, want) || ct.State != "running" || ct.Labels["io.kaylee.unit"] != "countly" {
			bad = true
		}
	}
	return pods, bad || len(st.Containers) != 3*len(pods)
}

// wantReports waits for each pod's sidekick (app 1) to report its
// countly's answer on localhost, with the pod's flannel address.
func (e *env) wantReports(ctx context.Context, pods []seedPod, sidekick string) {
	e.t.Helper()
	for _, p := range pods {
		n := strings.TrimPrefix(p.Machine.Name, "kaylee-m")
		ips, err := e.c.PodIPs(ctx, p.Machine, p.Name)
		if err != nil {
			e.t.Fatal(err)
		}
		flannel := ""
		for _, ip := range ips {
			if strings.HasPrefix(ip, "10.5."+n+".") {
				flannel = ip
			}
		}
		if flannel == "" || len(ips) != 2 {
			e.t.Fatalf("pod %s on %s has addresses %q: want one in 10.5.%s.0/24 (flannel) and one in podman's", p.Name, p.Machine.Name, ips, n)
		}
		report := realfleet.SidekickReport("countly/"+p.Name, flannel+":80") + "testimage v1 on :80"
		var logs string
		e.waitFor("the sidekick of "+p.Name+" to report", time.Minute, func() (bool, string) {
			if logs, err = e.c.Podman(ctx, p.Machine, "logs", p.Name+"-1"); err != nil {
				return false, err.Error()
			}
			return strings.Contains("\n"+logs, "\n"+report+"\n"), fmt.Sprintf("want line\n%s\npodman logs %s-1 on %s:\n%s", report, p.Name, p.Machine.Name, logs)
		})
	}
}

func podsPerMachine(pods []seedPod) string {
	n := map[string]int{}
	for _, p := range pods {
		n[p.Machine.Name]++
	}
	var out []string
	for m, k := range n {
		out = append(out, fmt.Sprintf("%s=%d", m, k))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// fleetMachines maps this env's fleet units named prefix… to the machine
// fleet shows them on.
func (e *env) fleetMachines(prefix string) map[string]realfleet.Machine {
	e.t.Helper()
	states, err := e.c.API(e.t).UnitStates()
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]realfleet.Machine{}
	for _, s := range states {
		if m, ok := e.c.Machine(s.MachineID); ok && strings.HasPrefix(s.Name, prefix) {
			out[s.Name] = m
		}
	}
	return out
}

// wantStoppedClean reads the journal of each (stopped) fleet unit on its
// machine: its last stop ended "Deactivated successfully", not "Failed
// with result".
func (e *env) wantStoppedClean(ctx context.Context, units map[string]realfleet.Machine) {
	e.t.Helper()
	if len(units) != 4 {
		e.t.Errorf("fleet units to check: %v, want 4", units)
	}
	for name, m := range units {
		out, err := e.c.Exec(ctx, m, "journalctl", "--no-pager", "-o", "cat", "-u", name)
		if err != nil {
			e.t.Fatalf("journalctl -u %s on %s: %v\n%s", name, m.Name, err, out)
		}
		last := ""
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "Deactivated successfully") || strings.Contains(line, "Failed with result") {
				last = line
			}
		}
		if !strings.Contains(last, "Deactivated successfully") {
			e.t.Errorf("%s on %s did not stop inactive: its journal's last result is %q:\n%s", name, m.Name, last, tail(out, 6))
		}
	}
}

// crashSidekick kills the sidekick of pod p and waits until the pod ran
// again as a whole (new infra and app containers), with the supervisor's
// journal line and the status's restart note seen.
func (e *env) crashSidekick(ctx context.Context, p seedPod, sidekick string) {
	e.t.Helper()
	before, err := e.c.Podmans(ctx, p.Machine)
	if err != nil {
		e.t.Fatal(err)
	}
	ids := map[string]string{}
	for _, ct := range before.Containers {
		ids[ct.Name] = ct.ID
	}
	unit := strings.ReplaceAll(p.Name, "_", ":") + ".service"
	line := fmt.Sprintf("kaylee-pod: %s: app 1 (%s) exited with 137; the pod restarts", p.Name, sidekick)
	start := time.Now()
	if _, err := e.c.Podman(ctx, p.Machine, "kill", p.Name+"-1"); err != nil {
		e.t.Fatal(err)
	}
	note := fmt.Sprintf("replica %s on machine %s (%s) is restarting (1 restart seen)", unit, short(p.Machine.ID), p.Machine.IP)
	var seen string
	e.waitFor("kaylee status countly to say the replica restarts", time.Minute, func() (bool, string) {
		out, _, _ := e.kaylee("status", "countly")
		if strings.Contains(out, note) {
			seen = out
		}
		return seen != "", fmt.Sprintf("want %q in:\n%s", note, out)
	})
	e.t.Logf("kaylee status countly while the pod restarts:\n%s", seen)
	e.waitFor("pod "+p.Name+" running again with new containers", 2*time.Minute, func() (bool, string) {
		st, err := e.c.Podmans(ctx, p.Machine)
		if err != nil {
			return false, err.Error()
		}
		fresh := 0
		for _, ct := range st.Containers {
			if ct.PodName == p.Name && ct.State == "running" && ids[ct.Name] != "" && ct.ID != ids[ct.Name] {
				fresh++
			}
		}
		return fresh == 3, st.String()
	})
	restart := time.Since(start)
	out, err := e.c.Exec(ctx, p.Machine, "journalctl", "--no-pager", "-o", "cat", "-u", unit)
	if err != nil || !strings.Contains("\n"+out, "\n"+line+"\n") {
		e.t.Errorf("the journal of %s on %s has no line %q (%v):\n%s", unit, p.Machine.Name, line, err, tail(out, 30))
	}
	e.waitPhase("countly", "running", time.Minute)
	e.t.Logf("sidekick killed in %s: the pod ran again with a new infra and both apps %s after", p.Name, restart.Round(100*time.Millisecond))
}

// waitRemoved waits until this env has no fleet unit, no status and no pod
// or container (of its prefix) on any machine; it returns the fleet units
// seen failed meanwhile.
func (e *env) waitRemoved(ctx context.Context, prefix string) map[string]string {
	e.t.Helper()
	api := e.c.API(e.t)
	failed := map[string]string{}
	e.waitFor("countly removed", 2*time.Minute, func() (bool, string) {
		states, err := api.UnitStates()
		if err != nil {
			return false, err.Error()
		}
		n := 0
		for _, s := range states {
			if strings.HasPrefix(s.Name, prefix+":") {
				n++
				if s.SystemdActiveState == "failed" {
					failed[s.Name] = s.SystemdSubState
				}
			}
		}
		units, _ := api.Units()
		for _, u := range units {
			if strings.HasPrefix(u.Name, prefix+":") {
				n++
			}
		}
		_, known := e.status("countly")
		var left strings.Builder
		for _, m := range e.c.Machines {
			st, err := e.c.Podmans(ctx, m)
			if err != nil {
				return false, err.Error()
			}
			if st = st.Of(prefix + "_"); !st.Empty() {
				fmt.Fprintf(&left, "%s:\n%s", m.Name, st)
			}
		}
		return n == 0 && !known && left.Len() == 0, fmt.Sprintf("%d fleet units/states, status kept %v, podman:\n%s", n, known, left.String())
	})
	return failed
}

// removePods removes the pods named prefix… on every machine.
func removePods(t *testing.T, c *realfleet.Cluster, prefix string) {
	t.Helper()
	for _, m := range c.Machines {
		out, err := c.Podman(context.Background(), m, "pod", "ps", "--format", "{{.Name}}")
		if err != nil {
			t.Errorf("cleanup: %v", err)
			continue
		}
		for _, name := range strings.Fields(out) {
			if strings.HasPrefix(name, prefix) {
				if _, err := c.Podman(context.Background(), m, "pod", "rm", "--force", "--ignore", name); err != nil {
					t.Errorf("cleanup: %v", err)
				}
			}
		}
	}
}

// podSampler counts, about every second, the unit's pods on each machine
// (podman pod ps) and which of them have a fleet unit with target
// launched, by phase of the test.
type podSampler struct {
	stop, done chan struct{}
	once       sync.Once
	mu         sync.Mutex
	phase      string
	order      []string
	stats      map[string]*podStats
}

type podStats struct {
	samples int
	// pods on one machine: all (stopped ones not yet removed too), of
	// launched fleet units, of one spec
	maxOn, maxLaunchedOn, maxSpecOn int
	maxTotal, maxLaunched           int // pods on all machines
	minRunning                      int // pods Running on all machines
	// the samples behind maxOn, maxLaunchedOn, maxSpecOn and minRunning
	worstOn, worstLaunchedOn, worstSpecOn, worstRunning string
}

func (e *env) samplePods(podPrefix string) *podSampler {
	s := &podSampler{stop: make(chan struct{}), done: make(chan struct{}), stats: map[string]*podStats{}}
	api := e.c.API(e.t)
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			s.mu.Lock()
			phase := s.phase
			s.mu.Unlock()
			byMachine, ok := e.podsNow(podPrefix)
			units, err := api.Units()
			if !ok || err != nil || phase == "" {
				continue
			}
			launched := map[string]bool{}
			for _, u := range units {
				launched[u.Name] = u.DesiredState == "launched"
			}
			s.add(phase, byMachine, launched)
		}
	}()
	return s
}

// podsNow lists, on each machine at once, the pods named podPrefix… as
// "name status".
func (e *env) podsNow(podPrefix string) (map[string][][2]string, bool) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	out := map[string][][2]string{}
	ok := true
	for _, m := range e.c.Machines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			list, err := e.c.Podman(ctx, m, "pod", "ps", "--format", "{{.Name}} {{.Status}}")
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				ok = false
				return
			}
			for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
				if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(f[0], podPrefix) {
					out[m.Name] = append(out[m.Name], [2]string{f[0], f[1]})
				}
			}
		}()
	}
	wg.Wait()
	return out, ok
}

func (s *podSampler) setPhase(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phase = p
	if s.stats[p] == nil {
		s.stats[p] = &podStats{minRunning: 1 << 30}
		s.order = append(s.order, p)
	}
}

func (s *podSampler) add(phase string, byMachine map[string][][2]string, launched map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats[phase]
	st.samples++
	var desc []string
	for m, pods := range byMachine {
		for _, p := range pods {
			desc = append(desc, fmt.Sprintf("%s@%s:%s", p[0], m, p[1]))
		}
	}
	sort.Strings(desc)
	sample := strings.Join(desc, " ")
	worse := func(n int, most *int, worst *string, m string) {
		if n > *most {
			*most, *worst = n, m+": "+sample
		}
	}
	total, nLaunched, running := 0, 0, 0
	for m, pods := range byMachine {
		on, spec := 0, map[string]int{}
		for _, p := range pods {
			if launched[strings.ReplaceAll(p[0], "_", ":")+".service"] {
				on++
			}
			if p[1] == "Running" {
				running++
			}
			if f := strings.Split(p[0], "_"); len(f) == 5 {
				spec[f[2]]++
				worse(spec[f[2]], &st.maxSpecOn, &st.worstSpecOn, m)
			}
		}
		worse(len(pods), &st.maxOn, &st.worstOn, m)
		worse(on, &st.maxLaunchedOn, &st.worstLaunchedOn, m)
		total += len(pods)
		nLaunched += on
	}
	st.maxTotal = max(st.maxTotal, total)
	st.maxLaunched = max(st.maxLaunched, nLaunched)
	if running < st.minRunning {
		st.minRunning, st.worstRunning = running, sample
	}
}

func (s *podSampler) finish() {
	s.once.Do(func() {
		close(s.stop)
		<-s.done
	})
}

// check logs each phase's figures and holds them to the rules (README,
// kaylee server, "the per-host limit in a rollout"): never more than
// perHost pods of one spec on a machine (each spec's Conflicts); outside
// the update, never more than perHost pods on a machine and desired in
// all (a crashed pod restarts as itself); in the update, never more than
// perHost pods of launched fleet units on a machine (a replica's group
// conflict holds it across versions; a pod being stopped may still be
// there while the next starts), never more than
// launched pods of launched units (desired + maxSurge: an old pod being
// stopped no longer counts, and its stop overlaps the next start), never
// fewer than desired Running. cut: the test failed before its end (a
// phase may have few samples).
func (s *podSampler) check(t *testing.T, perHost, desired, launched int, cut bool) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, phase := range s.order {
		st := s.stats[phase]
		t.Logf("%s: %d samples; most pods on a machine %d (%d launched, %d of one spec), most in all %d (%d launched), fewest Running %d",
			phase, st.samples, st.maxOn, st.maxLaunchedOn, st.maxSpecOn, st.maxTotal, st.maxLaunched, st.minRunning)
		if st.samples < 3 && !cut {
			t.Errorf("%s: only %d samples of the pods", phase, st.samples)
		}
		if st.maxSpecOn > perHost {
			t.Errorf("%s: %d pods of one spec on one machine, want at most %d (maxReplicasPerHost): %s", phase, st.maxSpecOn, perHost, st.worstSpecOn)
		}
		if st.maxLaunched > launched {
			t.Errorf("%s: %d pods of launched fleet units, want at most %d (replicas + maxSurge)", phase, st.maxLaunched, launched)
		}
		if phase != "update" {
			if st.maxOn > perHost {
				t.Errorf("%s: %d pods on one machine, want at most %d (maxReplicasPerHost): %s", phase, st.maxOn, perHost, st.worstOn)
			}
			if st.maxTotal > desired {
				t.Errorf("%s: %d pods in all, want at most %d (replicas; a pod restarts as itself)", phase, st.maxTotal, desired)
			}
			continue
		}
		if st.maxLaunchedOn > perHost {
			t.Errorf("update: %d pods of launched fleet units on one machine, want at most %d (maxReplicasPerHost, across versions): %s",
				st.maxLaunchedOn, perHost, st.worstLaunchedOn)
		}
		if st.minRunning < desired {
			t.Errorf("update: only %d pods Running, want at least %d: %s", st.minRunning, desired, st.worstRunning)
		}
	}
}
