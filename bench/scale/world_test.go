package scale

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/fleet/client"
	"github.com/coreos/fleet/schema"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet/fleetlog"
	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// config is a run's settings: KAYLEE_BENCH_* variables (scripts/bench-scale
// sets them from its flags) over the defaults.
type config struct {
	units          []int
	machines       int
	ttl            time.Duration // fleet's agent TTL (machine presence)
	engineInterval time.Duration // fleet's engine reconcile interval
	startDelay     time.Duration // a simulated unit's start to running
	minReady       time.Duration // the agent's --min-ready
	idle           time.Duration // the idle window
	wait           time.Duration // longest wait for a phase
	workers        int           // fleet calls at once in fleet's floor (the scheduler's pool)
	floorAgain     bool          // run fleet's floor a second time before Kaylee's run
	out            string        // results.json, table.txt, logs; "" for none
	profileDir     string        // CPU and heap profiles of the agent; "" for none
	bin            string        // the kaylee binary; "" builds one
}

// benchDefaults are fleet's own timings (agent_ttl 30s, engine reconcile
// every 2s) on 100 machines.
func benchDefaults() config {
	return config{units: []int{100, 500, 1000}, machines: 100, ttl: 30 * time.Second, engineInterval: 2 * time.Second,
		startDelay: fleetsim.DefaultStartDelay, minReady: time.Second, idle: time.Minute, wait: 45 * time.Minute, workers: 8}
}

// fromEnv overrides cfg with the KAYLEE_BENCH_* variables that are set.
func fromEnv(tb testing.TB, cfg config) config {
	tb.Helper()
	if v := os.Getenv("KAYLEE_BENCH_UNITS"); v != "" {
		cfg.units = nil
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 {
				tb.Fatalf("KAYLEE_BENCH_UNITS=%q: want sizes such as 100,500,1000", v)
			}
			cfg.units = append(cfg.units, n)
		}
	}
	ints := map[string]*int{"KAYLEE_BENCH_MACHINES": &cfg.machines, "KAYLEE_BENCH_WORKERS": &cfg.workers}
	for k, p := range ints {
		if v := os.Getenv(k); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				tb.Fatalf("%s=%q: want a positive number", k, v)
			}
			*p = n
		}
	}
	durs := map[string]*time.Duration{"KAYLEE_BENCH_TTL": &cfg.ttl, "KAYLEE_BENCH_ENGINE_INTERVAL": &cfg.engineInterval,
		"KAYLEE_BENCH_START_DELAY": &cfg.startDelay, "KAYLEE_BENCH_MIN_READY": &cfg.minReady, "KAYLEE_BENCH_IDLE": &cfg.idle,
		"KAYLEE_BENCH_WAIT": &cfg.wait}
	for k, p := range durs {
		if v := os.Getenv(k); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				tb.Fatalf("%s=%q: want a duration such as 30s", k, v)
			}
			*p = d
		}
	}
	if v := os.Getenv("KAYLEE_BENCH_OUT"); v != "" {
		cfg.out = v
	}
	if v := os.Getenv("KAYLEE_BENCH_PROFILE_DIR"); v != "" {
		cfg.profileDir = v
	}
	if v := os.Getenv("KAYLEE_BENCH_BIN"); v != "" {
		cfg.bin = v
	}
	if v := os.Getenv("KAYLEE_BENCH_FLOOR_AGAIN"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			tb.Fatalf("KAYLEE_BENCH_FLOOR_AGAIN=%q: want 1 or 0", v)
		}
		cfg.floorAgain = b
	}
	for _, d := range []string{cfg.out, cfg.profileDir} {
		if d != "" {
			if err := os.MkdirAll(d, 0o755); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return cfg
}

// kayleeBinary is cfg.bin, or a kaylee built for the test.
func kayleeBinary(tb testing.TB, cfg config) string {
	tb.Helper()
	if cfg.bin != "" {
		return cfg.bin
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(tb.TempDir(), "kaylee")
	out, err := exec.Command(gobin, "build", "-o", bin, "github.com/kaylee-gitops/kaylee/cmd/kaylee").CombinedOutput()
	if err != nil {
		tb.Fatalf("go build ./cmd/kaylee: %v\n%s", err, out)
	}
	return bin
}

// heartbeats counts fleetsim's warnings that a machine failed to renew
// its presence.
type heartbeats struct{ failed atomic.Int64 }

func (h *heartbeats) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *heartbeats) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "heartbeat failed") {
		h.failed.Add(1)
	}
	return nil
}
func (h *heartbeats) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *heartbeats) WithGroup(string) slog.Handler      { return h }

// machineWatch records the fewest machines fleet lists, every 2 s.
type machineWatch struct {
	min  atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func watchMachines(api client.API, n int) *machineWatch {
	w := &machineWatch{stop: make(chan struct{}), done: make(chan struct{})}
	w.min.Store(int64(n))
	go func() {
		defer close(w.done)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
			if ms, err := api.Machines(); err == nil && int64(len(ms)) < w.min.Load() {
				w.min.Store(int64(len(ms)))
			}
		}
	}()
	return w
}

func (w *machineWatch) Stop() int {
	close(w.stop)
	<-w.done
	return int(w.min.Load())
}

// pool runs f on every item, n at once; the first error stops it.
func pool[T any](items []T, n int, f func(T) error) error {
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		jobs  = make(chan T)
		quit  = make(chan struct{})
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range jobs {
				if err := f(it); err != nil {
					once.Do(func() { first = err; close(quit) })
				}
			}
		}()
	}
feed:
	for _, it := range items {
		select {
		case jobs <- it:
		case <-quit:
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	return first
}

// running reports whether a fleet unit state is active/running.
func running(active, sub string) bool { return active == "active" && sub == "running" }

// floor creates units through fleet's API (workers at once) and returns
// how long until fleet reported every one active/running, and until the
// machines' systemd ran them all; then it destroys them and waits until
// fleet has none left.
func floor(tb testing.TB, c *fleetsim.Cluster, units []*schema.Unit, workers int, wait time.Duration) (fleetSecs, systemdSecs float64) {
	tb.Helper()
	api := c.API()
	names := make(map[string]bool, len(units))
	for _, u := range units {
		names[u.Name] = true
	}
	count := func(states []*schema.UnitState) (present, up int) {
		for _, s := range states {
			if names[s.Name] {
				present++
				if running(s.SystemdActiveState, s.SystemdSubState) {
					up++
				}
			}
		}
		return
	}
	t0 := time.Now()
	done := make(chan error, 1)
	go func() { done <- pool(units, workers, api.CreateUnit) }()
	deadline := t0.Add(wait)
	// fleet's published states are one etcd read of every state: poll
	// them less often when there are many.
	poll := 250 * time.Millisecond
	if len(units) > 600 {
		poll = time.Second
	}
	var created bool
	for fleetSecs == 0 || systemdSecs == 0 {
		if !created {
			select {
			case err := <-done:
				if err != nil {
					tb.Fatalf("fleet's floor: CreateUnit: %v", err)
				}
				created = true
			default:
			}
		}
		if systemdSecs == 0 {
			if _, up := count(c.UnitStates()); up == len(units) {
				systemdSecs = time.Since(t0).Seconds()
			}
		}
		if fleetSecs == 0 {
			if states, err := api.UnitStates(); err == nil {
				if _, up := count(states); up == len(units) {
					fleetSecs = time.Since(t0).Seconds()
				}
			}
		}
		if time.Now().After(deadline) {
			_, up := count(c.UnitStates())
			tb.Fatalf("fleet's floor: after %s, %d of %d fleet units run on the machines", wait, up, len(units))
		}
		time.Sleep(poll)
	}
	if err := pool(units, workers, func(u *schema.Unit) error { return api.DestroyUnit(u.Name) }); err != nil {
		tb.Fatalf("fleet's floor: DestroyUnit: %v", err)
	}
	for {
		present, _ := count(c.UnitStates())
		if states, err := api.UnitStates(); err == nil && present == 0 {
			if p, _ := count(states); p == 0 {
				break
			}
		}
		if time.Now().After(deadline.Add(wait)) {
			tb.Fatalf("fleet's floor: %d fleet units still on the machines after destroying them", present)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fleetSecs, systemdSecs
}

// storeWatch follows Kaylee's keys: when the first and the n-th unit key
// appeared, and when every unit's status was running at its spec.
type storeWatch struct {
	hashes map[string]string // unit → its spec hash

	mu        sync.Mutex
	units     map[string]bool
	running   map[string]bool
	firstKey  time.Time
	allKeys   time.Time
	allUp     time.Time
	cancel    context.CancelFunc
	lastEvent time.Time
}

func watchStore(tb testing.TB, c *clientv3.Client, prefix string, hashes map[string]string) *storeWatch {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &storeWatch{hashes: hashes, units: map[string]bool{}, running: map[string]bool{}, cancel: cancel}
	tb.Cleanup(cancel)
	r, err := c.Get(ctx, prefix+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(1))
	if err != nil {
		tb.Fatal(err)
	}
	ch := c.Watch(ctx, prefix+"/", clientv3.WithPrefix(), clientv3.WithRev(r.Header.Revision+1))
	go func() {
		for resp := range ch {
			now := time.Now()
			w.mu.Lock()
			w.lastEvent = now
			for _, ev := range resp.Events {
				w.event(prefix, ev, now)
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *storeWatch) event(prefix string, ev *clientv3.Event, now time.Time) {
	key := string(ev.Kv.Key)
	if name, ok := strings.CutPrefix(key, prefix+"/units/"); ok && ev.Type == clientv3.EventTypePut && w.hashes[name] != "" {
		if w.firstKey.IsZero() {
			w.firstKey = now
		}
		w.units[name] = true
		if len(w.units) == len(w.hashes) && w.allKeys.IsZero() {
			w.allKeys = now
		}
		return
	}
	name, ok := strings.CutPrefix(key, prefix+"/status/")
	if !ok || w.hashes[name] == "" {
		return
	}
	var st store.Status
	up := ev.Type == clientv3.EventTypePut && json.Unmarshal(ev.Kv.Value, &st) == nil &&
		st.Phase == store.PhaseRunning && st.SpecHash == w.hashes[name] && st.Running >= Replicas
	if up {
		w.running[name] = true
	} else {
		delete(w.running, name)
	}
	if len(w.running) == len(w.hashes) && w.allUp.IsZero() {
		w.allUp = now
	}
}

// times are the first key, all keys and all running (zero until then),
// and how many units run.
func (w *storeWatch) times() (first, all, up time.Time, nUp int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.firstKey, w.allKeys, w.allUp, len(w.running)
}

// fleetPoll is how often the harness reads fleet's published states for
// n units: one etcd read of every state.
func fleetPoll(n int) time.Duration {
	if n > 200 {
		return time.Second
	}
	return 250 * time.Millisecond
}

// fleetRunning counts the units whose replicas all run at their spec in
// fleet's published states.
func fleetRunning(states []*schema.UnitState, hashes map[string]string) int {
	return fullUnits(states, hashes)
}

// simRunning counts the units whose replicas (k2:<name>:<hash>:…) all run
// on the machines' systemd at their spec.
func simRunning(c *fleetsim.Cluster, hashes map[string]string) int {
	return fullUnits(c.UnitStates(), hashes)
}

// fullUnits counts the units of hashes with all their replicas running
// at their spec in states.
func fullUnits(states []*schema.UnitState, hashes map[string]string) int {
	per := map[string]int{}
	for _, s := range states {
		n, ok := deploy.ParseUnitName(deploy.DefaultUnitPrefix, s.Name)
		if ok && hashes[n.Name] == n.SpecHash && running(s.SystemdActiveState, s.SystemdSubState) {
			per[n.Name]++
		}
	}
	full := 0
	for _, k := range per {
		if k >= Replicas {
			full++
		}
	}
	return full
}

// agentProc is kaylee agent running as a process of its own.
type agentProc struct {
	cmd  *exec.Cmd
	addr string
	log  string
}

func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startAgent runs bin agent on the repository at url, its etcd at
// etcdURL, and waits until it is ready.
func startAgent(tb testing.TB, cfg config, bin, etcdURL, url, secretFile, logFile string) *agentProc {
	tb.Helper()
	addr := freeAddr(tb)
	args := []string{"agent", "--repo", url, "--source", "units", "--path", "units", "--cache-dir", tb.TempDir(),
		"--interval", "1h", "--listen", addr, "--webhook-secret-file", secretFile, "--allow-empty",
		"--default-engine", "docker", "--min-ready", cfg.minReady.String(),
		// The run measures the time to production: at 1,000 units fleet
		// took longer than the default 5 minutes to place some replicas,
		// and the deadline failed (and removed) them instead.
		"--rollout-timeout", cfg.wait.String()}
	if cfg.profileDir != "" {
		args = append(args, "--pprof")
	}
	cmd := exec.Command(bin, args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KAYLEE_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "KAYLEE_ETCD_ENDPOINTS="+etcdURL)
	lf, err := os.Create(logFile)
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting %s: %v", bin, err)
	}
	p := &agentProc{cmd: cmd, addr: addr, log: logFile}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); lf.Close(); close(exited) }()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case <-exited:
			tb.Fatalf("kaylee agent exited: %s", tail(logFile))
		default:
		}
		if code, _ := httpGet(addr, "/readyz"); code == http.StatusOK {
			return p
		}
		if time.Now().After(deadline) {
			tb.Fatalf("kaylee agent not ready after 2m: %s", tail(logFile))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(file string) string {
	b, _ := os.ReadFile(file)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (p *agentProc) stat(tb testing.TB) ProcStat {
	tb.Helper()
	s, err := ReadProc(p.cmd.Process.Pid)
	if err != nil {
		tb.Fatalf("reading the agent's /proc: %v", err)
	}
	return s
}

func selfStat(tb testing.TB) ProcStat {
	tb.Helper()
	s, err := ReadProc(os.Getpid())
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

var httpClient = &http.Client{Timeout: time.Minute}

func httpGet(addr, path string) (int, string) {
	resp, err := httpClient.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// webhook posts a GitHub push of rev to the agent, signed with secret.
func webhook(tb testing.TB, addr, secret, url, rev string) {
	tb.Helper()
	body := `{"after":"` + rev + `","repository":{"clone_url":"` + url + `"}}`
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	req, _ := http.NewRequest("POST", "http://"+addr+"/hooks/git", strings.NewReader(body))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	resp, err := httpClient.Do(req)
	if err != nil {
		tb.Fatalf("webhook: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		tb.Fatalf("webhook: %d %s, want 202", resp.StatusCode, b)
	}
}

// syncNow runs kaylee sync --now units against etcdURL.
func syncNow(tb testing.TB, bin, etcdURL string) {
	tb.Helper()
	cmd := exec.Command(bin, "sync", "--now", "units")
	cmd.Env = append(os.Environ(), "KAYLEE_ETCD_ENDPOINTS="+etcdURL)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("kaylee sync --now: %v\n%s", err, out)
	}
}

// etcdUnary is how many unary v3 requests etcd has handled (every
// client's), from its /metrics.
func etcdUnary(tb testing.TB, etcdURL string) int64 {
	tb.Helper()
	resp, err := httpClient.Get(etcdURL + "/metrics")
	if err != nil {
		tb.Fatalf("etcd /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return int64(Sum(string(b), "grpc_server_handled_total", map[string]string{"grpc_type": "unary"}))
}

// settle waits until etcd handles no v3 request for a second (the
// scheduler's passes after a rollout are done), at most max.
func settle(tb testing.TB, etcdURL string, max time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(max)
	last := etcdUnary(tb, etcdURL)
	for time.Now().Before(deadline) {
		time.Sleep(time.Second)
		n := etcdUnary(tb, etcdURL)
		if n == last {
			return
		}
		last = n
	}
}

// syncPasses is the agent's count and total time of sync passes.
func syncPasses(tb testing.TB, addr string) (count, seconds float64) {
	tb.Helper()
	code, m := httpGet(addr, "/metrics")
	if code != http.StatusOK {
		tb.Fatalf("agent /metrics: %d %s", code, m)
	}
	src := map[string]string{"source": "units"}
	return Sum(m, "kaylee_sync_duration_seconds_count", src), Sum(m, "kaylee_sync_duration_seconds_sum", src)
}

// cpuProfiles collects the agent's CPU profile in chunks of at most
// chunk (the agent's listener cuts a response after 30 s) into
// dir/name-NNN.pb.gz, until stop (the chunk under way ends first) or,
// when until is set, until then.
type cpuProfiles struct {
	stop, done chan struct{}
}

func collectCPU(tb testing.TB, addr, dir, name string, chunk time.Duration, until time.Time) *cpuProfiles {
	p := &cpuProfiles{stop: make(chan struct{}), done: make(chan struct{})}
	if dir == "" {
		close(p.done)
		return p
	}
	go func() {
		defer close(p.done)
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			default:
			}
			d := chunk
			if !until.IsZero() {
				if d = min(d, time.Until(until)); d < time.Second {
					return
				}
			}
			code, body := httpGet(addr, fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Round(time.Second)/time.Second)))
			if code != http.StatusOK {
				tb.Logf("CPU profile %s-%03d: %d %.200s", name, i, code, body)
				return
			}
			_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%03d.pb.gz", name, i)), []byte(body), 0o644)
		}
	}()
	return p
}

// Stop ends the collection once the chunk under way is written.
func (p *cpuProfiles) Stop() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

// measure runs one size, n units on cfg.machines machines, and returns
// its row.
func measure(tb testing.TB, cfg config, bin string, n int) Row {
	tb.Helper()
	row := Row{Units: n, Machines: cfg.machines}
	tag := fmt.Sprintf("%d-%d", n, cfg.machines)
	logDir := cfg.out
	if logDir == "" {
		logDir = tb.TempDir()
	}
	benchStart := selfStat(tb)

	e := newEtcd(tb)
	hb := &heartbeats{}
	fleetLog(tb, filepath.Join(logDir, "fleet-"+tag+".log"))
	mcs := fleetsim.Machines(cfg.machines)
	machines := make([]deploy.Machine, len(mcs))
	for i := range mcs {
		mcs[i].Metadata = MachineMetadata(i)
		machines[i] = deploy.Machine{ID: mcs[i].ID, Metadata: mcs[i].Metadata}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cluster, err := fleetsim.Start(ctx, fleetsim.Config{Endpoints: e.Endpoints(), Machines: mcs, TTL: cfg.ttl,
		EngineInterval: cfg.engineInterval, StartDelay: cfg.startDelay, Logger: slog.New(hb)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(cluster.Close)
	mw := watchMachines(cluster.API(), cfg.machines)
	samples := ""
	if cfg.out != "" {
		samples = filepath.Join(cfg.out, "samples-"+tag+".tsv")
	}
	smp := startSampler(tb, samples, 10*time.Second, e.ClientURL(), cluster)
	defer smp.Stop()
	hprof := profileHarness(tb, cfg.profileDir, tag, &smp.phase, time.Minute)
	defer hprof.Stop()
	defer func() {
		if row.MinMachines == 0 { // failed half way
			mw.Stop()
		}
	}()

	files := Units(n)
	specs, err := Specs(files)
	if err != nil {
		tb.Fatal(err)
	}
	hashes := make(map[string]string, n)
	for _, s := range specs {
		hashes[s.Name] = s.Hash(0)
	}

	// fleet's engine elects its leader and its agents settle first: one
	// unit through fleet, out of the figures.
	smp.phase.Store("warmup")
	warm := &schema.Unit{Name: "kw:warmup.service", DesiredState: "launched",
		Options: []*schema.UnitOption{{Section: "Service", Name: "ExecStart", Value: "/bin/true"}}}
	floor(tb, cluster, []*schema.Unit{warm}, 1, cfg.wait)

	// (a) fleet's floor: the same fleet units, under a prefix of their
	// own (fleet may keep a destroyed name's state a while).
	fu, err := Render(specs, machines, "kf")
	if err != nil {
		tb.Fatal(err)
	}
	// What fleet leaves of a phase's destroyed units is removed before
	// the next phase, which would otherwise read it too (dropLeftovers).
	dropFloor := func(phase string) {
		left, err := dropLeftovers(cluster)
		if err != nil {
			tb.Fatalf("removing fleet's leftovers of %s: %v", phase, err)
		}
		tb.Logf("%d units: removed what fleet left of %s: %d unit files, %d empty fleet unit directories", n, phase, left.UnitFiles, left.Dirs)
	}
	smp.phase.Store("floor")
	row.FleetFloor, row.FleetFloorSystemd = floor(tb, cluster, fu, cfg.workers, cfg.wait)
	tb.Logf("%d units: fleet's floor %.1fs (systemd %.1fs)", n, row.FleetFloor, row.FleetFloorSystemd)
	dropFloor("the floor")
	if cfg.floorAgain {
		// The same work again, on a cluster that has now run it once, as
		// Kaylee's run below does: what of fleet's lag there is the order.
		again, err := Render(specs, machines, "kg")
		if err != nil {
			tb.Fatal(err)
		}
		smp.phase.Store("floor-again")
		row.FleetFloorAgain, _ = floor(tb, cluster, again, cfg.workers, cfg.wait)
		tb.Logf("%d units: fleet's floor again %.1fs", n, row.FleetFloorAgain)
		dropFloor("the floor again")
	}

	// (b) Kaylee's time to production.
	repo := newRepo(tb)
	url := repo.ServeHTTP("", "")
	const secret = "bench-s3cret"
	secretFile := filepath.Join(tb.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	proxy := startProxy(tb, e.ClientURL())
	smp.phase.Store("kaylee")
	agent := startAgent(tb, cfg, bin, proxy.URL(), url, secretFile, filepath.Join(logDir, "kaylee-"+tag+".log"))
	smp.agent.Store(agent)
	smp.proxy.Store(proxy)
	kStart := agent.stat(tb)
	w := watchStore(tb, e.Client(tb), store.DefaultPrefix, hashes)
	write := make(map[string]string, n)
	for _, f := range files {
		write[f.Path] = f.YAML
	}
	repo.Write(write)
	rev := repo.Commit(fmt.Sprintf("%d units", n))

	kPush0, bPush0 := agent.stat(tb), selfStat(tb)
	prof := collectCPU(tb, agent.addr, cfg.profileDir, "push-"+tag, 5*time.Second, time.Time{})
	t0 := time.Now()
	webhook(tb, agent.addr, secret, url, rev)
	deadline := t0.Add(cfg.wait)
	seen := false // every status was seen running
	api := cluster.API()
	var lastFleetPoll, lastSimPoll time.Time
	for {
		first, all, up, nUp := w.times()
		// The machines' systemd is read as often as fleet's floor reads
		// it (each read holds every simulated machine's systemd and
		// parses every fleet unit's name, in the process fleet runs in),
		// and at every turn once the statuses say all run.
		sim := -1
		if !up.IsZero() || time.Since(lastSimPoll) >= fleetPoll(n) {
			lastSimPoll, sim = time.Now(), simRunning(cluster, hashes)
		}
		// When the machines' systemd, and fleet's published states, had
		// every replica running: how much of Kaylee's time is spent
		// noticing it.
		if row.KayleeSystemd == 0 && sim == n {
			row.KayleeSystemd = time.Since(t0).Seconds()
		}
		if row.KayleeFleet == 0 && time.Since(lastFleetPoll) >= fleetPoll(n) {
			lastFleetPoll = time.Now()
			if states, err := api.UnitStates(); err == nil && fleetRunning(states, hashes) == n {
				row.KayleeFleet = time.Since(t0).Seconds()
			}
		}
		if !up.IsZero() {
			// Running in Kaylee's statuses and on the machines' systemd:
			// when the statuses were, if systemd agrees at once.
			if sim == n {
				end := time.Now()
				if !seen {
					end = up
				}
				row.Kaylee = end.Sub(t0).Seconds()
				row.WebhookFirstKey, row.WebhookAllKeys = first.Sub(t0).Seconds(), all.Sub(t0).Seconds()
				break
			}
			seen = true
		}
		if time.Now().After(deadline) {
			tb.Fatalf("kaylee: after %s, %d of %d units running (their fleet units: %d); agent log: %s", cfg.wait, nUp, n, simRunning(cluster, hashes), tail(agent.log))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if row.KayleeFleet == 0 { // between two reads of fleet's states
		row.KayleeFleet = time.Since(t0).Seconds()
	}
	if row.KayleeSystemd == 0 {
		row.KayleeSystemd = row.KayleeFleet
	}
	kPush1, bPush1 := agent.stat(tb), selfStat(tb)
	row.KayleeCPUPush, row.BenchCPUPush = kPush1.CPUSeconds-kPush0.CPUSeconds, bPush1.CPUSeconds-bPush0.CPUSeconds
	prof.Stop()
	tb.Logf("%d units: kaylee %.1fs (first key %.3fs, all keys %.3fs)", n, row.Kaylee, row.WebhookFirstKey, row.WebhookAllKeys)

	// (c) a no-op pass. A webhook naming the commit already fetched
	// makes none (the loop drops it), so ask for one as people do:
	// kaylee sync --now, whose own few requests count with the pass's.
	smp.phase.Store("noop")
	settle(tb, e.ClientURL(), time.Minute)
	c0, s0 := syncPasses(tb, agent.addr)
	v3a, v2a := etcdUnary(tb, e.ClientURL()), proxy.V2Requests()
	t1 := time.Now()
	syncNow(tb, bin, e.ClientURL())
	for {
		c, s := syncPasses(tb, agent.addr)
		if c > c0 {
			row.NoopWall, row.NoopPass = time.Since(t1).Seconds(), (s-s0)/(c-c0)
			break
		}
		if time.Since(t1) > 5*time.Minute {
			tb.Fatalf("no sync pass within 5m of kaylee sync --now; agent log: %s", tail(agent.log))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	row.NoopEtcdV3, row.NoopEtcdV2 = etcdUnary(tb, e.ClientURL())-v3a, proxy.V2Requests()-v2a
	row.NoopWindow = time.Since(t1).Seconds()

	// (d) idle.
	smp.phase.Store("idle")
	settle(tb, e.ClientURL(), time.Minute)
	i0, v3b, v2b := agent.stat(tb), etcdUnary(tb, e.ClientURL()), proxy.V2Requests()
	it0 := time.Now()
	idleProf := collectCPU(tb, agent.addr, cfg.profileDir, "idle-"+tag, 20*time.Second, it0.Add(cfg.idle))
	time.Sleep(cfg.idle)
	idleProf.Stop()
	i1, v3c, v2c := agent.stat(tb), etcdUnary(tb, e.ClientURL()), proxy.V2Requests()
	row.IdleSeconds = time.Since(it0).Seconds()
	row.IdleCPU = (i1.CPUSeconds - i0.CPUSeconds) / row.IdleSeconds
	row.IdleEtcdV3PerS, row.IdleEtcdV2PerS = float64(v3c-v3b)/row.IdleSeconds, float64(v2c-v2b)/row.IdleSeconds

	// (e) the whole size.
	if cfg.profileDir != "" {
		if code, body := httpGet(agent.addr, "/debug/pprof/heap"); code == http.StatusOK {
			_ = os.WriteFile(filepath.Join(cfg.profileDir, "heap-"+tag+".pb.gz"), []byte(body), 0o644)
		}
	}
	kEnd := agent.stat(tb)
	row.KayleeCPU = kEnd.CPUSeconds - kStart.CPUSeconds
	row.KayleePeakMiB = float64(kEnd.PeakRSS) / (1 << 20)
	row.BenchCPU = selfStat(tb).CPUSeconds - benchStart.CPUSeconds
	row.MinMachines = mw.Stop()
	row.HeartbeatFailures = int(hb.failed.Load())
	return row
}

func newEtcd(tb testing.TB) *etcdtest.Server {
	tb.Helper()
	return etcdtest.New(tb)
}

// fleetLog sends fleet's own log lines to file for the size, each after
// the time it was written (fleet's own lines have none): how long fleet's
// engine took per placement, and when its leadership changed.
func fleetLog(tb testing.TB, file string) {
	tb.Helper()
	f, err := os.Create(file)
	if err != nil {
		tb.Fatal(err)
	}
	restore := fleetlog.Redirect(stamped{f})
	tb.Cleanup(func() { restore(); f.Close() })
}

// stamped writes each line after its time. fleet's logger writes one
// whole line per Write, one at a time.
type stamped struct{ w io.Writer }

func (s stamped) Write(p []byte) (int, error) {
	b := append(time.Now().AppendFormat(make([]byte, 0, 16+len(p)), "15:04:05.000 "), p...)
	if _, err := s.w.Write(b); err != nil {
		return 0, err
	}
	return len(p), nil
}

// newRepo is the benchmark's git repository, with one commit and no unit.
func newRepo(tb testing.TB) *gittest.Repo {
	tb.Helper()
	r := gittest.NewRepo(tb)
	r.Write(map[string]string{"units/README.md": "Kaylee's scale benchmark: one unit file per unit\n"})
	r.Commit("start")
	return r
}

// writeReport writes rep to dir as results.json and table.txt.
func writeReport(tb testing.TB, dir string, rep Report) {
	tb.Helper()
	if dir == "" {
		return
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		tb.Error(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "table.txt"), []byte(rep.Table()), 0o644); err != nil {
		tb.Error(err)
	}
}

// newReport describes the machine and the settings.
func newReport(cfg config) Report {
	rep := Report{NProc: runtime.NumCPU(), Go: runtime.Version(), Started: time.Now().UTC().Format(time.RFC3339),
		TTL: cfg.ttl.String(), EngineInterval: cfg.engineInterval.String(), StartDelay: cfg.startDelay.String(), MinReady: cfg.minReady.String()}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		rep.Commit = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
			rep.Commit += "+changes"
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				rep.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return rep
}
