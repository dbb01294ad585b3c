package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
)

// The test binary runs as the kaylee command when started by
// kayleeProcess: a real process, to signal or to give a small descriptor
// limit, without building the binary.
const (
	processArgsEnv   = "KAYLEE_TEST_PROCESS_ARGS"   // the command line, as a JSON array
	processNoFileEnv = "KAYLEE_TEST_PROCESS_NOFILE" // RLIMIT_NOFILE (soft and hard) to run under
)

// TestKayleeProcess is not a test: it is the body of the processes
// kayleeProcess starts, and is skipped otherwise.
func TestKayleeProcess(t *testing.T) {
	raw := os.Getenv(processArgsEnv)
	if raw == "" {
		t.Skip("runs only as a process started by kayleeProcess")
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		t.Fatal(err)
	}
	if n := os.Getenv(processNoFileEnv); n != "" {
		v, err := strconv.ParseUint(n, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		// As systemd's LimitNOFILE=v would: the hard limit too, so that
		// nothing can raise it.
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: v, Max: v}); err != nil {
			t.Fatal(err)
		}
	}
	// As main does.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, args, &stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}, os.Getenv)
	stop()
	os.Exit(code)
}

// kayleeProcess returns the command that runs kaylee with args in a
// process of its own (the test binary; see TestKayleeProcess), with env
// added to a clean environment and, when nofile > 0, that descriptor
// limit.
func kayleeProcess(t *testing.T, nofile int, env map[string]string, args ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^TestKayleeProcess$", "-test.timeout=0")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), processArgsEnv + "=" + string(raw)}
	if nofile > 0 {
		cmd.Env = append(cmd.Env, processNoFileEnv+"="+strconv.Itoa(nofile))
	}
	if _, ok := env["KAYLEE_DRAIN_DELAY"]; !ok {
		cmd.Env = append(cmd.Env, "KAYLEE_DRAIN_DELAY=0") // see testEnv
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}
