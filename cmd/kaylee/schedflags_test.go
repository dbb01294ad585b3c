package main

import (
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/kaylee-gitops/kaylee/fleet"
)

// --machine-loss-grace reaches the scheduler's options; 5m by default,
// and a duration that is not positive is refused.
func TestMachineLossGraceFlag(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want time.Duration
		err  string
	}{
		{nil, 5 * time.Minute, ""},
		{[]string{"--machine-loss-grace", "30s"}, 30 * time.Second, ""},
		{[]string{"--machine-loss-grace", "-1s"}, 0, "--machine-loss-grace -1s: use a positive duration"},
	} {
		o, err := parseSchedulerFlags(t, tt.args)
		switch {
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("%v: error %v, want %q", tt.args, err, tt.err)
		case tt.err == "" && (err != nil || o.MachineLossGrace != tt.want):
			t.Errorf("%v: grace %s (error %v), want %s", tt.args, o.MachineLossGrace, err, tt.want)
		}
	}
}

// Issue 26: --drain-delay reaches the scheduler's options; 2s by
// default, 0 turns it off, a negative duration is refused; server, agent
// and dev all have it.
func TestDrainDelayFlag(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want time.Duration
		err  string
	}{
		{nil, 2 * time.Second, ""},
		{[]string{"--drain-delay", "5s"}, 5 * time.Second, ""},
		{[]string{"--drain-delay", "0"}, 0, ""},
		{[]string{"--drain-delay", "-1s"}, 0, "--drain-delay -1s: use 0 (no drain) or a positive duration"},
		{[]string{"--drain-delay", "1m", "--rollout-timeout", "1m"}, 0, "--drain-delay 1m0s: use less than --rollout-timeout (1m0s), which each step of a rollout, drain included, must end within"},
		{[]string{"--drain-delay", "30s", "--rollout-timeout", "1m"}, 30 * time.Second, ""},
	} {
		o, err := parseSchedulerFlags(t, tt.args)
		switch {
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("%v: error %v, want %q", tt.args, err, tt.err)
		case tt.err == "" && (err != nil || o.DrainDelay != tt.want):
			t.Errorf("%v: drain delay %s (error %v), want %s", tt.args, o.DrainDelay, err, tt.want)
		}
	}
	const want = "kaylee: --drain-delay -1s: use 0 (no drain) or a positive duration\n"
	for _, cmd := range []string{"server", "agent", "dev"} {
		r := kaylee(t, map[string]string{"KAYLEE_ETCD_ENDPOINTS": "http://127.0.0.1:1"}, cmd, "--drain-delay", "-1s")
		if r.code != 1 || r.err != want {
			t.Errorf("kaylee %s --drain-delay -1s: exit %d, stderr %q; want 1 and %q", cmd, r.code, r.err, want)
		}
	}
}

// Issue 25: --default-engine reaches the scheduler's options (rkt unless
// set); a value that is no engine is refused, naming the flag and the
// engines, by server, agent and dev alike, before anything starts.
func TestDefaultEngineFlag(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want string
		err  string
	}{
		{nil, "rkt", ""},
		{[]string{"--default-engine", "docker"}, "docker", ""},
		{[]string{"--default-engine", "podman"}, "podman", ""},
		{[]string{"--default-engine", "lxc"}, "", `--default-engine: "lxc" is not an engine: use rkt, docker, podman`},
	} {
		o, err := parseSchedulerFlags(t, tt.args)
		switch {
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("%v: error %v, want %q", tt.args, err, tt.err)
		case tt.err == "" && (err != nil || o.DefaultEngine != tt.want):
			t.Errorf("%v: default engine %q (error %v), want %q", tt.args, o.DefaultEngine, err, tt.want)
		}
	}
	const want = "kaylee: --default-engine: \"Docker\" is not an engine: use rkt, docker, podman\n"
	for _, cmd := range []string{"server", "agent", "dev"} {
		r := kaylee(t, map[string]string{"KAYLEE_ETCD_ENDPOINTS": "http://127.0.0.1:1"}, cmd, "--default-engine", "Docker")
		if r.code != 1 || r.err != want {
			t.Errorf("kaylee %s --default-engine Docker: exit %d, stderr %q; want 1 and %q", cmd, r.code, r.err, want)
		}
	}
}

// parseSchedulerFlags parses args as server's scheduler flags into the
// scheduler's options.
func parseSchedulerFlags(t *testing.T, args []string) (fleet.Options, error) {
	t.Helper()
	var f schedulerFlags
	fl := pflag.NewFlagSet("server", pflag.ContinueOnError)
	f.register(fl, 10*time.Second)
	if err := fl.Parse(args); err != nil {
		t.Fatal(err)
	}
	return f.options()
}
