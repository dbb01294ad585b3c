package fleetreg

import (
	"maps"
	"strings"
	"sync"
	"time"

	etcd "github.com/coreos/etcd/client"
)

// A unit state can leave fleet's registry two ways, and only the watch
// tells them apart: fleet's agent removes the states of a unit it no
// longer runs (it unloaded it: unscheduled, or in conflict with a unit
// loaded before it), a delete of <prefix>/states/<unit>; or etcd drops a
// state its agent was late to publish again, an expiry at its TTL, the
// replica still running. StateChanges records the first kind.

// removalsKept is how long a removal is remembered.
const removalsKept = 10 * time.Minute

// stateRemovals are the unit states fleet's agents removed: by
// "<unit>" (all its states, as fleet's agent removes them) or
// "<unit>/<machine>", the time StateChanges saw it; seq counts them.
type stateRemovals struct {
	mu  sync.Mutex
	at  map[string]time.Time
	seq uint64
}

// record notes the removal an event of the watch on statesKey tells of,
// if it is one.
func (s *stateRemovals) record(statesKey string, r *etcd.Response, now time.Time) {
	if r == nil || r.Node == nil || (r.Action != "delete" && r.Action != "compareAndDelete") {
		return
	}
	if !strings.HasPrefix(r.Node.Key, statesKey+"/") {
		return
	}
	rel := relKey(statesKey, r.Node.Key)
	if rel == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at[rel] = now
	s.seq++
	for k, t := range s.at {
		if now.Sub(t) > removalsKept {
			delete(s.at, k)
		}
	}
}

// StateRemovals returns the unit states fleet's agents removed (not those
// that expired) that the watch of StateChanges saw in the last minutes:
// when, by "<unit>" (every state of the unit) or "<unit>/<machine>"; and
// a count that grows with each one. Without StateChanges running, or
// after a removal its watch missed (etcd's event history passed), it
// knows nothing of them.
func (a *API) StateRemovals() (map[string]time.Time, uint64) {
	a.removed.mu.Lock()
	defer a.removed.mu.Unlock()
	return maps.Clone(a.removed.at), a.removed.seq
}
