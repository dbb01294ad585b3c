package fleetreg

import (
	"strings"
	"sync"
	"time"

	etcd "github.com/coreos/etcd/client"
)

// What StateChanges's watch tells its caller. fleet's agents publish each
// state again, unchanged, every 4/5 of its TTL; on a loaded etcd many are
// late, and etcd drops them at their TTL until their agent publishes them
// again, unchanged: at 1,000 units × 3 on 10 simulated machines, up to 89
// such expiries and returns a second with every replica running. The
// scheduler holds a vanished state while its machine stays listed
// (fleet's plan_held.go), so neither the expiry nor the return changes
// what it plans; told of each, it listed every state to find that out,
// 15 % of a core on an idle cluster (docs/benchmarks.md).
//
// So the watch keeps each state's last value and counts two things:
// changes (a new value, a new state, a removal by fleet's agent, the
// first start of the watch) and expiries. A state published again with its
// last value is neither; nor is one back with its last value within
// hold of its expiry. The caller is told of both kinds, and tells them
// apart by the counts (StateSeqs).
//
// A state's expiry matters to the scheduler when its machine left fleet
// (its agent died): a second watch, of fleet's machines, counts each
// machine that comes, leaves or changes its record as a change (their
// records too are published again, unchanged, with a TTL).

// stateValues are the records of a directory (unit states, by
// "<unit>/<machine>"; machines) as its watch last saw them, and the
// counts.
type stateValues struct {
	mu   sync.Mutex
	hold time.Duration
	// expiryChanges: an expiry is a change (a machine's record: the
	// machine left).
	expiryChanges     bool
	values            map[string]seenValue
	changes, expiries uint64
	pruned            time.Time // when expired values were last dropped
}

// seenValue is a state's last value, and when it expired (zero: it has
// not since).
type seenValue struct {
	value   string
	expired time.Time
}

// reset starts from a listing of the directory (its node, nil when it
// does not exist), taken when the watch starts. The first one is a
// change. A later one (the watch broke: on a loaded etcd its event
// history of 1,000 events passes within seconds) is compared with what
// the watch saw before: a record with another value, or a new one, is a
// change; one gone is an expiry (a removal the watch missed leaves the
// state held, stateHold at most, as documented in fleet's plan_held.go),
// or a change when expiries are; the same values are none. So a watch
// that falls behind does not make the scheduler plan again each time.
func (s *stateValues) reset(dir *etcd.Node, hold time.Duration, now time.Time) {
	values := map[string]seenValue{}
	var walk func(n *etcd.Node)
	walk = func(n *etcd.Node) {
		for _, c := range n.Nodes {
			if c.Dir {
				walk(c)
			} else {
				values[relKey(dir.Key, c.Key)] = seenValue{value: c.Value}
			}
		}
	}
	if dir != nil {
		walk(dir)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	changed, expired := s.values == nil, false
	for k, v := range values {
		last, ok := s.values[k]
		if !ok || last.value != v.value || !last.expired.IsZero() && now.Sub(last.expired) > hold {
			changed = true
		}
	}
	for k, last := range s.values {
		if _, ok := values[k]; ok {
			continue
		}
		if last.expired.IsZero() {
			last.expired, expired = now, true
		}
		if !s.expiryChanges {
			values[k] = last // remembered, as after an expiry the watch saw
		}
	}
	s.values, s.hold = values, hold
	switch {
	case changed, expired && s.expiryChanges:
		s.changes++
	case expired:
		s.expiries++
	}
}

// apply takes in one event of the watch on dir and says whether it is
// one to tell: a change or an expiry.
func (s *stateValues) apply(dir string, r *etcd.Response, now time.Time) bool {
	if r == nil || r.Node == nil {
		return true
	}
	rel := relKey(dir, r.Node.Key)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.Action {
	case "set", "create", "update", "compareAndSwap":
		if r.Node.Dir {
			return false // a unit's directory: its states tell
		}
		last, ok := s.values[rel]
		s.values[rel] = seenValue{value: r.Node.Value}
		if ok && last.value == r.Node.Value && (last.expired.IsZero() || now.Sub(last.expired) <= s.hold) {
			return false // published again, or back within hold
		}
		s.changes++
	case "expire":
		if last, ok := s.values[rel]; ok && !r.Node.Dir {
			last.expired = now
			s.values[rel] = last
		}
		s.expiries++
		if s.expiryChanges {
			delete(s.values, rel)
			s.changes++
		}
		s.prune(now)
	default: // delete, compareAndDelete: fleet's agent removed it (or all of a unit's)
		for k := range s.values {
			if rel == "" || k == rel || strings.HasPrefix(k, rel+"/") {
				delete(s.values, k)
			}
		}
		s.changes++
	}
	return true
}

// prune drops, at most once a hold (or a minute), the values that expired more than a
// hold ago (a dead agent's states never come back): back now, they are
// a change whether remembered or not.
func (s *stateValues) prune(now time.Time) {
	if now.Sub(s.pruned) < max(s.hold, time.Minute) {
		return
	}
	s.pruned = now
	for k, v := range s.values {
		if !v.expired.IsZero() && now.Sub(v.expired) > s.hold {
			delete(s.values, k)
		}
	}
}

// relKey is key below dir: "<unit>/<machine>" or "<unit>".
func relKey(dir, key string) string {
	return strings.TrimPrefix(strings.TrimPrefix(key, strings.TrimSuffix(dir, "/")), "/")
}

// counts returns s's counts.
func (s *stateValues) counts() (changes, expiries uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changes, s.expiries
}

// StateSeqs returns how many changes and how many state expiries the
// watches of StateChanges have seen (see statewatch.go): a caller that
// remembers them knows, when told, whether anything but expiries came.
// A change is one of a unit state or of fleet's machines; the first
// start of each watch counts as one (a start again counts what changed
// meanwhile: see reset).
func (a *API) StateSeqs() (changes, expiries uint64) {
	sc, se := a.values.counts()
	mc, _ := a.machines.counts()
	return sc + mc, se
}
