package faults

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	gosync "sync"
	"syscall"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/fleet/realfleet"
	"github.com/kaylee-gitops/kaylee/internal/testutil"
)

var kayleeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kaylee-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	kayleeBin, err = realfleet.Build(ctx, dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buffer is a bytes.Buffer safe for a process to write while the test reads.
type buffer struct {
	mu gosync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// proc is a kaylee process.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stderr *buffer
	done   chan struct{}
}

// start runs the kaylee binary with args and env (added to a clean
// environment) until the test ends.
func start(t *testing.T, name string, env map[string]string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, stderr: &buffer{}, done: make(chan struct{})}
	if len(args) > 0 && (args[0] == "server" || args[0] == "sync" && !slices.Contains(args, "--once")) && !slices.Contains(args, "--listen") {
		// Several run at once: each its own port, not the default.
		args = append(args, "--listen", testutil.FreeAddr(t))
	}
	p.cmd = exec.Command(kayleeBin, args...)
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	if _, ok := env["KAYLEE_DRAIN_DELAY"]; !ok {
		// The scheduler's drain (2s for each replica it stops) is not
		// what these tests are about: off unless a test sets it.
		p.cmd.Env = append(p.cmd.Env, "KAYLEE_DRAIN_DELAY=0")
	}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stderr, p.cmd.Stdout = p.stderr, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- %s's output:\n%s", p.name, p.stderr.String())
		}
	})
	return p
}

// stopped reports whether the process is stopped (SIGSTOP): state T in
// /proc/PID/stat.
func (p *proc) stopped() bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces; the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'T'
}

func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) time.Duration {
	t.Helper()
	return testutil.EventuallyEvery(t, 50*time.Millisecond, timeout, what, func() (bool, string) { return ok(), "" })
}
