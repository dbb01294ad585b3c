package fleetsim

import (
	"strings"
	"sync"
	"time"

	"github.com/coreos/fleet/pkg"
	"github.com/coreos/fleet/unit"
)

// Systemd is the simulated systemd of one machine, behind fleet's
// unit.UnitManager. Starting a unit takes StartDelay and then it runs,
// unless its unit file contains the fail marker, in which case it fails.
// Its states carry the unit hash, as the real manager's do, so that fleet
// publishes them.
type Systemd struct {
	startDelay time.Duration
	failMarker string

	mu    sync.Mutex
	units map[string]*simUnit
}

type simUnit struct {
	file   unit.UnitFile
	hash   string
	active string
	sub    string
	timer  *time.Timer
}

var _ unit.UnitManager = (*Systemd)(nil)

func newSystemd(startDelay time.Duration, failMarker string) *Systemd {
	return &Systemd{startDelay: startDelay, failMarker: failMarker, units: map[string]*simUnit{}}
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

// TriggerStart starts a unit asynchronously.
func (s *Systemd) TriggerStart(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.units[name]
	if !ok || u.active == "active" || u.active == "activating" {
		return nil
	}
	u.active, u.sub = "activating", "start"
	fail := strings.Contains(u.file.String(), s.failMarker)
	var t *time.Timer
	t = time.AfterFunc(s.startDelay, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if u.timer != t { // stopped or restarted meanwhile
			return
		}
		u.timer = nil
		if fail {
			u.active, u.sub = "failed", "failed"
		} else {
			u.active, u.sub = "active", "running"
		}
	})
	u.timer = t
	return nil
}

// TriggerStop stops a unit.
func (s *Systemd) TriggerStop(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.units[name]; ok {
		u.stopTimer()
		if u.active != "failed" {
			u.active, u.sub = "inactive", "dead"
		}
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
