package realfleet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kaylee-gitops/kaylee/fleet/realfleet"
	"github.com/kaylee-gitops/kaylee/store"
)

// bin is the kaylee binary built by TestMain (empty when the tier does not run).
var bin string

func TestMain(m *testing.M) {
	// The shareable tests take their -parallel slots from the admission
	// (shareable), longest first; go test's own limit would admit them in
	// the order they happen to wake, before the admission sees them, so it
	// is lifted here and -parallel N is the admission's.
	flag.Parse()
	slots, err := strconv.Atoi(flag.Lookup("test.parallel").Value.String())
	if err != nil || slots < 1 {
		fmt.Fprintf(os.Stderr, "-test.parallel %v: %v\n", flag.Lookup("test.parallel").Value, err)
		os.Exit(2)
	}
	admission.slots = slots
	if err := flag.Set("test.parallel", "1000"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	code := func() int {
		if os.Getenv(realfleet.EnvRequired) == "1" {
			dir, err := os.MkdirTemp("", "kaylee-realtier-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			if bin, err = realfleet.Build(ctx, dir); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			// Every version tag is the same binary: behaviour comes from args.
			if err := realfleet.BuildImage(ctx, dir, "v1", "v2", "v3"); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			// countly and rkt-sidekick, for the podman tests (pushed to
			// the cluster's registry by the tests that use them).
			if err := realfleet.BuildPodImages(ctx, dir); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// shareableSeconds is how long each shareable test ran (seconds, rounded):
// the "--- PASS: … (Ns)" of go test -count=1 -v -timeout 40m -parallel 4
// -run '^TestReal' ./fleet/realfleet/ on scripts/real-cluster up 3, on 2
// cores beside other go tests (load average 2 to 18), at ab6709e, when go
// test still admitted them in the order they woke (the longest, 310 s,
// started second; PodmanFields, 190 s, started last and ran alone for a
// minute at the end). The admission starts them longest first, so that the
// tier does not end with one long test running alone; a test missing here
// counts as longer than all of them. Only the order matters: figures some
// seconds off change nothing. HealthChecks, RollingUpdateAndRemove and
// CrashLoopFailsFast were exclusive until c1394d0: theirs are from that
// CI run, alone on the cluster (HealthChecks plus the 18 s its failing
// version now waits longer).
var shareableSeconds = map[string]int{
	"TestRealSeedCountlyOnPodman":        310,
	"TestRealPodmanFields":               190,
	"TestRealRollbackSuspend":            172,
	"TestRealFailureEvidence":            156,
	"TestRealHealthChecks":               137,
	"TestRealMountServiceGate":           115,
	"TestRealAgentGit":                   83,
	"TestRealScaleKeepsReplicas":         70,
	"TestRealPullPolicy":                 69,
	"TestRealSlowAndNeverStarting":       62,
	"TestRealRollingUpdateAndRemove":     60,
	"TestRealSecretsPodman":              52,
	"TestRealCompatRktPullAndGC":         51,
	"TestRealDrift":                      48,
	"TestRealSecretsGoneAfterDestroy":    36,
	"TestRealReplicasEnvVolumes":         34,
	"TestRealCrashLoopFailsFast":         31,
	"TestRealSecretsLong":                27,
	"TestRealCompatPluginArgsAndUnmount": 27,
	"TestRealFleetHTTPAPI":               25,
	"TestRealCompatEnvNewlines":          16,
}

// admission hands the shareable tests their slots (-parallel N of them,
// set in TestMain), longest first (shareableSeconds). Package state of the
// harness, as bin and prefixes are.
var admission = &admitter{seconds: shareableSeconds}

// admitter gives tests slots, longest first. A test registers before
// t.Parallel, in go test's sequential phase, so every test of the run has
// registered before the first one asks for a slot. Slots are given only
// from then on: a free slot goes to the longest test not yet admitted
// (kept for it until it asks).
type admitter struct {
	seconds map[string]int // by test name; a name missing is longest

	mu    sync.Mutex
	slots int       // free
	queue []*ticket // registered, not yet admitted: longest first
}

type ticket struct {
	seconds int
	admit   chan struct{} // closed: the test has its slot
}

// shareable is the first thing a shareable test does (see env): it calls
// t.Parallel and returns when the admission gives the test its slot, which
// it keeps until the test and its cleanups end.
func shareable(t *testing.T) {
	t.Helper()
	admission.take(t)
}

// take calls t.Parallel and waits for t's slot (see admitter).
func (a *admitter) take(t *testing.T) {
	t.Helper()
	secs, known := a.seconds[t.Name()]
	if !known {
		secs = math.MaxInt
	}
	tk := &ticket{seconds: secs, admit: make(chan struct{})}
	a.mu.Lock()
	i := len(a.queue)
	for i > 0 && a.queue[i-1].seconds < secs {
		i--
	}
	a.queue = slices.Insert(a.queue, i, tk)
	a.mu.Unlock()
	release := func() {
		a.mu.Lock()
		a.slots++
		a.admitNext()
		a.mu.Unlock()
	}
	parallel := false
	defer func() {
		if parallel {
			return
		}
		// t.Parallel panicked: the test never takes its slot.
		a.mu.Lock()
		n := len(a.queue)
		a.queue = slices.DeleteFunc(a.queue, func(x *ticket) bool { return x == tk })
		a.mu.Unlock()
		if len(a.queue) == n { // admitted already
			release()
		}
	}()
	t.Parallel()
	parallel = true
	// Past t.Parallel: go test's sequential phase is over, every test of
	// the run has registered. Slots are given from now on.
	asked := time.Now()
	a.mu.Lock()
	a.admitNext()
	a.mu.Unlock()
	<-tk.admit
	t.Cleanup(release)
	if waited := time.Since(asked); waited > time.Second {
		// go test counts it in the test's time: say how much of it it was.
		t.Logf("admitted after waiting %s for a slot (longest first)", waited.Round(100*time.Millisecond))
	}
}

// admitNext gives free slots to the longest tests not yet admitted (a.mu
// held).
func (a *admitter) admitNext() {
	for a.slots > 0 && len(a.queue) > 0 {
		close(a.queue[0].admit)
		a.queue = a.queue[1:]
		a.slots--
	}
}

// env is one test's Kaylee on the shared real cluster: its own etcd prefix
// and unit prefix (each test's differs), so tests never see (or prune) each
// other's units.
//
// Tests share the cluster in two ways. An exclusive test disturbs what the
// others rely on (it kills a machine, rewrites a machine-wide file such as
// /etc/kaylee/age/keys.txt or /etc/environment, removes images others use,
// or counts what is on a machine rather than what its prefix names): it
// does not call t.Parallel, so it runs with the cluster to itself (go test
// runs the top-level tests that do not call t.Parallel one after another,
// then the others). A shareable test calls shareable(t) first thing (it
// calls t.Parallel) and runs beside the other shareable ones (N at a time,
// go test -parallel N, longest first: see admission): everything it
// looks at is told apart by its prefix (containers, fleet units, pods,
// podman's containers, files it writes) and its timing bounds hold on a
// busy cluster. A new test is exclusive unless it is shown to be neither.
type env struct {
	t          *testing.T
	c          *realfleet.Cluster
	prefix     string // etcd prefix
	unitPrefix string
	dir        string

	mu    sync.Mutex
	procs []*proc
}

// prefixes maps each unit prefix newEnv gave out to its test's name.
var prefixes sync.Map

type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func newEnv(t *testing.T, unitPrefix string) *env {
	t.Helper()
	if other, taken := prefixes.LoadOrStore(unitPrefix, t.Name()); taken && other != t.Name() {
		t.Fatalf("unit prefix %q is %s's too: each test needs its own (they may run at once and prune each other's units)", unitPrefix, other)
	}
	c := requireCluster(t)
	e := &env{t: t, c: c, prefix: "/rt-" + unitPrefix, unitPrefix: unitPrefix, dir: t.TempDir()}
	e.clearStore() // what an earlier run on this cluster left
	t.Cleanup(e.cleanup)
	return e
}

// cluster is the real cluster this test binary brought up: the first test
// runs scripts/real-cluster up and machines (realfleet.Require), the others
// get the same Cluster while all that up started still runs (Alive: pid
// files, no process started); after a test that killed a machine and did
// not boot it again, the next one runs up again. up and machines once per
// test took about a second of bash, curl and docker each, under a lock.
// Package state of the harness, as bin and prefixes are.
var cluster struct {
	mu sync.Mutex
	c  *realfleet.Cluster
}

// requireCluster is realfleet.Require, once per test binary (see cluster).
func requireCluster(t testing.TB) *realfleet.Cluster {
	t.Helper()
	cluster.mu.Lock()
	defer cluster.mu.Unlock()
	if c := cluster.c; c != nil && c.Alive() {
		return c
	}
	c := realfleet.Require(t)
	cluster.c = c
	return c
}

// clearStore deletes this env's keys in etcd (units, statuses, history…).
func (e *env) clearStore() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := store.Dial(ctx, store.DialConfig{Endpoints: []string{e.c.Endpoint}})
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Delete(ctx, e.prefix+"/", clientv3.WithPrefix()); err != nil {
		e.t.Fatalf("clearing %s in etcd: %v", e.prefix, err)
	}
}

func (e *env) environ() []string {
	return append(os.Environ(), "KAYLEE_ETCD_ENDPOINTS="+e.c.Endpoint, "KAYLEE_ETCD_PREFIX="+e.prefix)
}

// kaylee runs one CLI command to completion.
func (e *env) kaylee(args ...string) (string, string, int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = e.environ()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			e.t.Fatalf("kaylee %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// must runs a CLI command that must succeed.
func (e *env) must(args ...string) string {
	e.t.Helper()
	out, errs, code := e.kaylee(args...)
	if code != 0 {
		e.t.Fatalf("kaylee %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// start runs a long-lived kaylee command (server, agent) until the test ends;
// its log is printed when the test fails.
func (e *env) start(args ...string) *proc {
	e.t.Helper()
	p := &proc{log: filepath.Join(e.dir, fmt.Sprintf("%s-%d.log", args[0], len(e.procs))), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		e.t.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = e.environ()
	// A test binary that dies must not leave a scheduler behind on the
	// shared cluster.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); f.Close(); close(p.done) }()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p
}

// server starts `kaylee server` for this env with extra flags, without
// HTTP endpoints (a test may run two, and they would share --listen's
// default port).
func (e *env) server(flags ...string) *proc {
	args := []string{"server", "--unit-prefix", e.unitPrefix, "--min-ready", "3s", "--lease-ttl", "5s", "--listen="}
	if !slices.ContainsFunc(flags, func(f string) bool { return strings.HasPrefix(f, "--drain-delay") }) {
		// The drain (2s at each step of a rollout) is the router test's
		// subject; the others run without it, as cmd/kaylee's do.
		args = append(args, "--drain-delay=0")
	}
	return e.start(append(args, flags...)...)
}

func (e *env) stopProcs() {
	e.mu.Lock()
	defer e.mu.Unlock()
	// All are told at once, then waited for: each stops on its own.
	for _, p := range e.procs {
		_ = p.cmd.Process.Signal(os.Interrupt)
	}
	for _, p := range e.procs {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if e.t.Failed() {
			b, _ := os.ReadFile(p.log)
			e.t.Logf("--- %s:\n%s", filepath.Base(p.log), tail(string(b), 80))
		}
	}
	e.procs = nil
}

// cleanup stops Kaylee, then takes this env's fleet units down the safe
// way (stop, wait, destroy: fleet's destroy alone may leave the process
// running) and removes their containers, so the next test starts on an
// empty cluster. A container that outlives all that is a leak: an error.
func (e *env) cleanup() {
	e.stopProcs()
	api := e.c.API(e.t)
	mine := func() (units, active int) {
		us, err := api.Units()
		if err != nil {
			e.t.Logf("cleanup: listing fleet units: %v", err)
		}
		for _, u := range us {
			if strings.HasPrefix(u.Name, e.unitPrefix+":") {
				units++
				if u.DesiredState == "launched" {
					_ = api.SetUnitTargetState(u.Name, "loaded")
				}
			}
		}
		states, _ := api.UnitStates()
		for _, s := range states {
			if strings.HasPrefix(s.Name, e.unitPrefix+":") && s.SystemdActiveState != "inactive" && s.SystemdActiveState != "failed" {
				active++
			}
		}
		return units, active
	}
	// Polled every 250ms (fleet's registry in etcd, no process started):
	// once a second left most tests' cleanup waiting a second more than
	// fleet took, twice.
	deadline := time.Now().Add(time.Minute)
	for {
		units, active := mine()
		if units == 0 || active == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	us, _ := api.Units()
	for _, u := range us {
		if strings.HasPrefix(u.Name, e.unitPrefix+":") {
			_ = api.DestroyUnit(u.Name)
		}
	}
	for time.Now().Before(deadline) {
		if units, _ := mine(); units == 0 {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if left := e.mine(context.Background(), ""); len(left) > 0 {
		e.t.Errorf("cleanup: containers left after their fleet units were stopped and destroyed: %v", left)
	}
	realfleet.RemoveContainers(context.Background(), e.unitPrefix+"_")
	e.clearStore()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// unit writes a unit file and returns its path.
func (e *env) unit(name, body string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name+".yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// status is `kaylee status NAME -o json`; ok is false for an unknown unit.
func (e *env) status(name string) (store.Status, bool) {
	e.t.Helper()
	out, errs, code := e.kaylee("status", name, "-o", "json")
	if code != 0 {
		if strings.Contains(errs, name) {
			return store.Status{}, false
		}
		e.t.Fatalf("kaylee status %s: exit %d: %s", name, code, errs)
	}
	var st store.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		e.t.Fatalf("kaylee status %s -o json: %v\n%s", name, err, out)
	}
	return st, true
}

// waitFor polls cond every 500ms until it holds or timeout passes; what is
// the last description of the state, for the failure message.
func (e *env) waitFor(what string, timeout time.Duration, cond func() (bool, string)) time.Duration {
	e.t.Helper()
	start := time.Now()
	last := ""
	for time.Since(start) < timeout {
		ok, desc := cond()
		if ok {
			return time.Since(start)
		}
		last = desc
		time.Sleep(500 * time.Millisecond)
	}
	e.t.Fatalf("%s: not within %s; last seen: %s", what, timeout, last)
	return 0
}

// waitPhase waits until the unit's status has phase (and, if spec is not
// empty, that spec hash) and returns it.
func (e *env) waitPhase(name, phase string, timeout time.Duration) (store.Status, time.Duration) {
	e.t.Helper()
	var st store.Status
	d := e.waitFor(name+" "+phase, timeout, func() (bool, string) {
		var ok bool
		st, ok = e.status(name)
		return ok && st.Phase == phase, fmt.Sprintf("%s %d/%d: %s", st.Phase, st.Running, st.Desired, st.Message)
	})
	return st, d
}

// containers lists the unit's containers of this env (failing the test on
// error).
func (e *env) containers(name string) []realfleet.Container {
	e.t.Helper()
	return e.mine(context.Background(), name)
}

// mine lists the containers of this env's unit name ("": of every unit),
// told apart from other tests' by the unit prefix in their names.
func (e *env) mine(ctx context.Context, name string) []realfleet.Container {
	e.t.Helper()
	cs, err := realfleet.Containers(ctx, name)
	if err != nil {
		e.t.Fatal(err)
	}
	out := cs[:0]
	for _, c := range cs {
		if strings.HasPrefix(c.Name, e.unitPrefix+"_") {
			out = append(out, c)
		}
	}
	return out
}

// waitContainers waits until the unit has n running containers that serve
// /healthz with the given /version, and returns them.
func (e *env) waitContainers(name string, n int, version string, timeout time.Duration) []realfleet.Container {
	e.t.Helper()
	var cs []realfleet.Container
	e.waitFor(fmt.Sprintf("%d containers of %s at %s", n, name, version), timeout, func() (bool, string) {
		cs = e.containers(name)
		good := 0
		var desc []string
		for _, c := range cs {
			_, v, err := c.Get(context.Background(), "/version")
			desc = append(desc, fmt.Sprintf("%s@%s=%q(%v)", c.Name, short(c.Machine), strings.TrimSpace(v), err))
			if err == nil && strings.TrimSpace(v) == version && c.Running {
				good++
			}
		}
		return good == n && len(cs) == n, strings.Join(desc, " ")
	})
	return cs
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// perMachine counts containers by machine ID.
func perMachine(cs []realfleet.Container) map[string]int {
	m := map[string]int{}
	for _, c := range cs {
		m[c.Machine]++
	}
	return m
}

// sampler counts, every 200ms, the unit's containers and those serving
// /healthz, and keeps the extremes.
type sampler struct {
	stop      chan struct{}
	done      chan struct{}
	mu        sync.Mutex
	samples   int
	minServe  int
	maxTotal  int
	worstDesc string
	// maxLaunched: the most containers whose fleet unit had target
	// launched (up or starting; not one Kaylee is stopping).
	maxLaunched int
}

func (e *env) sample(name string) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{}), minServe: 1 << 30}
	api := e.c.API(e.t)
	go func() {
		defer close(s.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			cs, err := realfleet.Containers(context.Background(), name)
			if err != nil {
				continue
			}
			mine := cs[:0]
			for _, c := range cs {
				if strings.HasPrefix(c.Name, e.unitPrefix+"_") {
					mine = append(mine, c)
				}
			}
			cs = mine
			launched := 0
			if units, err := api.Units(); err == nil {
				target := map[string]string{}
				for _, u := range units {
					target[u.Name] = u.DesiredState
				}
				for _, c := range cs {
					if target[strings.ReplaceAll(c.Name, "_", ":")+".service"] == "launched" {
						launched++
					}
				}
			}
			serving := 0
			var desc []string
			for _, c := range cs {
				ok := c.Running && c.Serving(context.Background())
				if ok {
					serving++
				}
				desc = append(desc, fmt.Sprintf("%s:%v", c.Name, ok))
			}
			s.mu.Lock()
			s.samples++
			if serving < s.minServe {
				s.minServe, s.worstDesc = serving, strings.Join(desc, " ")
			}
			s.maxTotal = max(s.maxTotal, len(cs))
			s.maxLaunched = max(s.maxLaunched, launched)
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *sampler) finish() (samples, minServe, maxTotal int, worst string) {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples, s.minServe, s.maxTotal, s.worstDesc
}
