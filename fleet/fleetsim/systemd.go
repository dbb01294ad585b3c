package fleetsim

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/fleet/pkg"
	"github.com/coreos/fleet/unit"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// Systemd is the simulated systemd of one machine, behind fleet's
// unit.UnitManager. Its states carry the unit hash, as the real manager's
// do, so that fleet publishes them.
//
// Starting a unit takes StartDelay, spent in activating/start-pre when
// the unit file has ExecStartPre lines (real systemd runs them there;
// the ExecStart of a Type=simple service is up at once) and in
// activating/start otherwise; then, when the unit file has an
// ExecStartPost line (Kaylee renders a spec's health checks as one, which
// exits 0 once the check passes), it spends HealthDelay in
// activating/start-post; then it runs (active/running).
//
// A unit whose unit file contains the fail marker does what a process
// that exits 1 does under systemd:
//   - with Restart=always or Restart=on-failure, it runs for CrashAfter,
//     exits, waits in activating/auto-restart (RestartSec, scaled: see
//     Config.RestartDelay), starts again (start-pre, running, ...) and so
//     on forever, counting restarts (systemd's NRestarts, see Restarts);
//   - without them it fails: failed/failed once started.
//
// A unit with ExecStartPost whose unit file contains the unhealthy marker
// (or the fail marker: a check cannot pass against a process that
// crashed, and systemd lets ExecStartPost finish before it acts on the
// main process's exit) never passes its check: it stays in
// activating/start-post for StartPeriod, then ExecStartPost exits 1 and
// systemd fails the start: under Restart= it goes to
// activating/auto-restart and loops as above (never running), without it
// ends failed/failed.
//
// Differences from systemd 252 that remain: systemd's start rate limit
// (StartLimitBurst=5 per StartLimitIntervalSec=10s, after which a
// restarting unit ends failed/start-limit-hit) is not modelled, so a
// simulated unit loops forever whatever its delays (Kaylee's RestartSec=10
// never reaches that limit on real systemd either); a failing unit
// without Restart= goes to failed without a running moment; ExecStartPre
// never fails on its own (the marker crashes the main process); a failed
// ExecStartPost goes straight to auto-restart (systemd passes through
// deactivating/stop and stop-post, running ExecStop and ExecStopPost,
// which can take seconds); a running unit never fails a check later (the
// rendered script kills it; here it runs on); and stopping a unit is
// instant (no ExecStop, no TimeoutStopSec) unless Config.StopDelay is set.
//
// A Type=oneshot unit (Kaylee's primary probes) runs its ExecStart once,
// after StartDelay in activating/start: it exits 0 unless it holds the
// fail marker or the machine fails oneshots (SetOneshotsFail), then ends
// active/exited with RemainAfterExit=yes, inactive/dead without; exiting
// 1, it ends failed/failed. Restart= is not applied to oneshots.
type Systemd struct {
	cfg systemdConfig

	mu           sync.Mutex
	units        map[string]*simUnit
	oneshotsFail bool
}

// SetOneshotsFail makes the Type=oneshot units that start on this
// machine from now on exit 1 (fail), or 0 again: a primary probe answers
// "primary" only where it passes.
func (s *Systemd) SetOneshotsFail(fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oneshotsFail = fail
}

// systemdConfig is the part of Config a machine's systemd uses.
type systemdConfig struct {
	startDelay      time.Duration
	failMarker      string
	crashAfter      time.Duration
	restartDelay    time.Duration // > 0: every auto-restart waits this long
	restartScale    float64       // else RestartSec × restartScale
	healthDelay     time.Duration // in start-post before a check passes
	unhealthyMarker string        // a unit containing it never passes its check
	startPeriod     time.Duration // in start-post before a check gives up
	stopDelay       time.Duration // in deactivating/stop-sigterm when stopped
}

type simUnit struct {
	file     unit.UnitFile
	hash     string
	active   string
	sub      string
	timer    *time.Timer
	restarts int // systemd's NRestarts: automatic restarts since the last start
}

var _ unit.UnitManager = (*Systemd)(nil)

func newSystemd(cfg systemdConfig) *Systemd {
	return &Systemd{cfg: cfg, units: map[string]*simUnit{}}
}

// Load records a unit file, as writing it to /run/fleet/units would.
func (s *Systemd) Load(name string, u unit.UnitFile) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.units[name]; ok {
		old.file, old.hash = u, u.Hash().String()
		return nil
	}
	s.units[name] = &simUnit{file: u, hash: u.Hash().String(), active: "inactive", sub: "dead"}
	return nil
}

// Unload forgets a unit; a running one stops.
func (s *Systemd) Unload(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.units[name]; ok {
		u.stopTimer()
		delete(s.units, name)
	}
	return nil
}

// ReloadUnitFiles is systemctl daemon-reload: nothing to do here.
func (s *Systemd) ReloadUnitFiles() error { return nil }

// TriggerStart starts a unit asynchronously. As on systemd, a unit that is
// up or on its way up (activating/auto-restart included: the start waits
// for the restart timer) is left alone, and a start by hand resets the
// restart counter.
func (s *Systemd) TriggerStart(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.units[name]
	if !ok || u.active == "active" || u.active == "activating" {
		return nil
	}
	u.restarts = 0
	s.start(u)
	return nil
}

// start runs a unit's start: start-pre (or start), start-post when the
// unit has ExecStartPost, then running, or a crash. Called with s.mu held.
func (s *Systemd) start(u *simUnit) {
	u.active, u.sub = "activating", "start"
	if len(u.file.Contents["Service"]["ExecStartPre"]) > 0 {
		u.sub = "start-pre"
	}
	text := u.file.String()
	fail := s.cfg.failMarker != "" && strings.Contains(text, s.cfg.failMarker)
	if last(u.file, "Type") == "oneshot" {
		fail = fail || s.oneshotsFail
		s.after(u, s.cfg.startDelay, func() {
			switch {
			case fail:
				u.active, u.sub = "failed", "failed"
			case last(u.file, "RemainAfterExit") == "yes":
				u.active, u.sub = "active", "exited"
			default:
				u.active, u.sub = "inactive", "dead"
			}
		})
		return
	}
	// An ExecStartPost is a health check, except Kaylee's removal of
	// decrypted secrets, which is done at once.
	check := slices.ContainsFunc(u.file.Contents["Service"]["ExecStartPost"], func(l string) bool { return !deploy.IsSecretsCleanup(l) })
	unhealthy := check && (fail || s.cfg.unhealthyMarker != "" && strings.Contains(text, s.cfg.unhealthyMarker))
	s.after(u, s.cfg.startDelay, func() {
		switch {
		case unhealthy:
			u.active, u.sub = "activating", "start-post"
			s.after(u, s.cfg.startPeriod, func() { s.exited(u) })
		case check:
			u.active, u.sub = "activating", "start-post"
			s.after(u, s.cfg.healthDelay, func() { s.run(u, fail) })
		default:
			s.run(u, fail)
		}
	})
}

// run has a started unit run; a failing one crashes. Called with s.mu held.
func (s *Systemd) run(u *simUnit, fail bool) {
	switch {
	case !fail:
		u.active, u.sub = "active", "running"
	case restarts(u.file):
		u.active, u.sub = "active", "running"
		s.after(u, s.cfg.crashAfter, func() { s.exited(u) })
	default:
		u.active, u.sub = "failed", "failed"
	}
}

// exited is a start or a run that ended in failure: systemd restarts the
// unit under Restart=, else it fails. Called with s.mu held.
func (s *Systemd) exited(u *simUnit) {
	if !restarts(u.file) {
		u.active, u.sub = "failed", "failed"
		return
	}
	u.active, u.sub = "activating", "auto-restart"
	s.after(u, s.restartDelay(u.file), func() {
		u.restarts++
		s.start(u)
	})
}

// after runs f (with s.mu held) in d, unless the unit is stopped, unloaded
// or set on another course meanwhile.
func (s *Systemd) after(u *simUnit, d time.Duration, f func()) {
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if u.timer != t {
			return
		}
		u.timer = nil
		f()
	})
	u.timer = t
}

// restartDelay is how long a crashed unit waits in auto-restart.
func (s *Systemd) restartDelay(f unit.UnitFile) time.Duration {
	if s.cfg.restartDelay > 0 {
		return s.cfg.restartDelay
	}
	sec := 100 * time.Millisecond // systemd's default RestartSec
	if v := f.Contents["Service"]["RestartSec"]; len(v) > 0 {
		if d, ok := deploy.ParseTimespan(v[len(v)-1]); ok {
			sec = d
		}
	}
	return time.Duration(float64(sec) * s.cfg.restartScale)
}

// last is the last value of a [Service] option, "" for none.
func last(f unit.UnitFile, name string) string {
	v := f.Contents["Service"][name]
	if len(v) == 0 {
		return ""
	}
	return strings.TrimSpace(v[len(v)-1])
}

// restarts: systemd restarts a main process that exits non-zero under
// Restart=always and Restart=on-failure (the last assignment counts).
func restarts(f unit.UnitFile) bool {
	v := f.Contents["Service"]["Restart"]
	if len(v) == 0 {
		return false
	}
	switch strings.TrimSpace(v[len(v)-1]) {
	case "always", "on-failure":
		return true
	}
	return false
}

// TriggerStop stops a unit. A unit waiting in auto-restart ends
// inactive/dead, as on systemd; a failed one stays failed. With a stop
// delay, a unit up or starting spends it in deactivating/stop-sigterm
// first (a stop already under way goes on).
func (s *Systemd) TriggerStop(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.units[name]
	if !ok || u.active == "deactivating" {
		return nil
	}
	u.stopTimer()
	switch {
	case u.active == "failed":
	case s.cfg.stopDelay > 0 && (u.active == "active" || u.active == "activating" && u.sub != "auto-restart"):
		u.active, u.sub = "deactivating", "stop-sigterm"
		s.after(u, s.cfg.stopDelay, func() { u.active, u.sub = "inactive", "dead" })
	default:
		u.active, u.sub = "inactive", "dead"
	}
	return nil
}

// Units lists the loaded units.
func (s *Systemd) Units() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.units))
	for n := range s.units {
		out = append(out, n)
	}
	return out, nil
}

// GetUnitStates returns the states of the loaded units named in filter.
func (s *Systemd) GetUnitStates(filter pkg.Set) (map[string]*unit.UnitState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]*unit.UnitState{}
	for _, n := range filter.Values() {
		if u, ok := s.units[n]; ok {
			out[n] = u.state(n)
		}
	}
	return out, nil
}

// GetUnitState returns one unit's state, or nil when it is not loaded.
func (s *Systemd) GetUnitState(name string) (*unit.UnitState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.units[name]; ok {
		return u.state(name), nil
	}
	return nil, nil
}

// State is what the simulated systemd says of a unit: ActiveState and
// SubState, or "" when the unit is not loaded.
func (s *Systemd) State(name string) (active, sub string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.units[name]; ok {
		return u.active, u.sub
	}
	return "", ""
}

// Restarts is systemd's NRestarts of a unit: how many times it was
// restarted automatically since it was last started (0 when not loaded).
func (s *Systemd) Restarts(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.units[name]; ok {
		return u.restarts
	}
	return 0
}

// crash stops every unit at once, as a machine that dies does.
func (s *Systemd) crash() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n, u := range s.units {
		u.stopTimer()
		delete(s.units, n)
	}
}

func (u *simUnit) stopTimer() {
	if u.timer != nil {
		u.timer.Stop()
		u.timer = nil
	}
}

func (u *simUnit) state(name string) *unit.UnitState {
	return &unit.UnitState{LoadState: "loaded", ActiveState: u.active, SubState: u.sub, UnitHash: u.hash, UnitName: name}
}
