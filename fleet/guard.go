package fleet

import (
	"context"
	"sync"
	"time"
)

// A fleet call cannot be fenced: fleet's registry is in etcd's v2
// keyspace, which a v3 transaction cannot guard. So the leader makes one
// only within a window in which its leadership is known to stand: it
// confirms its election key (a linearizable read) and its lease's time to
// live, and calls until the lease could have expired (at most
// maxConfirmAge later); then it confirms again. A leader that froze after
// a confirmation finds the window gone when it wakes, confirms again, and
// learns it was deposed before making any call.

// maxConfirmAge bounds the time between a confirmation and a fleet call,
// whatever the lease's time to live.
const maxConfirmAge = time.Second

// guard gives the go-ahead for fleet calls during one pass.
type guard struct {
	confirm   func(ctx context.Context) (time.Duration, error)
	confirmed func() // after each confirmation (a test hook); may be nil

	mu    sync.Mutex
	until time.Time // calls may be made before this (monotonic clock)
	err   error     // once leadership could not be confirmed: every call is refused
}

// allow returns nil when a fleet call may be made now, after confirming
// leadership if the last confirmation is too old; otherwise the error that
// ends the pass (store.ErrNotLeader, or etcd's).
func (g *guard) allow(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.err == nil && !time.Now().Before(g.until) {
		start := time.Now()
		window, err := g.confirm(ctx)
		if err != nil {
			g.err = err
			break
		}
		if window <= 0 { // under a second of lease left: wait for the keep-alive
			if !sleep(ctx, 100*time.Millisecond) {
				g.err = ctx.Err()
			}
			continue
		}
		g.until = start.Add(min(window, maxConfirmAge))
		if g.confirmed != nil {
			g.confirmed()
		}
	}
	return g.err
}
