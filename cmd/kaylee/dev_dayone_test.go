package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/fleet/fleetsim/fleetsimtest"
	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store"
)

// Issue 21 item 7, kaylee dev on day one.

// readyHook is the stdout of an in-process kaylee dev that calls onReady
// with everything printed so far at the instant the "ready:" line is
// written: before the write returns, so before dev goes on.
type readyHook struct {
	syncBuffer
	once    sync.Once
	onReady func(out string)
}

func (h *readyHook) Write(p []byte) (int, error) {
	n, err := h.syncBuffer.Write(p)
	if strings.Contains(string(p), "ready:") {
		h.once.Do(func() { h.onReady(h.String()) })
	}
	return n, err
}

var dashboardLine = regexp.MustCompile(`(?m)^dashboard: (http://\S+/) `)

// dev prints "ready:" only once its --listen address accepts connections:
// at the instant the line is written, one GET of the dashboard URL it
// printed (no retry) is answered.
func TestDevReadyMeansListening(t *testing.T) {
	t.Parallel()
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"units/web.yaml": "name: web\napps:\n- image: nginx\n"})
	repo.Commit("web")
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"scheduler", nil},
		{"git", []string{"--repo", repo.Dir, "--path", "units", "--cache-dir", t.TempDir()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			type answer struct {
				url, out string
				status   int
				err      error
			}
			got := make(chan answer, 1)
			stdout := &readyHook{onReady: func(out string) {
				m := dashboardLine.FindStringSubmatch(out)
				if m == nil {
					got <- answer{out: out, err: fmt.Errorf("no dashboard URL printed before the ready line")}
					return
				}
				c := &http.Client{Timeout: 10 * time.Second}
				resp, err := c.Get(m[1])
				a := answer{url: m[1], out: out, err: err}
				if err == nil {
					a.status = resp.StatusCode
					resp.Body.Close()
				}
				got <- a
			}}
			var stderr syncBuffer
			args := append([]string{"dev", "--listen-client", "http://" + freePort(t), "--data-dir", t.TempDir(), "--listen", freePort(t), "--machines", "1"}, tt.args...)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan int, 1)
			go func() {
				done <- run(ctx, args, &stdio{in: strings.NewReader(""), out: stdout, err: &stderr}, func(string) string { return "" })
			}()
			defer func() {
				cancel()
				select {
				case <-done:
				case <-time.After(20 * time.Second):
					t.Errorf("dev did not stop within 20s")
				}
			}()
			select {
			case a := <-got:
				if a.err != nil || a.status != http.StatusOK {
					t.Fatalf("at the instant dev printed its ready line, GET %s: status %d, %v\nstdout:\n%s", a.url, a.status, a.err, a.out)
				}
			case code := <-done:
				t.Fatalf("dev exited %d before printing ready:\n%s\n%s", code, stdout.String(), stderr.String())
			case <-time.After(60 * time.Second):
				t.Fatalf("no ready line after 60s:\n%s", stdout.String())
			}
		})
	}
}

// buildKaylee builds the kaylee command into a temporary directory.
func buildKaylee(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kaylee")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// blackHole accepts connections and never answers; accepted gets a value
// at the first one.
func blackHole(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{}, 1)
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), ch
}

// Ctrl-C (SIGINT) to the kaylee binary stops kaylee dev with exit 0 and
// "stopping", no error: while it starts (its etcd not answering yet, or
// the embedded etcd just up) as after it is ready.
func TestDevInterrupt(t *testing.T) {
	t.Parallel()
	bin := buildKaylee(t)
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"units/web.yaml": "name: web\napps:\n- image: nginx\n"})
	repo.Commit("web")
	hole, accepted := blackHole(t)
	for _, tt := range []struct {
		name      string
		args      func(etcd string) []string
		signalAt  func(t *testing.T, etcd string, stdout *syncBuffer) // returns when the signal is due
		wantReady bool
	}{
		{
			name: "before ready: etcd not answering",
			// Three machines: none waits on the silent etcd to be removed.
			args: func(string) []string { return []string{"--etcd-endpoints", "http://" + hole, "--machines", "3"} },
			signalAt: func(t *testing.T, _ string, _ *syncBuffer) {
				select {
				case <-accepted: // dev is asking etcd
				case <-time.After(30 * time.Second):
					t.Fatal("dev never connected to its etcd")
				}
			},
		},
		{
			name: "before ready: embedded etcd just up",
			args: func(etcd string) []string {
				return []string{"--listen-client", "http://" + etcd, "--data-dir", t.TempDir(), "--machines", "1"}
			},
			signalAt: func(t *testing.T, etcd string, _ *syncBuffer) {
				deadline := time.Now().Add(30 * time.Second)
				for {
					if c, err := net.Dial("tcp", etcd); err == nil {
						c.Close()
						return
					}
					if time.Now().After(deadline) {
						t.Fatal("the embedded etcd never listened")
					}
					time.Sleep(10 * time.Millisecond)
				}
			},
		},
		{
			name: "after ready",
			args: func(etcd string) []string {
				return []string{"--listen-client", "http://" + etcd, "--data-dir", t.TempDir(), "--machines", "1"}
			},
			signalAt:  func(t *testing.T, _ string, stdout *syncBuffer) { waitOutput(t, stdout, "\nready:", 60*time.Second) },
			wantReady: true,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			etcd := freePort(t)
			args := append([]string{"dev", "--repo", repo.Dir, "--path", "units", "--cache-dir", t.TempDir(), "--listen", freePort(t)}, tt.args(etcd)...)
			cmd := exec.Command(bin, args...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
			var stdout, stderr syncBuffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waited := make(chan error, 1)
			go func() { waited <- cmd.Wait() }()
			defer func() {
				if cmd.ProcessState == nil {
					_ = cmd.Process.Kill()
					<-waited
				}
			}()
			tt.signalAt(t, etcd, &stdout)
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			select {
			case <-waited:
			case <-time.After(10 * time.Second):
				t.Fatalf("kaylee dev still runs 10s after SIGINT\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			}
			out, errs := stdout.String(), stderr.String()
			if code := cmd.ProcessState.ExitCode(); code != 0 || !strings.HasSuffix(out, "stopping\n") ||
				strings.Contains(errs, "context canceled") || strings.Contains(errs, "kaylee:") || strings.Contains(errs, "level=ERROR") {
				t.Fatalf("after SIGINT: %v, want exit 0, \"stopping\" last and no error\nstdout:\n%s\nstderr:\n%s", cmd.ProcessState, out, errs)
			}
			if got := strings.Contains(out, "\nready:"); got != tt.wantReady {
				t.Errorf("printed ready: %v, want %v\n%s", got, tt.wantReady, out)
			}
		})
	}
}

// fleetctlHint is the fleetctl command line dev prints.
var fleetctlHint = regexp.MustCompile(`fleetctl --[^\n]*?list-(?:units|machines)`)

// The fleetctl command dev prints works, as printed, with fleet's own
// fleetctl (v1.0.0): list-machines lists dev's machines, list-units its
// units, with the default fleet prefix and another.
func TestDevFleetctlHint(t *testing.T) {
	t.Parallel()
	fleetctl := fleetsimtest.BuildFleetctl(t)
	for _, tt := range []struct {
		name         string
		args         []string
		unit         bool
		wantMachines []string // each matched
		wantUnits    string
	}{
		{
			name:         "fleet only",
			args:         []string{"--fleet-only", "--machines", "2"},
			wantMachines: []string{`(?m)^[0-9a-f]{8}\.\.\.\s+192\.0\.2\.1\s+az=a,role=worker,ssd=false$`, `(?m)^[0-9a-f]{8}\.\.\.\s+192\.0\.2\.2\s+az=b,role=worker,ssd=false$`},
			wantUnits:    `^UNIT\s+MACHINE\s+ACTIVE\s+SUB\n$`,
		},
		{
			name:         "scheduler, own fleet prefix",
			args:         []string{"--fleet-prefix", "/_test_fleet/", "--machines", "2", "--min-ready", "500ms"},
			unit:         true,
			wantMachines: []string{`(?m)^[0-9a-f]{8}\.\.\.\s+192\.0\.2\.1\s+az=a`, `(?m)^[0-9a-f]{8}\.\.\.\s+192\.0\.2\.2\s+az=b`},
			wantUnits:    `(?m)^UNIT\s+MACHINE\s+ACTIVE\s+SUB\nk2:web:\S+:0\.service\s+[0-9a-f]{8}\.\.\./192\.0\.2\.\d\s+active\s+running\nk2:web:\S+:1\.service\s+[0-9a-f]{8}\.\.\./192\.0\.2\.\d\s+active\s+running\n$`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			etcd := "http://" + freePort(t)
			p := startKaylee(t, nil, append([]string{"dev", "--listen-client", etcd, "--data-dir", t.TempDir()}, tt.args...)...)
			waitOutput(t, p.out, "\nready:", 60*time.Second)
			if tt.unit {
				units := writeFiles(t, map[string]string{"web.yaml": "name: web\nreplicas: 2\napps:\n- image: nginx\n"})
				if r := kaylee(t, map[string]string{"KAYLEE_ETCD_ENDPOINTS": etcd}, "run", "--wait", "--timeout", "2m", units); r.code != 0 {
					t.Fatalf("run --wait: exit %d\n%s%s", r.code, r.stdout, r.err)
				}
			}
			hint := fleetctlHint.FindString(p.out.String())
			if hint == "" {
				t.Fatalf("dev printed no fleetctl command:\n%s", p.out.String())
			}
			base := hint[:strings.LastIndex(hint, " list-")]
			for _, c := range []struct {
				cmd  string
				want []string
			}{
				{base + " list-machines", tt.wantMachines},
				{base + " list-units", []string{tt.wantUnits}},
			} {
				sh := exec.Command("sh", "-c", c.cmd)
				sh.Env = []string{"PATH=" + filepath.Dir(fleetctl) + ":" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
				var stdout, stderr strings.Builder
				sh.Stdout, sh.Stderr = &stdout, &stderr
				err := sh.Run()
				if err != nil || stderr.Len() > 0 || slices.ContainsFunc(c.want, func(re string) bool { return !regexp.MustCompile(re).MatchString(stdout.String()) }) {
					t.Errorf("dev printed %q; %s with fleet's fleetctl: %v\nstdout:\n%s\nstderr:\n%s\nwant stdout matching %s", hint, c.cmd, err, stdout.String(), stderr.String(), c.want)
				}
			}
		})
	}
}

// fleetCallLine is a log line of the scheduler's about one fleet call.
var fleetCallLine = regexp.MustCompile(`(?m)^time=\S+ level=INFO msg=fleet `)

// dev's terminal is quiet by default: over sync passes and a rollout, no
// INFO log line (the fleet calls, status changes, syncs: the summary says
// it), while warnings stay, once each, not at every pass; --verbose logs
// every fleet call.
func TestDevQuietByDefault(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		args    []string
		verbose bool
	}{
		{"default", nil, false},
		{"verbose", []string{"--verbose"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			repo := gittest.NewRepo(t)
			repo.Write(map[string]string{"units/web.yaml": "name: web\nreplicas: 2\napps:\n- image: nginx\n"})
			rev1 := repo.Commit("web")
			etcdURL := "http://" + freePort(t)
			p := startKaylee(t, nil, append([]string{"dev", "--repo", repo.Dir, "--path", "units", "--interval", "1s", "--listen-client", etcdURL,
				"--data-dir", t.TempDir(), "--cache-dir", t.TempDir(), "--min-ready", "500ms", "--machines", "2"}, tt.args...)...)
			waitSummary(t, p.out, `(?m)^  web\s+running\s+2/2\s+2\s+`+rev1[:7])
			st := dialStore(t, etcdURL)
			first := waitStatus(t, st, "web", func(s *store.Status) bool { return s.Phase == store.PhaseRunning })
			repo.Write(map[string]string{"units/web.yaml": "name: web\nreplicas: 2\napps:\n- image: nginx:2\n"})
			rev2 := repo.Commit("web: nginx 2")
			// The rollout: progressing, then running again, at rev2. The
			// summary is not waited on for its end: right after the sync
			// it shows the status of the old spec (running 2/2) with the
			// new revision, until the scheduler's pass (CI at 9569d04).
			waitStatus(t, st, "web", func(s *store.Status) bool {
				return s.Phase == store.PhaseRunning && s.SpecHash != first.SpecHash && s.Running == 2
			})
			waitMatch(t, p.out, `(?m)^  web\s+progressing\s[^\n]*\n(?s:.*)^  web\s+running\s+2/2\s+2\s+`+rev2[:7])
			repo.Write(map[string]string{"units/bad.yaml": "name: bad\nreplcas: 2\napps:\n- image: x\n"})
			repo.Commit("bad")
			fileError := `level=WARN msg="unit file error; its units are left as they were"`
			waitOutput(t, p.errb, fileError, 60*time.Second)
			time.Sleep(3500 * time.Millisecond) // 3 more passes at --interval 1s
			if n := strings.Count(p.errb.String(), fileError); n != 1 {
				t.Errorf("the file error logged %d times over 4 passes, want once (the summary shows it all along):\n%s", n, p.errb.String())
			}
			if code, err := p.Stop(); code != 0 || err != nil {
				t.Fatalf("stop: exit %d %v", code, err)
			}
			stderr := p.errb.String()
			calls := len(fleetCallLine.FindAllString(stderr, -1))
			infos := strings.Count(stderr, " level=INFO ")
			summaries := strings.Count(p.out.String(), "\n-- ")
			t.Logf("%s: %d summaries on stdout; on stderr %d lines, %d INFO, %d of them fleet calls", tt.name, summaries, strings.Count(stderr, "\n"), infos, calls)
			if summaries < 3 {
				t.Errorf("%d summaries:\n%s", summaries, p.out.String())
			}
			if tt.verbose && calls < 4 {
				t.Errorf("--verbose: %d fleet calls logged, want the 2 creates and the rollout's:\n%s", calls, stderr)
			}
			if !tt.verbose && infos > 0 {
				t.Errorf("default: %d INFO lines on stderr (%d of them fleet calls), want none:\n%s", infos, calls, stderr)
			}
		})
	}
}

// dialStore is a store on the etcd at url (dev's --listen-client).
func dialStore(t *testing.T, url string) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := store.Dial(ctx, store.DialConfig{Endpoints: []string{url}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return store.New(c, store.DefaultPrefix)
}

// waitStatus waits up to 60s for the status of unit name to be ok, and
// returns it.
func waitStatus(t *testing.T, s *store.Store, name string, ok func(*store.Status) bool) *store.Status {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := s.GetStatus(context.Background(), name)
		if err == nil && st != nil && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("status of %s after 60s: %+v (%v)", name, st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitMatch waits for what out holds to match the regexp want.
func waitMatch(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	re := regexp.MustCompile(want)
	deadline := time.Now().Add(60 * time.Second)
	for !re.MatchString(out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("output does not match %q after 60s:\n%s", want, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
