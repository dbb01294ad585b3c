package fleetsim

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coreos/fleet/schema"
	"github.com/coreos/fleet/unit"

	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

func unitFile(t *testing.T, lines ...string) *unit.UnitFile {
	t.Helper()
	u, err := unit.NewUnitFile("[Service]\n" + strings.Join(lines, "\n") + "\n")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// states samples a unit's states every 2ms for d and returns them without
// repeats.
func states(s *Systemd, name string, d time.Duration) []string {
	var out []string
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		a, sub := s.State(name)
		if st := a + "/" + sub; len(out) == 0 || out[len(out)-1] != st {
			out = append(out, st)
		}
	}
	return out
}

// The state machine on its own: start-pre when there are ExecStartPre
// lines, the restart loop under Restart=, failed without.
func TestSystemdStates(t *testing.T) {
	cfg := systemdConfig{startDelay: 50 * time.Millisecond, failMarker: "sim-fail", crashAfter: 50 * time.Millisecond, restartScale: 1,
		healthDelay: 50 * time.Millisecond, unhealthyMarker: "sim-unhealthy", startPeriod: 50 * time.Millisecond}
	for _, tt := range []struct {
		name  string
		lines []string
		want  string // states seen in 700ms, joined by " "
	}{
		{"runs", []string{"ExecStart=/bin/web"}, "activating/start active/running"},
		{"runs after start-pre", []string{"ExecStartPre=/usr/bin/docker pull web", "ExecStart=/bin/web"},
			"activating/start-pre active/running"},
		{"fails without Restart=", []string{"ExecStart=/bin/sim-fail"}, "activating/start failed/failed"},
		{"fails with Restart=no", []string{"ExecStart=/bin/sim-fail", "Restart=no", "RestartSec=50ms"}, "activating/start failed/failed"},
		{"loops under Restart=always", []string{"ExecStartPre=/usr/bin/docker pull sim-fail", "ExecStart=/bin/sim-fail", "Restart=always", "RestartSec=100ms"},
			"activating/start-pre active/running activating/auto-restart activating/start-pre active/running activating/auto-restart"},
		{"loops under Restart=on-failure", []string{"ExecStart=/bin/sim-fail", "Restart=on-failure", "RestartSec=0.1"},
			"activating/start active/running activating/auto-restart activating/start active/running activating/auto-restart"},
		// A health check (ExecStartPost): start-post until it passes.
		{"health check passes", []string{"ExecStartPre=/usr/bin/docker rm -f web", "ExecStart=/bin/web", "ExecStartPost=/bin/bash -c 'check' kaylee-health web", "Restart=always", "RestartSec=100ms"},
			"activating/start-pre activating/start-post active/running"},
		{"health check passes, no ExecStartPre", []string{"ExecStart=/bin/web", "ExecStartPost=/bin/check"}, "activating/start activating/start-post active/running"},
		{"health check never passes under Restart=always", []string{"ExecStartPre=/usr/bin/docker rm -f web", "ExecStart=/bin/sim-unhealthy", "ExecStartPost=/bin/check", "Restart=always", "RestartSec=100ms"},
			"activating/start-pre activating/start-post activating/auto-restart activating/start-pre activating/start-post activating/auto-restart"},
		{"health check never passes without Restart=", []string{"ExecStart=/bin/sim-unhealthy", "ExecStartPost=/bin/check"}, "activating/start activating/start-post failed/failed"},
		{"unhealthy marker without a check: runs", []string{"ExecStart=/bin/sim-unhealthy"}, "activating/start active/running"},
		{"the removal of decrypted secrets is no check", []string{"ExecStartPre=/bin/bash -c 'decrypt' kaylee-secret", "ExecStart=/bin/sim-unhealthy", "ExecStartPost=/bin/rm -rf /run/kaylee/secrets/k2_web_0"}, "activating/start-pre active/running"},
		// A crashing process fails its check: systemd lets ExecStartPost
		// run to its end before it acts on the main process's exit.
		{"crash with a health check: never running", []string{"ExecStart=/bin/sim-fail", "ExecStartPost=/bin/check", "Restart=always", "RestartSec=100ms"},
			"activating/start activating/start-post activating/auto-restart activating/start activating/start-post activating/auto-restart"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newSystemd(cfg)
			if err := s.Load("u.service", *unitFile(t, tt.lines...)); err != nil {
				t.Fatal(err)
			}
			if err := s.TriggerStart("u.service"); err != nil {
				t.Fatal(err)
			}
			// A loop takes 50+50+100ms; 700ms holds three cycles.
			got := states(s, "u.service", 700*time.Millisecond)
			if g := strings.Join(got, " "); !strings.HasPrefix(g, tt.want) || strings.Contains(tt.want, "auto-restart") != strings.Contains(g, "auto-restart") {
				t.Fatalf("states %q, want them to begin with %q", g, tt.want)
			}
			if strings.Contains(tt.want, "auto-restart") {
				if n := s.Restarts("u.service"); n < 2 {
					t.Fatalf("%d restarts counted, want at least 2", n)
				}
				if strings.Contains(strings.Join(got, " "), "failed") {
					t.Fatalf("a restarting unit went failed: %v", got)
				}
				if strings.Contains(tt.want, "start-post") && strings.Contains(tt.want, "auto-restart") && strings.Contains(strings.Join(got, " "), "running") {
					t.Fatalf("a unit that never passes its check ran: %v", got)
				}
				// Stopped while it loops: inactive, and it stays so.
				if err := s.TriggerStop("u.service"); err != nil {
					t.Fatal(err)
				}
				if got := states(s, "u.service", 300*time.Millisecond); len(got) != 1 || got[0] != "inactive/dead" {
					t.Fatalf("after stop: %v", got)
				}
				// A start by hand resets NRestarts, as systemd does.
				_ = s.TriggerStart("u.service")
				if n := s.Restarts("u.service"); n != 0 {
					t.Fatalf("restarts after a start by hand: %d", n)
				}
			}
		})
	}
}

func TestRestartDelay(t *testing.T) {
	for _, tt := range []struct {
		cfg   systemdConfig
		lines []string
		want  time.Duration
	}{
		{systemdConfig{restartScale: DefaultRestartScale}, []string{"RestartSec=10"}, 2500 * time.Millisecond}, // Kaylee's rendering
		{systemdConfig{restartScale: 1}, []string{"RestartSec=1min 30s"}, 90 * time.Second},
		{systemdConfig{restartScale: 1}, []string{"RestartSec=500ms"}, 500 * time.Millisecond},
		{systemdConfig{restartScale: 1}, []string{"RestartSec=5", "RestartSec=7s"}, 7 * time.Second}, // the last one counts
		{systemdConfig{restartScale: 1}, nil, 100 * time.Millisecond},                                // systemd's default
		{systemdConfig{restartScale: 1}, []string{"RestartSec=soon"}, 100 * time.Millisecond},
		{systemdConfig{restartScale: 1, restartDelay: time.Second}, []string{"RestartSec=10"}, time.Second},
	} {
		s := newSystemd(tt.cfg)
		if got := s.restartDelay(*unitFile(t, append([]string{"ExecStart=/bin/x"}, tt.lines...)...)); got != tt.want {
			t.Errorf("%v with %+v: %s, want %s", tt.lines, tt.cfg, got, tt.want)
		}
	}
}

// Through fleet's API, as the scheduler sees it: a crashing unit under
// Restart=always cycles start-pre → running → auto-restart and never
// fails. Every phase here lasts longer than the agent's 1s state poll,
// so fleet publishes each of them.
func TestFailMarkerRestartLoopThroughFleet(t *testing.T) {
	e := etcdtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Start(ctx, Config{Endpoints: e.Endpoints(), Machines: Machines(1), TTL: 4 * time.Second, EngineInterval: time.Second,
		StartDelay: 1300 * time.Millisecond, CrashAfter: 1300 * time.Millisecond, RestartDelay: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	api := c.API()
	u := svc("loop.service", [3]string{"Service", "ExecStartPre", "/usr/bin/docker pull sim-fail/web"},
		[3]string{"Service", "Restart", "always"}, [3]string{"Service", "RestartSec", "10"})
	u.Options[0].Value = "/usr/bin/docker run sim-fail/web"
	if err := api.CreateUnit(u); err != nil {
		t.Fatal(err)
	}
	var seen []string
	want := "activating/start-pre active/running activating/auto-restart activating/start-pre active/running activating/auto-restart"
	eventually(t, 40*time.Second, "two restart cycles seen through fleet", func() (bool, string) {
		states, err := api.UnitStates()
		if err != nil {
			return false, err.Error()
		}
		for _, s := range states {
			if s.Name != "loop.service" {
				continue
			}
			if st := s.SystemdActiveState + "/" + s.SystemdSubState; len(seen) == 0 || seen[len(seen)-1] != st {
				seen = append(seen, st)
			}
		}
		return strings.Contains(strings.Join(seen, " "), want), fmt.Sprint(seen)
	})
	if strings.Contains(strings.Join(seen, " "), "failed") {
		t.Fatalf("a unit under Restart=always went failed: %v", seen)
	}
	if n := c.Machines()[0].Systemd().Restarts("loop.service"); n < 1 {
		t.Fatalf("NRestarts %d after two cycles", n)
	}
}

// Through fleet's API: a unit with a health check (ExecStartPost) shows
// activating/start-post until its check passes, then runs; one whose check
// never passes goes from start-post to auto-restart after StartPeriod and
// loops under Restart=always, never running and never failed, and ends
// failed without Restart=. Every phase here lasts longer than the agent's
// 1s state poll (start-post 2.5s, so that a loaded machine does not miss
// it), so fleet publishes each of them.
func TestHealthCheckThroughFleet(t *testing.T) {
	e := etcdtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Start(ctx, Config{Endpoints: e.Endpoints(), Machines: Machines(1), TTL: 4 * time.Second, EngineInterval: time.Second,
		StartDelay: 1300 * time.Millisecond, HealthDelay: 2500 * time.Millisecond, StartPeriod: 2500 * time.Millisecond, RestartDelay: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	api := c.API()
	check := [3]string{"Service", "ExecStartPost", "/bin/bash -c 'check' kaylee-health web"}
	pre := [3]string{"Service", "ExecStartPre", "-/usr/bin/docker rm -f web"}
	always := [3]string{"Service", "Restart", "always"}
	healthy := svc("healthy.service", pre, check, always, [3]string{"Service", "RestartSec", "10"})
	sick := svc("sick.service", pre, check, always, [3]string{"Service", "RestartSec", "10"})
	sick.Options[0].Value = "/usr/bin/docker run sim-unhealthy/web"
	once := svc("sick-once.service", pre, check)
	once.Options[0].Value = "/usr/bin/docker run sim-unhealthy/web"
	for _, u := range []*schema.Unit{healthy, sick, once} {
		if err := api.CreateUnit(u); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{
		// start-post is wanted of sick.service, whose check runs it again
		// and again: healthy.service's one start-post may fall between
		// two polls on a loaded machine (CI saw it missed).
		"healthy.service": "activating/start-pre active/running",
		"sick.service":    "activating/start-pre activating/start-post activating/auto-restart activating/start-pre activating/start-post activating/auto-restart",
		// A phase may fall between two of the agent's polls on a loaded
		// machine (CI saw sick.service's first start-post missed), so the
		// states are wanted in this order, not one after the other; the
		// point here is that without Restart= the unit ends failed.
		"sick-once.service": "activating/start-pre failed/failed",
	}
	seen := map[string][]string{}
	eventually(t, 40*time.Second, "start-post seen, and two failed checks", func() (bool, string) {
		states, err := api.UnitStates()
		if err != nil {
			return false, err.Error()
		}
		for _, s := range states {
			if st := s.SystemdActiveState + "/" + s.SystemdSubState; len(seen[s.Name]) == 0 || seen[s.Name][len(seen[s.Name])-1] != st {
				seen[s.Name] = append(seen[s.Name], st)
			}
		}
		for name, w := range want {
			if !inOrder(seen[name], strings.Fields(w)) {
				return false, fmt.Sprint(seen)
			}
		}
		return true, ""
	})
	if got := strings.Join(seen["healthy.service"], " "); strings.Contains(got, "auto-restart") || strings.Contains(got, "failed") {
		t.Fatalf("a unit whose check passes: %s", got)
	}
	if got := strings.Join(seen["sick.service"], " "); strings.Contains(got, "running") || strings.Contains(got, "failed") {
		t.Fatalf("a unit whose check never passes under Restart=always: %s", got)
	}
	if n := c.Machines()[0].Systemd().Restarts("sick.service"); n < 1 {
		t.Fatalf("NRestarts %d after two failed checks", n)
	}
}

// inOrder reports whether seen holds want's states in want's order, others
// possibly between them: a state that falls between two polls is missed.
func inOrder(seen, want []string) bool {
	i := 0
	for _, s := range seen {
		if i < len(want) && s == want[i] {
			i++
		}
	}
	return i == len(want)
}

// StopDelay: a running unit that is stopped spends it in
// deactivating/stop-sigterm, a second stop does not cut it short, and
// one waiting in auto-restart stops at once.
func TestStopDelay(t *testing.T) {
	s := newSystemd(systemdConfig{startDelay: 20 * time.Millisecond, stopDelay: 100 * time.Millisecond})
	if err := s.Load("u.service", *unitFile(t, "ExecStart=/bin/db")); err != nil {
		t.Fatal(err)
	}
	_ = s.TriggerStart("u.service")
	time.Sleep(60 * time.Millisecond)
	_ = s.TriggerStop("u.service")
	_ = s.TriggerStop("u.service")
	if got := strings.Join(states(s, "u.service", 200*time.Millisecond), " "); got != "deactivating/stop-sigterm inactive/dead" {
		t.Fatalf("states after stop: %q", got)
	}
	s = newSystemd(systemdConfig{startDelay: 20 * time.Millisecond, stopDelay: 100 * time.Millisecond})
	_ = s.Load("u.service", *unitFile(t, "ExecStart=/bin/db"))
	s.mu.Lock()
	s.units["u.service"].active, s.units["u.service"].sub = "activating", "auto-restart"
	s.mu.Unlock()
	_ = s.TriggerStop("u.service")
	if a, sub := s.State("u.service"); a+"/"+sub != "inactive/dead" {
		t.Fatalf("auto-restart stopped: %s/%s", a, sub)
	}
}

// A Type=oneshot unit exits once: active/exited with RemainAfterExit=yes
// (inactive/dead without), failed with the fail marker or on a machine
// whose oneshots fail.
func TestOneshot(t *testing.T) {
	cfg := systemdConfig{startDelay: 50 * time.Millisecond, failMarker: "sim-fail", restartScale: 1}
	for _, tt := range []struct {
		name  string
		lines []string
		fail  bool
		want  string
	}{
		{"passes, remains", []string{"Type=oneshot", "RemainAfterExit=yes", "ExecStart=/bin/probe"}, false, "activating/start active/exited"},
		{"passes", []string{"Type=oneshot", "ExecStart=/bin/probe"}, false, "activating/start inactive/dead"},
		{"fail marker", []string{"Type=oneshot", "RemainAfterExit=yes", "ExecStart=/bin/sim-fail"}, false, "activating/start failed/failed"},
		{"the machine fails oneshots", []string{"Type=oneshot", "RemainAfterExit=yes", "ExecStart=/bin/probe", "Restart=always"}, true, "activating/start failed/failed"},
		{"the machine fails oneshots, not services", []string{"ExecStart=/bin/web"}, true, "activating/start active/running"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newSystemd(cfg)
			s.SetOneshotsFail(tt.fail)
			if err := s.Load("u.service", *unitFile(t, tt.lines...)); err != nil {
				t.Fatal(err)
			}
			if err := s.TriggerStart("u.service"); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(states(s, "u.service", 300*time.Millisecond), " "); got != tt.want {
				t.Fatalf("states %q, want %q", got, tt.want)
			}
		})
	}
}
