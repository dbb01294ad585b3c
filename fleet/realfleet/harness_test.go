package realfleet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
// then the others). A shareable test calls t.Parallel first thing and runs
// beside the other shareable ones (go test -parallel N): everything it
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
	c := realfleet.Require(t)
	e := &env{t: t, c: c, prefix: "/rt-" + unitPrefix, unitPrefix: unitPrefix, dir: t.TempDir()}
	e.clearStore() // what an earlier run on this cluster left
	t.Cleanup(e.cleanup)
	return e
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
	for _, p := range e.procs {
		_ = p.cmd.Process.Signal(os.Interrupt)
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
	deadline := time.Now().Add(time.Minute)
	for {
		units, active := mine()
		if units == 0 || active == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
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
		time.Sleep(time.Second)
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
