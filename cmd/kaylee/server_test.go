package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// The README's first command: kaylee dev, then kaylee run --wait on the
// examples from another "terminal", status, a failed rollout, rm.
func TestDevSchedulesExamples(t *testing.T) {
	t.Parallel()
	addr := freePort(t)
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": "http://" + addr}
	p := startKaylee(t, nil, "dev", "--listen-client", "http://"+addr, "--data-dir", t.TempDir(), "--min-ready", "500ms")
	waitOutput(t, p.out, "ready:", 60*time.Second)

	r := kaylee(t, env, "run", "--wait", "--timeout", "2m", "testdata/examples")
	if r.code != 0 {
		t.Fatalf("run --wait examples: exit %d\nstdout:\n%s\nstderr:\n%s\ndev stderr:\n%s", r.code, r.stdout, r.err, p.errb.String())
	}
	for _, want := range []string{"countly stored", "countly: running, 4/4 running", "node-exporter: running, 3/3 running", "ingress: running, 3/3 running", "db-primary: running, 1/1", "search: running, 2/2", "api: running, 6/6"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("run --wait output lacks %q:\n%s", want, r.stdout)
		}
	}

	r = kaylee(t, env, "status", "db-primary", "-o", "json")
	var st struct {
		Name, Phase, Message string
		Desired, Running     int
		Units                []struct{ Name, MachineID, MachineIP, ActiveState, SubState string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != 0 {
		t.Fatalf("status -o json: exit %d, %v: %s %s", r.code, err, r.stdout, r.err)
	}
	if st.Name != "db-primary" || st.Phase != "running" || len(st.Units) != 1 || st.Units[0].MachineIP != "192.0.2.3" ||
		st.Units[0].ActiveState != "active" || st.Units[0].SubState != "running" || !strings.HasPrefix(st.Units[0].Name, "k2:db-primary:") {
		t.Fatalf("status of db-primary: %+v", st)
	}
	r = kaylee(t, env, "status")
	if r.code != 0 || !strings.Contains(r.stdout, "NAME") || strings.Count(r.stdout, " running ") != 6 {
		t.Fatalf("status table: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	if r := kaylee(t, env, "status", "nope"); r.code != 1 || !strings.Contains(r.err, `no unit named "nope"`) {
		t.Fatalf("status of an unknown unit: exit %d, %q", r.code, r.err)
	}

	// A failing version: run --wait exits 1 and names the unit; the old
	// version keeps running.
	dir := writeFiles(t, map[string]string{"search.yaml": "name: search\nreplicas: 2\nmaxReplicasPerHost: 1\napps:\n- image: docker://sim-fail/search\n"})
	r = kaylee(t, env, "run", "--wait", "--timeout", "2m", dir)
	if r.code != 1 || !strings.Contains(r.err, "kaylee: rollout of search failed (see kaylee status search)") || !strings.Contains(r.stdout, "search: failed") {
		t.Fatalf("failing rollout: exit %d\n%s\n%s", r.code, r.stdout, r.err)
	}
	// The old version keeps running: at full strength again once the
	// new replicas are gone (a new replica that was ready for a moment
	// before crashing took an old one's place, which the scheduler
	// brings back: restorePrevious).
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		r = kaylee(t, env, "status", "search", "-o", "json")
		err := json.Unmarshal([]byte(r.stdout), &st)
		if err == nil && st.Phase == "failed" && st.Running == 2 {
			break
		}
		if err != nil || st.Phase != "failed" || time.Now().After(deadline) {
			t.Fatalf("status after the failed rollout (60s for the old version back at 2 running): %+v (%v)", st, err)
		}
	}

	// rm: the scheduler destroys its fleet units and drops the status.
	if r := kaylee(t, env, "rm", "countly"); r.code != 0 {
		t.Fatalf("rm: %d %s", r.code, r.err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		r = kaylee(t, env, "status", "countly")
		if r.code == 1 && strings.Contains(r.err, `no unit named "countly"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("countly still has a status after rm:\n%s%s", r.stdout, r.err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// kaylee server on its own, against an etcd and fleet it does not own;
// restart rolls the unit; a bad flag gets a clear error.
func TestServerCommand(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	startFleet(t, e, 2)
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	srv := startKaylee(t, env, "server", "--min-ready", "500ms", "--lease-ttl", "2s", "--log-format", "json")
	dir := writeFiles(t, map[string]string{"web.yaml": "name: web\nreplicas: 2\napps:\n- image: docker://nginx\n"})
	if r := kaylee(t, env, "run", "--wait", "--timeout", "2m", dir); r.code != 0 || !strings.Contains(r.stdout, "web: running, 2/2") {
		t.Fatalf("run --wait: exit %d\n%s\n%s\nserver:\n%s", r.code, r.stdout, r.err, srv.errb.String())
	}
	before := kaylee(t, env, "status", "web", "-o", "json").stdout
	if r := kaylee(t, env, "restart", "web"); r.code != 0 || !strings.Contains(r.stdout, "web restart 1 requested") {
		t.Fatalf("restart: %d %s %s", r.code, r.stdout, r.err)
	}
	var st struct{ Phase, SpecHash string }
	var prev struct{ SpecHash string }
	_ = json.Unmarshal([]byte(before), &prev)
	deadline := time.Now().Add(90 * time.Second)
	for st.Phase != "running" || st.SpecHash == prev.SpecHash {
		if time.Now().After(deadline) {
			t.Fatalf("restart did not roll: %+v (before %s)", st, prev.SpecHash)
		}
		time.Sleep(300 * time.Millisecond)
		_ = json.Unmarshal([]byte(kaylee(t, env, "status", "web", "-o", "json").stdout), &st)
	}
	if !strings.Contains(srv.errb.String(), `"msg":"became leader"`) {
		t.Errorf("server log (json) lacks the leadership line:\n%s", srv.errb.String())
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"server", "--fleet-endpoint", "ftp://x"}, `--fleet-endpoint: fleet endpoint "ftp://x": use unix:///path/to/fleet.sock or http(s)://host:port`},
		{[]string{"server", "--unit-prefix", "K2:"}, `unit prefix "K2:": use 1 to 16 lowercase letters or digits`},
		{[]string{"server", "--log-format", "xml"}, `--log-format "xml": use text or json`},
		{[]string{"server", "--max-restarts", "0"}, `--max-restarts 0: use at least 1`},
		{[]string{"server", "--machine-loss-grace", "0s"}, `--machine-loss-grace 0s: use a positive duration`},
		{[]string{"server", "--etcd-endpoints", "http://127.0.0.1:1"}, "does not answer"},
	} {
		r := kaylee(t, env, tt.args...)
		if r.code == 0 || !strings.Contains(r.err, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want %q", tt.args, r.code, r.err, tt.want)
		}
	}
}

// The README's first command, on a repository holding the examples:
// kaylee dev --repo REPO --path examples shows every example running.
func TestDevWithRepo(t *testing.T) {
	t.Parallel()
	repo := gittest.NewRepo(t)
	files := map[string]string{}
	for _, name := range []string{"api.yaml", "countly.yaml", "db-primary.yaml", "ingress.yaml", "node-exporter.yaml", "search.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata/examples", name))
		if err != nil {
			t.Fatal(err)
		}
		files["examples/"+name] = string(b)
	}
	repo.Write(files)
	rev := repo.Commit("examples")
	addr := freePort(t)
	p := startKaylee(t, nil, "dev", "--repo", repo.Dir, "--path", "examples", "--listen-client", "http://"+addr,
		"--data-dir", t.TempDir(), "--cache-dir", t.TempDir(), "--listen", freePort(t), "--min-ready", "500ms")
	waitOutput(t, p.out, "ready:", 60*time.Second)
	for _, want := range []string{"countly        running  4/4", "db-primary     running  1/1      1        " + rev[:7] + "   192.0.2.3", "ingress        running  3/3", "node-exporter  running  3/3", "search         running  2/2", "api            running  6/6"} {
		waitOutput(t, p.out, want, 60*time.Second)
	}
	// A commit shows up at the next interval (10s in dev) or webhook.
	repo.Write(map[string]string{"examples/search.yaml": ""})
	repo.Commit("drop search")
	deadline := time.Now().Add(60 * time.Second)
	for {
		out := p.out.String()
		last := out[strings.LastIndex(out, "-- "):]
		if !strings.Contains(last, "search") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("search still listed after its file was removed:\n%s", last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startFleet starts a quick simulated fleet of n machines on e.
func startFleet(t *testing.T, e *etcdtest.Server, n int) *fleetsim.Cluster {
	t.Helper()
	c, err := fleetsim.Start(context.Background(), fleetsim.Config{Endpoints: e.Endpoints(), Machines: fleetsim.Machines(n),
		TTL: 4 * time.Second, EngineInterval: time.Second, StartDelay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// End to end on the etcd CI starts from Debian's etcd-server (or an
// embedded one): kaylee dev's scheduler and simulated fleet on it, under
// prefixes of their own, and kaylee sync --once from a git repository.
func TestEndToEndExternalEtcd(t *testing.T) {
	t.Parallel()
	endpoint := os.Getenv("KAYLEE_TEST_ETCD_ENDPOINT")
	if endpoint == "" {
		endpoint = etcdtest.New(t).ClientURL()
	}
	id := time.Now().UnixNano()
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": endpoint, "KAYLEE_ETCD_PREFIX": fmt.Sprintf("/e2e-%d", id), "KAYLEE_CACHE_DIR": t.TempDir()}
	p := startKaylee(t, env, "dev", "--fleet-prefix", fmt.Sprintf("/e2e-%d/fleet/", id), "--min-ready", "500ms")
	waitOutput(t, p.out, "ready:", 60*time.Second)

	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"units/web.yaml": "name: web\nreplicas: 2\nmaxReplicasPerHost: 1\napps:\n- image: docker://nginx\n"})
	repo.Commit("web")
	if r := kaylee(t, env, "sync", "--once", "--repo", repo.Dir, "--path", "units"); r.code != 0 || !strings.Contains(r.stdout, "1 created") {
		t.Fatalf("sync --once: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := kaylee(t, env, "status", "web", "-o", "json")
		var st struct {
			Phase   string
			Running int
			Units   []struct{ MachineIP string }
		}
		_ = json.Unmarshal([]byte(r.stdout), &st)
		if st.Phase == "running" && st.Running == 2 && len(st.Units) == 2 && st.Units[0].MachineIP != st.Units[1].MachineIP {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("web not running on two machines: %s%s", r.stdout, r.err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
