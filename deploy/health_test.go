package deploy

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// execArgv returns the command line systemd runs for an Exec line, undoing
// its escapes in its order: specifiers first (%% is %), then words split
// and unquoted with C escapes, then variables ($$ is $). It fails on what a
// Kaylee line must not hold: another specifier, a variable, an unknown
// escape, unbalanced quotes.
func execArgv(t testing.TB, line string) []string {
	t.Helper()
	undouble := func(s string, c byte) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			if s[i] == c {
				if i+1 >= len(s) || s[i+1] != c {
					t.Fatalf("lone %c at byte %d of %q", c, i, s)
				}
				i++
			}
			b.WriteByte(s[i])
		}
		return b.String()
	}
	line = undouble(line, '%')
	var words []string
	var cur strings.Builder
	inWord, quote := false, byte(0)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\\':
			i++
			if i >= len(line) {
				t.Fatal("trailing backslash")
			}
			esc, ok := map[byte]byte{'n': '\n', 'r': '\r', 't': '\t', '\\': '\\', '\'': '\'', '"': '"'}[line[i]]
			if !ok {
				t.Fatalf("unexpected escape \\%c", line[i])
			}
			cur.WriteByte(esc)
			inWord = true
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '\'' || c == '"'):
			quote, inWord = c, true
		case quote == 0 && (c == ' ' || c == '\t'):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatal("unbalanced quotes")
	}
	if inWord {
		words = append(words, cur.String())
	}
	for i, w := range words {
		words[i] = undouble(w, '$')
	}
	return words
}

// plainHealthScript is the script bash gets: healthScript without its
// indentation.
func plainHealthScript() string { return plainScript(healthScript) }

// plainScript is the script bash gets for a script written in Go.
func plainScript(script string) string {
	lines := strings.Split(strings.TrimSpace(script), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimLeft(l, "\t")
	}
	return strings.Join(lines, "\n")
}

// skipOutsideCI skips a test whose tools are missing, except in CI
// (CI=true), which installs them: there a missing tool fails the test, so
// that a test never passes there by not running.
func skipOutsideCI(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI must run this test: "+format, args...)
	}
	t.Skipf(format, args...)
}

func needBash(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(BashPath); err != nil {
		skipOutsideCI(t, "no %s: %v", BashPath, err)
	}
	for _, p := range []string{"timeout", "sleep"} {
		if _, err := exec.LookPath(p); err != nil {
			skipOutsideCI(t, "no %s: %v", p, err)
		}
	}
}

// healthArgv renders a spec's health check and returns what systemd would
// run for it.
func healthArgv(t *testing.T, s *Spec) []string {
	t.Helper()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	units, err := Render(s, RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lines := options(units[0], "Service", "ExecStartPost")
	if len(lines) != 1 {
		t.Fatalf("ExecStartPost lines: %q", lines)
	}
	return execArgv(t, lines[0])
}

func TestHealthScriptSyntax(t *testing.T) {
	needBash(t)
	for _, h := range []*Health{
		{HTTP: &HTTPCheck{Port: 8080, Path: "/healthz?a=1&b=2"}},
		{TCP: &TCPCheck{Port: 5432}},
		{Exec: []string{"/usr/bin/check", "--quick"}},
	} {
		for _, engine := range []string{EngineDocker, EngineRkt} {
			argv := healthArgv(t, &Spec{Name: "api", Engine: engine, Apps: []App{{Image: "x"}}, Health: h})
			f := filepath.Join(t.TempDir(), "script.sh")
			if err := os.WriteFile(f, []byte(argv[2]), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(BashPath, "-n", f).CombinedOutput(); err != nil {
				t.Fatalf("bash -n: %v\n%s", err, out)
			}
			if len(argv) < 13 || argv[3] != "kaylee-health" {
				t.Fatalf("argv: %q", argv)
			}
		}
	}
}

// healthRun is the check script running as systemd would start it.
type healthRun struct {
	cmd   *exec.Cmd
	out   string // file with its stdout and stderr
	start time.Time
	done  chan struct{}
}

// startHealth runs argv with MAINPID set to mainPID (0: unset), in a
// process group of its own that is killed when the test ends, so that no
// liveness loop outlives it. Output goes to a file: a pipe would make Wait
// wait for the background loop too.
func startHealth(t *testing.T, argv []string, mainPID int) *healthRun {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = os.Environ()
	if mainPID != 0 {
		cmd.Env = append(cmd.Env, "MAINPID="+strconv.Itoa(mainPID))
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r := &healthRun{cmd: cmd, out: out, start: time.Now(), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	go func() { cmd.Wait(); close(r.done) }()
	return r
}

// wait returns the script's exit code, how long it ran and its output.
func (r *healthRun) wait(t *testing.T, max time.Duration) (int, time.Duration, string) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(max):
		out, _ := os.ReadFile(r.out)
		t.Fatalf("check still running after %v\n%s", max, out)
	}
	out, _ := os.ReadFile(r.out)
	took := time.Since(r.start)
	if took < time.Second {
		// The script counts bash's whole $SECONDS, which may tick during
		// a run shorter than a second.
		out = bytes.Replace(out, []byte(" healthy after 1s\n"), []byte(" healthy after 0s\n"), 1)
	}
	return r.cmd.ProcessState.ExitCode(), took, string(out)
}

func (r *healthRun) output() string {
	out, _ := os.ReadFile(r.out)
	return string(out)
}

// groupAlive reports whether a process group has a live (not zombie)
// member, such as the liveness loop.
func groupAlive(t *testing.T, pgid int) bool {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 2 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}

// statusServer answers every request with the current status code and
// records the last request URI.
func statusServer(t *testing.T, code int) (port int, status *atomic.Int32, uri *atomic.Value) {
	t.Helper()
	status, uri = &atomic.Int32{}, &atomic.Value{}
	status.Store(int32(code))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uri.Store(r.RequestURI)
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port, status, uri
}

// mainProcess starts a stand-in for the unit's main process.
func mainProcess(t *testing.T) (*exec.Cmd, chan error) {
	t.Helper()
	main := exec.Command("sleep", "60")
	if err := main.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { main.Process.Kill() })
	exited := make(chan error, 1)
	go func() { exited <- main.Wait() }()
	return main, exited
}

// rktHealth is a unit whose check goes to 127.0.0.1 (rkt), as rendered.
func rktHealth(h *Health) *Spec {
	return &Spec{Name: "api", Apps: []App{{Image: "x"}}, Health: h}
}

func TestHealthScriptHTTP(t *testing.T) {
	needBash(t)
	t.Parallel()
	t.Run("healthy", func(t *testing.T) {
		t.Parallel()
		port, _, uri := statusServer(t, 200)
		argv := healthArgv(t, rktHealth(&Health{HTTP: &HTTPCheck{Port: port, Path: "/healthz?full=1&x=a-b"}}))
		code, took, out := startHealth(t, argv, 0).wait(t, 5*time.Second)
		if code != 0 || took > time.Second || !strings.HasPrefix(out, "kaylee-health: "+argv[4]+" healthy after 0s\n") {
			t.Fatalf("exit %d after %v:\n%s", code, took, out)
		}
		if got := uri.Load(); got != "/healthz?full=1&x=a-b" {
			t.Errorf("requested %v", got)
		}
	})
	t.Run("redirect is healthy", func(t *testing.T) {
		t.Parallel()
		port, _, _ := statusServer(t, 302)
		argv := healthArgv(t, rktHealth(&Health{HTTP: &HTTPCheck{Port: port}}))
		if code, _, out := startHealth(t, argv, 0).wait(t, 5*time.Second); code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})
	t.Run("500 until startPeriod", func(t *testing.T) {
		t.Parallel()
		port, _, _ := statusServer(t, 500)
		argv := healthArgv(t, rktHealth(&Health{HTTP: &HTTPCheck{Port: port, Path: "/h"}, Interval: "1s", Timeout: "1s", StartPeriod: "2s"}))
		code, took, out := startHealth(t, argv, 0).wait(t, 10*time.Second)
		want := fmt.Sprintf("kaylee-health: %s not healthy within 2s (last: HTTP 500 from 127.0.0.1:%d)\n", argv[4], port)
		// The script counts in bash's whole $SECONDS: 2s may end just
		// past 1s.
		if code != 1 || took < time.Second || took > 4*time.Second || out != want {
			t.Fatalf("exit %d after %v:\n%s\nwant exit 1 after ~2s:\n%s", code, took, out, want)
		}
	})
	t.Run("becomes healthy", func(t *testing.T) {
		t.Parallel()
		port, status, _ := statusServer(t, 503)
		argv := healthArgv(t, rktHealth(&Health{HTTP: &HTTPCheck{Port: port}, Interval: "1s", StartPeriod: "30s"}))
		r := startHealth(t, argv, 0)
		time.Sleep(1500 * time.Millisecond)
		status.Store(204)
		code, took, out := r.wait(t, 10*time.Second)
		if code != 0 || took > 4*time.Second || !strings.Contains(out, " healthy after ") {
			t.Fatalf("exit %d after %v:\n%s", code, took, out)
		}
	})
	t.Run("liveness kills the main process", func(t *testing.T) {
		t.Parallel()
		port, status, _ := statusServer(t, 200)
		main, exited := mainProcess(t)
		argv := healthArgv(t, rktHealth(&Health{HTTP: &HTTPCheck{Port: port}, Interval: "1s", Timeout: "1s", Failures: 2}))
		r := startHealth(t, argv, main.Process.Pid)
		// ExecStartPost returns at once; the loop runs in the background.
		if code, took, out := r.wait(t, 5*time.Second); code != 0 || took > time.Second {
			t.Fatalf("exit %d after %v:\n%s", code, took, out)
		}
		time.Sleep(2500 * time.Millisecond) // healthy checks keep it running
		select {
		case err := <-exited:
			t.Fatalf("main process ended while healthy: %v\n%s", err, r.output())
		default:
		}
		status.Store(500)
		turned := time.Now()
		select {
		case err := <-exited:
			took := time.Since(turned)
			if ws, ok := main.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGTERM {
				t.Errorf("main process ended with %v, want SIGTERM", err)
			}
			if took < 1*time.Second || took > 4*time.Second {
				t.Errorf("killed %v after the server turned to 500, want about 2 intervals", took)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("main process not killed:\n%s", r.output())
		}
		want := fmt.Sprintf("kaylee-health: %s unhealthy after 2 failed checks (last: HTTP 500 from 127.0.0.1:%d)\n", argv[4], port)
		if out := r.output(); !strings.HasSuffix(out, want) {
			t.Errorf("output:\n%s\nwant it to end with\n%s", out, want)
		}
	})
}

func TestHealthScriptTCP(t *testing.T) {
	needBash(t)
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	argv := healthArgv(t, rktHealth(&Health{TCP: &TCPCheck{Port: port}}))
	if code, took, out := startHealth(t, argv, 0).wait(t, 5*time.Second); code != 0 || took > time.Second || !strings.Contains(out, " healthy after 0s") {
		t.Fatalf("exit %d after %v:\n%s", code, took, out)
	}
	l.Close()
	argv = healthArgv(t, rktHealth(&Health{TCP: &TCPCheck{Port: port}, Interval: "1s", StartPeriod: "1s"}))
	code, _, out := startHealth(t, argv, 0).wait(t, 10*time.Second)
	if want := fmt.Sprintf("kaylee-health: %s not healthy within 1s (last: no answer from 127.0.0.1:%d)\n", argv[4], port); code != 1 || out != want {
		t.Fatalf("exit %d:\n%s\nwant\n%s", code, out, want)
	}
}

func TestHealthScriptExec(t *testing.T) {
	needBash(t)
	t.Parallel()
	tests := []struct {
		name string
		exec []string
		code int
		last string
	}{
		{"passes", []string{"/bin/sh", "-c", "exit"}, 0, ""},
		{"fails", []string{"/bin/false"}, 1, "exit 1"},
		{"times out", []string{"/bin/sleep", "5"}, 1, "exit 124"},
		{"missing command", []string{"/nonexistent/check"}, 1, "exit 127"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			argv := healthArgv(t, rktHealth(&Health{Exec: tt.exec, Interval: "1s", Timeout: "1s", StartPeriod: "1s"}))
			code, _, out := startHealth(t, argv, 0).wait(t, 10*time.Second)
			want := "kaylee-health: " + argv[4] + " healthy after 0s\n"
			if tt.code != 0 {
				want = "kaylee-health: " + argv[4] + " not healthy within 1s (last: " + tt.last + ")\n"
			}
			if code != tt.code || out != want {
				t.Fatalf("exit %d:\n%s\nwant exit %d:\n%s", code, out, tt.code, want)
			}
		})
	}
}

// TestHealthScriptDocker: a docker unit's check asks docker for the
// container's address (127.0.0.1 when it has none, as on the host
// network) and fails while there is no container. The docker word is
// replaced by a stand-in that logs its arguments.
func TestHealthScriptDocker(t *testing.T) {
	needBash(t)
	t.Parallel()
	port, _, _ := statusServer(t, 200)
	spec := &Spec{Name: "web", Engine: EngineDocker, Apps: []App{{Image: "nginx"}},
		Health: &Health{HTTP: &HTTPCheck{Port: port}, Interval: "1s", StartPeriod: "1s"}}
	tests := []struct {
		name, docker string
		code         int
		out          string
	}{
		{"host network", `echo " "`, 0, "kaylee-health: {id} healthy after 0s\n"},
		{"address", `echo "127.0.0.1 "`, 0, "kaylee-health: {id} healthy after 0s\n"},
		{"second network", `echo " 127.0.0.1 "`, 0, "kaylee-health: {id} healthy after 0s\n"},
		{"no container", `echo "Error: No such container: $5" >&2; exit 1`, 1, "kaylee-health: {id} not healthy within 1s (last: no container {id})\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			fake := filepath.Join(dir, "docker")
			script := "#!/bin/sh\necho \"$@\" >>" + filepath.Join(dir, "args") + "\n" + tt.docker + "\n"
			if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			argv := healthArgv(t, spec)
			if argv[12] != DockerPath {
				t.Fatalf("docker word %q", argv[12])
			}
			argv[12] = fake
			code, _, out := startHealth(t, argv, 0).wait(t, 10*time.Second)
			// bash's $SECONDS may tick between start and the first check
			// (a run may take more than a second here: the fake docker)
			out = strings.Replace(out, " healthy after 1s\n", " healthy after 0s\n", 1)
			if want := strings.ReplaceAll(tt.out, "{id}", argv[4]); code != tt.code || out != want {
				t.Fatalf("exit %d:\n%s\nwant exit %d:\n%s", code, out, tt.code, want)
			}
			args, _ := os.ReadFile(filepath.Join(dir, "args"))
			if want := "inspect --type container -f {{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}} " + argv[4] + "\n"; !strings.HasPrefix(string(args), want) {
				t.Errorf("docker called with %q, want %q", args, want)
			}
		})
	}
}

// TestHealthScriptMainProcess: the check gives up as soon as the main
// process is gone, and the liveness loop ends with it.
func TestHealthScriptMainProcess(t *testing.T) {
	needBash(t)
	t.Parallel()
	t.Run("exits before healthy", func(t *testing.T) {
		t.Parallel()
		port, _, _ := statusServer(t, 500)
		gone := exec.Command("true")
		if err := gone.Run(); err != nil {
			t.Fatal(err)
		}
		argv := healthArgv(t, rktHealth(&Health{HTTP: &HTTPCheck{Port: port}, Interval: "1s", StartPeriod: "1m"}))
		code, took, out := startHealth(t, argv, gone.Process.Pid).wait(t, 10*time.Second)
		want := fmt.Sprintf("kaylee-health: %s exited before it was healthy (last: HTTP 500 from 127.0.0.1:%d)\n", argv[4], port)
		if code != 1 || took > 2*time.Second || out != want {
			t.Fatalf("exit %d after %v:\n%s\nwant\n%s", code, took, out, want)
		}
	})
	t.Run("liveness loop ends with the main process", func(t *testing.T) {
		if runtime.GOOS != "linux" {
			skipOutsideCI(t, "reads /proc")
		}
		t.Parallel()
		port, _, _ := statusServer(t, 200)
		main, exited := mainProcess(t)
		argv := healthArgv(t, rktHealth(&Health{HTTP: &HTTPCheck{Port: port}, Interval: "1s"}))
		r := startHealth(t, argv, main.Process.Pid)
		if code, _, out := r.wait(t, 5*time.Second); code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		pgid := r.cmd.Process.Pid
		if !groupAlive(t, pgid) {
			t.Fatal("no liveness loop running")
		}
		main.Process.Kill()
		<-exited
		deadline := time.Now().Add(5 * time.Second)
		for groupAlive(t, pgid) {
			if time.Now().After(deadline) {
				t.Fatal("liveness loop still running 5s after the main process ended")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// TestHealthGoldenUnitsVerify runs systemd's own check on the rendered
// health units (docker engine: /usr/bin/rkt is not needed).
func TestHealthGoldenUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		skipOutsideCI(t, "systemd-analyze is not installed")
	}
	if _, err := os.Stat(DockerPath); err != nil {
		skipOutsideCI(t, "systemd-analyze verify needs %s: %v", DockerPath, err)
	}
	verifyGoldenUnits(t, analyze, "testdata/render/health-*.golden", 2)
}

// verifyGoldenUnits runs systemd-analyze verify on every unit of the
// golden files glob matches (at least min files).
func verifyGoldenUnits(t *testing.T, analyze, glob string, min int) {
	t.Helper()
	goldens, _ := filepath.Glob(glob)
	if len(goldens) < min {
		t.Fatalf("golden files %s: %q, want at least %d", glob, goldens, min)
	}
	dir := t.TempDir()
	var files []string
	for _, g := range goldens {
		b, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		for _, part := range strings.Split("\n"+string(b), "\n# ")[1:] {
			header, body, _ := strings.Cut(part, "\n")
			// systemd unit names may not hold ':' the way fleet's do.
			file := filepath.Join(dir, strings.ReplaceAll(strings.Fields(header)[0], ":", "-"))
			if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, file)
		}
	}
	out, err := exec.Command(analyze, append([]string{"verify"}, files...)...).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
