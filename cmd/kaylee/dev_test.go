package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/internal/testutil"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// syncBuffer is a bytes.Buffer safe to read while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a long-running kaylee command run in-process.
type proc struct {
	args   []string
	out    *syncBuffer
	errb   *syncBuffer
	cancel context.CancelFunc
	done   chan int
	once   sync.Once
	code   int
}

// testEnv is env as the environment of a kaylee command under test, with
// KAYLEE_DRAIN_DELAY=0 unless env sets it: the scheduler's drain (2s by
// default for each replica it stops) is tested where it is the subject
// (fleet's TestDrainDelayOnFleet, TestDrainDelayFlag); elsewhere it
// would only make every rollout, scale down and removal slower.
func testEnv(env map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := env[k]; ok || k != "KAYLEE_DRAIN_DELAY" {
			return v
		}
		return "0"
	}
}

// startKaylee runs a long-running command in-process until Stop or the end
// of the test.
func startKaylee(t *testing.T, env map[string]string, args ...string) *proc {
	t.Helper()
	// dev and agent listen on 127.0.0.1:9520 by default, where the
	// README's kaylee dev may be running beside the tests, server on 9522
	// and the sync loop on 9523, which several tests start at once: a
	// test that names no --listen gets a free port.
	long := len(args) > 0 && (args[0] == "dev" || args[0] == "agent" || args[0] == "server" || args[0] == "sync" && !slices.Contains(args, "--once"))
	if long && !slices.ContainsFunc(args, func(a string) bool {
		return a == "--listen" || strings.HasPrefix(a, "--listen=")
	}) {
		args = append(slices.Clip(args), "--listen", freePort(t))
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &proc{args: args, out: &syncBuffer{}, errb: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() {
		p.done <- run(ctx, args, &stdio{in: strings.NewReader(""), out: p.out, err: p.errb}, testEnv(env))
	}()
	t.Cleanup(func() {
		if _, err := p.Stop(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// startDevOnRepo starts kaylee dev syncing dir's units/ every second, on
// free ports, and waits until it is ready; it returns the process and the
// URL of dev's etcd.
func startDevOnRepo(t *testing.T, dir string) (*proc, string) {
	t.Helper()
	addr := "http://" + freePort(t)
	p := startKaylee(t, nil, "dev", "--repo", dir, "--path", "units", "--interval", "1s", "--listen-client", addr,
		"--data-dir", t.TempDir(), "--cache-dir", t.TempDir(), "--listen", freePort(t), "--min-ready", "500ms")
	waitOutput(t, p.out, "ready:", 60*time.Second)
	return p, addr
}

// Stop interrupts the command and returns its exit code.
func (p *proc) Stop() (int, error) {
	var err error
	p.once.Do(func() {
		p.cancel()
		select {
		case p.code = <-p.done:
		case <-time.After(20 * time.Second):
			err = fmt.Errorf("kaylee %v did not stop within 20s; stderr: %s", p.args, p.errb.String())
		}
	})
	return p.code, err
}

func waitOutput(t *testing.T, out *syncBuffer, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(out.String(), want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("output lacks %q after %s:\n%s", want, timeout, out.String())
}

func freePort(t *testing.T) string {
	t.Helper()
	return testutil.FreeAddr(t)
}

// machinesInRegistry reads fleet's registry with a fresh client, as
// fleetctl would.
func machinesInRegistry(t *testing.T, endpoint, prefix string) map[string]string {
	t.Helper()
	c, err := fleetsim.Start(context.Background(), fleetsim.Config{Endpoints: []string{endpoint}, KeyPrefix: prefix, Machines: []fleetsim.MachineConfig{{ID: "0000observer0000", Metadata: map[string]string{"role": "observer"}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ms, err := c.API().Machines()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range ms {
		if m.ID != "0000observer0000" {
			out[m.PublicIP] = formatMetadata(m.Metadata)
		}
	}
	return out
}

func TestDevFleetOnlyEmbedded(t *testing.T) {
	t.Parallel()
	addr := freePort(t)
	p := startKaylee(t, nil, "dev", "--fleet-only", "--listen-client", "http://"+addr, "--data-dir", t.TempDir(),
		"--machines", "2", "--machine-metadata", "ssd=true,az=a", "--machine-metadata", "az=b")
	waitOutput(t, p.out, "ready:", 60*time.Second)
	got := machinesInRegistry(t, "http://"+addr, fleetsim.DefaultKeyPrefix)
	want := map[string]string{"192.0.2.1": "az=a,ssd=true", "192.0.2.2": "az=b"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("machines in fleet's registry: %v, want %v", got, want)
	}
	code, err := p.Stop()
	if err != nil || code != 0 {
		t.Fatalf("after interrupt: exit %d, %v", code, err)
	}
	if !strings.Contains(p.out.String(), "stopping") {
		t.Errorf("no stop message: %s", p.out.String())
	}
}

func TestDevFleetOnlyExternalEtcd(t *testing.T) {
	t.Parallel()
	endpoint := os.Getenv("KAYLEE_TEST_ETCD_ENDPOINT")
	if endpoint == "" {
		e := etcdtest.New(t)
		endpoint = e.ClientURL()
	}
	prefix := fmt.Sprintf("/_test_%d/fleet/", time.Now().UnixNano())
	p := startKaylee(t, map[string]string{"KAYLEE_ETCD_ENDPOINTS": endpoint}, "dev", "--fleet-only", "--fleet-prefix", prefix)
	waitOutput(t, p.out, "ready:", 60*time.Second)
	if !strings.Contains(p.out.String(), "etcd:  "+endpoint+" (external)") {
		t.Errorf("does not say it uses the external etcd:\n%s", p.out.String())
	}
	got := machinesInRegistry(t, endpoint, prefix)
	want := map[string]string{"192.0.2.1": "az=a,role=worker,ssd=false", "192.0.2.2": "az=b,role=worker,ssd=false", "192.0.2.3": "az=c,role=edge,ssd=false"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("machines: %v, want %v", got, want)
	}
}

// dev's summary: the git revision owning each unit ("-" for one of
// kaylee run), and a file that fails in git marked on its unit, with the
// error under the table.
func TestDevSummaryRevisionAndGitErrors(t *testing.T) {
	t.Parallel()
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"units/web.yaml": "name: web\napps:\n- image: nginx\n"})
	rev1 := repo.Commit("web")
	p, addr := startDevOnRepo(t, repo.Dir)
	solo := writeFiles(t, map[string]string{"solo.yaml": "name: solo\napps:\n- image: x\n"})
	if r := kaylee(t, map[string]string{"KAYLEE_ETCD_ENDPOINTS": addr}, "run", solo); r.code != 0 {
		t.Fatalf("run: exit %d %s", r.code, r.err)
	}
	ip := `192\.0\.2\.\d`
	waitSummary(t, p.out, `(?m)^  NAME  PHASE    RUNNING  SERVING  REVISION  MACHINES\n`+
		`  solo  running  1/1      1        -         `+ip+`\n`+
		`  web   running  1/1      1        `+rev1[:7]+`   `+ip+`\n`)

	repo.Write(map[string]string{"units/web.yaml": "name: web\nreplcas: 2\napps:\n- image: nginx\n"})
	rev2 := repo.Commit("break web")
	last := waitSummary(t, p.out, `(?m)^  web   running  1/1      1        `+rev2[:7]+`!  `+ip+`\n`)
	want := " at " + rev2[:7] + " (units marked ! run their last good version):\n" +
		"    units/web.yaml:2: unknown field \"replcas\" (did you mean \"replicas\"?)\n"
	if !strings.Contains(last, "  files failing in git source ") || !strings.HasSuffix(last, want) {
		t.Fatalf("summary lacks the file error %q:\n%s", want, last)
	}
}

// waitSummary waits for dev's last summary to match the regexp want, and
// returns it.
func waitSummary(t *testing.T, out *syncBuffer, want string) string {
	t.Helper()
	re := regexp.MustCompile(want)
	deadline := time.Now().Add(60 * time.Second)
	for {
		all := out.String()
		last := ""
		if i := strings.LastIndex(all, "\n-- "); i >= 0 {
			last = all[i+1:]
			last = last[strings.Index(last, "\n")+1:]
		}
		if re.MatchString(last) {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev's last summary lacks %q:\n%s", want, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestDevErrors(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"dev", "--fleet-only", "--listen-client", "http://" + ln.Addr().String(), "--data-dir", t.TempDir()},
			"etcd cannot listen on " + ln.Addr().String() + ": address already in use (stop what uses it or pick another address); use --listen-client"},
		{[]string{"dev", "--fleet-only", "--machines", "3", "--machine-metadata", "a=1", "--machine-metadata", "a=2"},
			"--machine-metadata given 2 times for 3 machines"},
		{[]string{"dev", "--fleet-only", "--machine-metadata", "nope"}, `--machine-metadata "nope": "nope" is not key=value`},
		{[]string{"dev", "--fleet-only", "--machines", "0"}, "--machines 0: need at least one machine"},
	}
	for _, tt := range tests {
		r := kaylee(t, nil, tt.args...)
		if r.code == 0 || !strings.Contains(r.err, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want %q", tt.args, r.code, r.err, tt.want)
		}
	}
}
