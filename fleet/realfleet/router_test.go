package realfleet_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kaylee-gitops/kaylee/fleet/realfleet"
	"github.com/kaylee-gitops/kaylee/internal/testutil"
	"github.com/kaylee-gitops/kaylee/store"
)

// routerServerFlagsEnv holds extra `kaylee server` flags for
// TestRealRouterUnderLoad, split on spaces (e.g. "--drain-delay 2s"), to
// measure the same load with and without them.
const routerServerFlagsEnv = "KAYLEE_ROUTER_TEST_SERVER_FLAGS"

// routerPort is the port the routed unit's replicas publish on their
// machine's address (-p ${COREOS_PUBLIC_IPV4}:routerPort:8080).
const routerPort = 18426

// routerHosts are the names the load asks for, round robin: the two
// domains and a name the wildcard matches.
var routerHosts = []string{"shop.test", "www.shop.test", "a.help.shop.test"}

// routedUnit is a docker unit of the test image with two domains and a
// wildcard, 3 replicas at most one per machine, each publishing its port on
// its machine's address (from /etc/environment, as on CoreOS: the machines
// share the host's network, so each needs its own address), with a health
// check. roll is an env value: changing it rolls the unit.
func routedUnit(roll string) string {
	return fmt.Sprintf(`name: web
engine: docker
replicas: 3
maxReplicasPerHost: 1
envFiles: [/etc/environment]
args: ["-p ${COREOS_PUBLIC_IPV4}:%d:8080"]
domains: [shop.test, www.shop.test, "*.help.shop.test"]
ports: [{name: http, port: %d}]
env:
- name: ROLL
  value: "%s"
apps:
- image: %s:v1
  args: [--version=v1]
health:
  http: {port: 8080, path: /healthz}
  interval: 1s
  timeout: 1s
  startPeriod: 12s
  failures: 2
`, routerPort, routerPort, roll, realfleet.Image)
}

// requireCaddy is Debian's caddy: without it the test is skipped, except
// under CI=true or when the real tier is required, where that is a failure.
func requireCaddy(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("caddy")
	if err != nil {
		if os.Getenv("CI") == "true" || os.Getenv(realfleet.EnvRequired) == "1" {
			t.Fatalf("caddy is not installed (apt-get install caddy): %v", err)
		}
		t.Skipf("caddy is not installed (apt-get install caddy): %v", err)
	}
	return p
}

// router starts `kaylee router` with caddy on free loopback ports and
// returns the address of its HTTP listener and of its status endpoint.
func (e *env) router(caddy string) (string, string) {
	e.t.Helper()
	listen, status := testutil.FreeAddr(e.t), testutil.FreeAddr(e.t)
	e.start("router", "--caddy", caddy, "--listen", listen, "--status-listen", status,
		"--admin-socket", filepath.Join(e.dir, "caddy.sock"))
	return listen, status
}

// routes is `kaylee routes -o json`.
func (e *env) routes() []struct {
	Domain    string   `json:"domain"`
	Unit      string   `json:"unit"`
	Endpoints []string `json:"endpoints"`
} {
	e.t.Helper()
	var rs []struct {
		Domain    string   `json:"domain"`
		Unit      string   `json:"unit"`
		Endpoints []string `json:"endpoints"`
	}
	out := e.must("routes", "-o", "json")
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		e.t.Fatalf("kaylee routes -o json: %v\n%s", err, out)
	}
	return rs
}

// routerGet asks the router for path as host.
func routerGet(ctx context.Context, client *http.Client, addr, host, path string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// load sends 50 requests a second through the router, round robin over
// routerHosts, each with a 2 s timeout, until finish.
type load struct {
	stop chan struct{}
	done chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	res      loadResult
	versions map[string]int
}

type loadResult struct {
	Sent, Failed        int
	Slowest             time.Duration
	FirstFail, LastFail time.Time
	Reasons             map[string]int // why requests failed: "host: 502 …" or the error
	Took                time.Duration
}

func (r loadResult) String() string {
	s := fmt.Sprintf("%d sent in %s, %d failed, slowest %s", r.Sent, r.Took.Round(100*time.Millisecond), r.Failed, r.Slowest.Round(time.Millisecond))
	if r.Failed > 0 {
		s += fmt.Sprintf(", failures from %s to %s (%s): %v", r.FirstFail.Format("15:04:05.000"), r.LastFail.Format("15:04:05.000"),
			r.LastFail.Sub(r.FirstFail).Round(time.Millisecond), r.Reasons)
	}
	return s
}

func startLoad(client *http.Client, addr string) *load {
	l := &load{stop: make(chan struct{}), done: make(chan struct{}), res: loadResult{Reasons: map[string]int{}}, versions: map[string]int{}}
	start := time.Now()
	go func() {
		defer close(l.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				l.wg.Wait()
				l.mu.Lock()
				l.res.Took = time.Since(start)
				l.mu.Unlock()
				return
			case <-tick.C:
			}
			host := routerHosts[i%len(routerHosts)]
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				l.one(client, addr, host)
			}()
		}
	}()
	return l
}

func (l *load) one(client *http.Client, addr, host string) {
	t0 := time.Now()
	code, body, err := routerGet(context.Background(), client, addr, host, "/version")
	took := time.Since(t0)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.res.Sent++
	l.res.Slowest = max(l.res.Slowest, took)
	if err == nil && code == http.StatusOK {
		l.versions[strings.TrimSpace(body)]++
		return
	}
	why := fmt.Sprint(err)
	if err == nil {
		why = fmt.Sprintf("%d %s", code, strings.TrimSpace(body))
	}
	l.res.Failed++
	l.res.Reasons[host+": "+why]++
	if l.res.FirstFail.IsZero() {
		l.res.FirstFail = t0
	}
	l.res.LastFail = t0
}

func (l *load) finish() loadResult {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.res
}

// stopWatch records, for the margin of drain, when each replica of the
// env's unit left the instance registry (an etcd watch on
// <prefix>/instances/<unit>/) and when docker sent its container SIGTERM
// and saw it die (docker events).
type stopWatch struct {
	mu      sync.Mutex
	deleted map[string][]time.Time // instance → times its key was deleted
	term    map[string][]time.Time // container → times docker sent it SIGTERM
	died    map[string][]time.Time // container → times it died
}

func (e *env) watchStops(ctx context.Context, unit string) *stopWatch {
	e.t.Helper()
	w := &stopWatch{deleted: map[string][]time.Time{}, term: map[string][]time.Time{}, died: map[string][]time.Time{}}
	c, err := store.Dial(ctx, store.DialConfig{Endpoints: []string{e.c.Endpoint}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	dir := e.prefix + "/instances/" + unit + "/"
	wch := c.Watch(ctx, dir, clientv3.WithPrefix())
	go func() {
		for resp := range wch {
			now := time.Now()
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypeDelete {
					w.mu.Lock()
					k := strings.TrimPrefix(string(ev.Kv.Key), dir)
					w.deleted[k] = append(w.deleted[k], now)
					w.mu.Unlock()
				}
			}
		}
	}()
	cmd := exec.CommandContext(ctx, "/usr/bin/docker", "events", "--filter", "type=container", "--filter", "label=io.kaylee.unit="+unit,
		"--format", `{{.TimeNano}} {{.Action}} {{index .Actor.Attributes "name"}} {{index .Actor.Attributes "signal"}}`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { _ = cmd.Wait() }()
	go w.readEvents(out, e.unitPrefix+"_")
	return w
}

func (w *stopWatch) readEvents(r io.Reader, namePrefix string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || !strings.HasPrefix(f[2], namePrefix) {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		at := time.Unix(0, ns)
		w.mu.Lock()
		switch {
		case f[1] == "kill" && len(f) > 3 && f[3] == "15":
			w.term[f[2]] = append(w.term[f[2]], at)
		case f[1] == "die":
			w.died[f[2]] = append(w.died[f[2]], at)
		}
		w.mu.Unlock()
	}
}

// margin is, for one replica stopped after since: how long before docker
// sent its container SIGTERM its key left the registry, and how long its
// container took to drain and die.
type margin struct {
	Instance      string
	Margin, Drain time.Duration
	Missing       string // what was not seen
}

func firstAfter(ts []time.Time, since time.Time) (time.Time, bool) {
	for _, t := range ts {
		if !t.Before(since) {
			return t, true
		}
	}
	return time.Time{}, false
}

func (w *stopWatch) margins(instances []string, since time.Time) []margin {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []margin
	for _, in := range instances {
		m := margin{Instance: in}
		name := instanceOf(in)
		del, okDel := firstAfter(w.deleted[in], since)
		term, okTerm := firstAfter(w.term[name], since)
		died, okDied := firstAfter(w.died[name], since)
		switch {
		case !okDel:
			m.Missing = "its registry key's deletion"
		case !okTerm:
			m.Missing = "docker's SIGTERM"
		default:
			m.Margin = term.Sub(del)
		}
		if okTerm && okDied {
			m.Drain = died.Sub(term)
		}
		out = append(out, m)
	}
	return out
}

func (m margin) String() string {
	if m.Missing != "" {
		return fmt.Sprintf("%s: %s not seen", m.Instance, m.Missing)
	}
	when := fmt.Sprintf("%s before", m.Margin.Round(time.Millisecond))
	if m.Margin < 0 {
		when = fmt.Sprintf("%s after", (-m.Margin).Round(time.Millisecond))
	}
	return fmt.Sprintf("%s: left the registry %s SIGTERM, died %s after it", m.Instance, when, m.Drain.Round(time.Millisecond))
}

// registry lists the unit's instances in etcd.
func (e *env) registry(ctx context.Context, unit string) map[string]store.Instance {
	e.t.Helper()
	c, err := store.Dial(ctx, store.DialConfig{Endpoints: []string{e.c.Endpoint}})
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	dir := e.prefix + "/instances/" + unit + "/"
	r, err := c.Get(ctx, dir, clientv3.WithPrefix())
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]store.Instance{}
	for _, kv := range r.Kvs {
		var in store.Instance
		if err := json.Unmarshal(kv.Value, &in); err != nil {
			e.t.Fatalf("instance %s: %v", kv.Key, err)
		}
		out[strings.TrimPrefix(string(kv.Key), dir)] = in
	}
	return out
}

// waitRouted waits until every domain of web routes to 3 endpoints and
// each host answers 200 through the router.
func (e *env) waitRouted(client *http.Client, addr string, timeout time.Duration) {
	e.t.Helper()
	e.waitFor("3 endpoints routed for each domain", timeout, func() (bool, string) {
		rs := e.routes()
		var desc []string
		ok := len(rs) == 3
		// Each endpoint is a machine's address and the published port.
		var want []string
		for _, m := range e.c.Machines {
			want = append(want, net.JoinHostPort(m.IP, strconv.Itoa(routerPort)))
		}
		for _, r := range rs {
			desc = append(desc, fmt.Sprintf("%s→%s %v", r.Domain, r.Unit, r.Endpoints))
			ok = ok && r.Unit == "web" && len(r.Endpoints) == 3
			for _, ep := range r.Endpoints {
				ok = ok && slices.Contains(want, ep)
			}
		}
		for _, h := range routerHosts {
			code, body, err := routerGet(context.Background(), client, addr, h, "/version")
			desc = append(desc, fmt.Sprintf("%s: %d %q %v", h, code, strings.TrimSpace(body), err))
			ok = ok && err == nil && code == http.StatusOK
		}
		return ok, strings.Join(desc, "; ")
	})
}

// waitReplaced waits until the unit runs 3 serving containers, none of
// them one of before, and its phase is running.
func (e *env) waitReplaced(before map[string]bool, timeout time.Duration) {
	e.t.Helper()
	e.waitFor("3 new containers serving, phase running", timeout, func() (bool, string) {
		cs := e.containers("web")
		fresh := 0
		for _, c := range cs {
			if !before[c.ID] && c.Serving(context.Background()) {
				fresh++
			}
		}
		st, _ := e.status("web")
		return fresh == 3 && len(cs) == 3 && st.Phase == "running" && st.Running == 3,
			fmt.Sprintf("%d of %d containers new and serving; %s %d/%d: %s", fresh, len(cs), st.Phase, st.Running, st.Desired, st.Message)
	})
}

func containerIDs(cs []realfleet.Container) map[string]bool {
	out := map[string]bool{}
	for _, c := range cs {
		out[c.ID] = true
	}
	return out
}

// routerFigures are what TestRealRouterUnderLoad logs, one line a phase,
// for FAULTS.md.
type routerFigures struct {
	t     *testing.T
	lines []string
}

func (f *routerFigures) add(format string, a ...any) {
	f.t.Helper()
	line := fmt.Sprintf(format, a...)
	f.t.Log(line)
	f.lines = append(f.lines, line)
}

// TestRealRouterUnderLoad: a unit with two domains and a wildcard, 3
// replicas on 3 machines, served through `kaylee router` (a real caddy),
// under a load of 50 requests a second: no request fails through a rolling
// update nor a kaylee restart; through a machine kill the failures stop
// within the agent TTL and a little. An unknown host gets 404. It logs the
// figures (sent, failed, slowest; the drain margin of each stopped replica;
// the machine kill's failure window). Extra server flags come from
// KAYLEE_ROUTER_TEST_SERVER_FLAGS.
func TestRealRouterUnderLoad(t *testing.T) {
	// Exclusive (no t.Parallel, see newEnv): it kills machines, drops packets to
	// one with iptables and rewrites /etc/environment.
	caddy := requireCaddy(t)
	e := newEnv(t, "ro")
	e.c.WriteEnvironment(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The scheduler's drain at its default (the real tier's other tests
	// run without it), unless the env says otherwise.
	extra := strings.Fields(os.Getenv(routerServerFlagsEnv))
	if !slices.ContainsFunc(extra, func(f string) bool { return strings.HasPrefix(f, "--drain-delay") }) {
		extra = append(extra, "--drain-delay=2s")
	}
	e.server(extra...)
	figs := &routerFigures{t: t}
	figs.add("server flags: --min-ready 3s --lease-ttl 5s %s (the others at their defaults); caddy %s", strings.Join(extra, " "), caddy)

	e.must("run", "--wait", "--timeout", "3m", e.unit("web", routedUnit("1")))
	e.waitContainers("web", 3, "v1", 30*time.Second)
	if pm := perMachine(e.containers("web")); len(pm) != 3 {
		t.Fatalf("3 replicas with maxReplicasPerHost 1 on %d machines: %v", len(pm), pm)
	}
	addr, statusAddr := e.router(caddy)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, IdleConnTimeout: 30 * time.Second}}
	e.waitRouted(client, addr, time.Minute)
	code, body, err := realfleet.GetURL(ctx, "http://"+statusAddr+"/status", 2*time.Second)
	t.Logf("router status: %d %s %v", code, strings.TrimSpace(body), err)

	// An unknown host.
	code, body, err = routerGet(ctx, client, addr, "nobody.test", "/version")
	if err != nil || code != http.StatusNotFound || !strings.Contains(body, "no unit serves nobody.test") {
		t.Errorf("GET nobody.test through the router: %d %q %v; want 404 no unit serves nobody.test", code, body, err)
	}
	stops := e.watchStops(ctx, "web")

	// (a) a rolling update: an env value changes.
	// The phases are not subtests: env's helpers fail env's t.
	{
		before, ids := e.registry(ctx, "web"), containerIDs(e.containers("web"))
		since := time.Now()
		l := startLoad(client, addr)
		e.must("run", "--wait", "--timeout", "5m", e.unit("web", routedUnit("2")))
		e.waitReplaced(ids, time.Minute)
		e.waitRouted(client, addr, 30*time.Second)
		res := l.finish()
		figs.add("rolling update (env change) of 3 replicas: %s", res)
		e.logMargins(figs, stops.margins(slices.Sorted(maps.Keys(before)), since))
		if res.Failed != 0 || res.Sent < 100 {
			t.Errorf("through the rolling update: %s; want 0 failed (and at least 100 sent)", res)
		}
	}

	// (b) kaylee restart.
	{
		before, ids := e.registry(ctx, "web"), containerIDs(e.containers("web"))
		since := time.Now()
		l := startLoad(client, addr)
		e.must("restart", "web")
		e.waitReplaced(ids, 5*time.Minute)
		e.waitRouted(client, addr, 30*time.Second)
		res := l.finish()
		figs.add("kaylee restart of 3 replicas: %s", res)
		e.logMargins(figs, stops.margins(slices.Sorted(maps.Keys(before)), since))
		if res.Failed != 0 || res.Sent < 100 {
			t.Errorf("through kaylee restart: %s; want 0 failed (and at least 100 sent)", res)
		}
	}

	// (c) a machine that runs a replica is killed: here its address stays
	// up (a loopback alias of the host), so connections to it are refused
	// at once; (d) the same, with its address silent, as after a real power
	// cut: connections to it time out.
	e.routerMachineKill(ctx, client, addr, figs, false)
	e.routerMachineKill(ctx, client, addr, figs, true)
	t.Logf("figures:\n%s", strings.Join(figs.lines, "\n"))
}

func (e *env) logMargins(figs *routerFigures, ms []margin) {
	e.t.Helper()
	var ds []string
	for _, m := range ms {
		figs.add("  %s", m)
		if m.Missing != "" {
			e.t.Errorf("margin of %s: %s not seen", m.Instance, m.Missing)
			continue
		}
		ds = append(ds, m.Margin.Round(time.Millisecond).String())
		if m.Margin <= 0 {
			e.t.Errorf("%s got SIGTERM %s before it left the registry: the router may have sent it requests while it stopped", m.Instance, (-m.Margin).Round(time.Millisecond))
		}
	}
	figs.add("  margins (registry key deleted → SIGTERM): %s", strings.Join(ds, ", "))
}

// agentTTL is the cluster's fleet agent TTL (realfleet's AgentTTL:
// scripts/real-cluster's KAYLEE_REAL_CLUSTER_TTL when the machines booted).
func agentTTL(t *testing.T, c *realfleet.Cluster) time.Duration {
	t.Helper()
	d, err := c.AgentTTL()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// silence drops the packets sent to the machine's address on the routed
// port (iptables INPUT), until the returned function takes the rule away.
func silence(t *testing.T, m realfleet.Machine) func() {
	t.Helper()
	rule := []string{"INPUT", "-d", m.IP + "/32", "-p", "tcp", "--dport", strconv.Itoa(routerPort), "-j", "DROP"}
	if out, err := exec.Command("iptables", append([]string{"-I"}, rule...)...).CombinedOutput(); err != nil {
		t.Fatalf("iptables -I %s: %v\n%s", strings.Join(rule, " "), err, out)
	}
	var once sync.Once
	undo := func() {
		once.Do(func() {
			if out, err := exec.Command("iptables", append([]string{"-D"}, rule...)...).CombinedOutput(); err != nil {
				t.Errorf("iptables -D %s: %v\n%s", strings.Join(rule, " "), err, out)
			}
		})
	}
	t.Cleanup(undo)
	return undo
}

// routerMachineKill kills the machine of one replica under load, until
// the registry has dropped its replica (fleet's agent TTL) and 5 s more;
// the failures must stop within the TTL and 15 s (the scheduler's pass
// and the router's reload). With silent, the machine's address drops
// packets on the routed port from the kill on (silence). Then the machine
// comes back and the unit has its 3 replicas again.
func (e *env) routerMachineKill(ctx context.Context, client *http.Client, addr string, figs *routerFigures, silent bool) {
	t := e.t
	reg := e.registry(ctx, "web")
	var victim realfleet.Machine
	for _, in := range reg {
		if m, ok := e.c.Machine(in.MachineID); ok {
			victim = m
			break
		}
	}
	if victim.Name == "" {
		t.Fatalf("no replica of web on a machine of the cluster: %v", reg)
	}
	t.Cleanup(func() { e.c.Revive(t) })
	ttl := agentTTL(t, e.c)
	l := startLoad(client, addr)
	time.Sleep(2 * time.Second)
	killed := time.Now()
	undo := func() {}
	if silent {
		undo = silence(t, victim)
	}
	e.c.Kill(t, victim)
	dropped := e.waitFor("the dead machine's replica out of the registry", ttl+time.Minute, func() (bool, string) {
		var on []string
		for k, in := range e.registry(ctx, "web") {
			if in.MachineID == victim.ID {
				on = append(on, k)
			}
		}
		return len(on) == 0, fmt.Sprintf("still registered on %s: %v", victim.Name, on)
	})
	time.Sleep(5 * time.Second)
	res := l.finish()
	undo()
	how := "killed"
	if silent {
		how = "killed, its address silent,"
	}
	figs.add("machine %s %s (agent TTL %s): its replica left the registry %s after the kill; %s", victim.Name, how, ttl,
		dropped.Round(100*time.Millisecond), res)
	if res.Failed > 0 {
		figs.add("  failures from %s to %s after the kill", res.FirstFail.Sub(killed).Round(time.Millisecond), res.LastFail.Sub(killed).Round(time.Millisecond))
		if bound := ttl + 15*time.Second; res.LastFail.Sub(killed) > bound {
			t.Errorf("requests still failed %s after the kill, beyond the agent TTL %s and 15 s: %s", res.LastFail.Sub(killed), ttl, res)
		}
	}
	e.c.Revive(t)
	e.waitFor("3 replicas in the registry after the machine is back", 3*time.Minute, func() (bool, string) {
		reg := e.registry(ctx, "web")
		return len(reg) == 3, fmt.Sprint(slices.Sorted(maps.Keys(reg)))
	})
	e.waitRouted(client, addr, 30*time.Second)
}
