package fleet

import (
	"context"
	"regexp"
	"sync"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet/fleetreg"
)

// LeftoverSweeper is a fleet client that can remove what fleet's registry
// keeps of destroyed fleet units (fleetreg.API, the registry in etcd;
// fleet's HTTP API cannot, and the scheduler then leaves them).
type LeftoverSweeper interface {
	SweepLeftovers(ctx context.Context, ownsName func(name string) bool, ownsFile func(text string) bool) (fleetreg.Leftovers, error)
}

// sweeper says when a pass removes what fleet keeps of the fleet units
// the scheduler destroyed: their unit files, which fleet never deletes
// and every agent of fleet reads and parses on each of its
// reconciliations (a rollout leaves one per replaced replica, forever),
// and the directories their last heartbeats recreate. It is due
// SweepDelay after a term starts (what a former leader left), and
// SweepDelay after a destroy: by then the destroyed unit's last
// heartbeat has expired (fleet's agent TTL), so its directory is empty.
// A destroy within SweepDelay before a sweep's read makes one more due.
type sweeper struct {
	delay time.Duration

	mu          sync.Mutex // destroyed is called by the pass's workers
	due         time.Time  // zero: none due
	lastDestroy time.Time
	off         bool // the fleet client cannot sweep
}

func newSweeper(delay time.Duration, now time.Time) *sweeper {
	return &sweeper{delay: delay, due: now.Add(delay)}
}

// destroyed records a fleet unit destroyed at now.
func (s *sweeper) destroyed(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastDestroy = now
	if s.due.IsZero() && !s.off {
		s.due = now.Add(s.delay)
	}
}

// next is when a sweep is due; zero when none is.
func (s *sweeper) next() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.due
}

// ready says whether a sweep is due at now.
func (s *sweeper) ready(now time.Time) bool {
	due := s.next()
	return !due.IsZero() && !now.Before(due)
}

// retry puts a sweep that could not be made off until delay after now.
func (s *sweeper) retry(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.due = now.Add(s.delay)
}

// stop makes no sweep due any more.
func (s *sweeper) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.due, s.off = time.Time{}, true
}

// swept records a sweep that read fleet's registry at start.
func (s *sweeper) swept(start time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.due = time.Time{}
	if !s.lastDestroy.IsZero() && s.lastDestroy.After(start.Add(-s.delay)) {
		s.due = s.lastDestroy.Add(s.delay)
	}
}

// sweepLeftovers removes, when due, what fleet keeps of this scheduler's
// destroyed fleet units: unit files that render one of its own fleet
// units (KAYLEE_ID under its prefix, unique to one fleet unit name) that
// no fleet unit uses, and empty directories under its own fleet unit
// names. It runs after the pass's fleet calls, so no create of its own is
// under way, within a window of confirmed leadership. A failure is
// logged; the next pass tries again.
func (t *term) sweepLeftovers(ctx context.Context) {
	now := time.Now()
	if !t.sweep.ready(now) {
		return
	}
	sw, ok := t.api.(LeftoverSweeper)
	if !ok { // fleet's HTTP API: it cannot delete them
		t.sweep.stop()
		return
	}
	if err := t.leaderGuard().allow(ctx); err != nil {
		t.log.Warn("fleet's leftovers not removed: leadership could not be confirmed", "err", err)
		t.sweep.retry(now)
		return
	}
	prefix := t.opts.UnitPrefix
	left, err := sw.SweepLeftovers(ctx,
		func(name string) bool { _, ok := deploy.ParseUnitName(prefix, name); return ok },
		ownUnitFile(prefix).MatchString)
	if err != nil {
		t.log.Warn("removing fleet's leftovers of destroyed fleet units failed; will retry", "err", err, "in", t.sweep.delay)
		t.sweep.retry(now)
		return
	}
	t.sweep.swept(now)
	if left.UnitFiles+left.Dirs > 0 {
		t.log.Info("removed what fleet kept of destroyed fleet units", "unitFiles", left.UnitFiles, "emptyDirs", left.Dirs)
	}
}

// ownUnitFile matches a unit file Kaylee rendered under prefix: its
// KAYLEE_ID is <prefix>_<name>_<spec hash>_<group>_<index>
// (deploy.UnitName.InstanceID), unique to one fleet unit name. The
// original monder/kaylee's IDs have no group and no prefix.
func ownUnitFile(prefix string) *regexp.Regexp {
	return regexp.MustCompile(`KAYLEE_ID=` + regexp.QuoteMeta(prefix) + `_[a-z0-9-]+_[0-9a-f]{8}_[0-9a-f]{6}_[0-9]+`)
}
