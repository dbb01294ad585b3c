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
// live, and calls until the lease could have expired, counted from before
// the question, and at most maxConfirmAge after the answer; then it
// confirms again. A leader that froze after a confirmation finds the
// window gone when it wakes, confirms again, and learns it was deposed
// before making any call.
//
// The window is renewed ahead of its end: once less of it is left than
// the last confirmation took, one caller confirms while the others go on
// calling in what is left. On an etcd that takes 0.15 to 0.9 s to answer
// (1,000 units on a loaded cluster) calls no longer stop for every
// confirmation, and one slower than maxConfirmAge still opens a window.

// maxConfirmAge bounds the time between a confirmation's answer and a
// fleet call, whatever the lease's time to live.
const maxConfirmAge = time.Second

// guard gives the go-ahead for fleet calls during one pass.
type guard struct {
	confirm   func(ctx context.Context) (time.Duration, error)
	confirmed func() // after each confirmation (a test hook); may be nil

	mu       sync.Mutex
	answered sync.Cond     // broadcast when a confirmation ends (L is mu)
	until    time.Time     // calls may be made before this (monotonic clock)
	took     time.Duration // how long the last confirmation took
	asking   bool          // a caller is confirming
	err      error         // once leadership could not be confirmed: every call is refused
}

// allow returns nil when a fleet call may be made now, after confirming
// leadership if the window is over (or renewing it if it is nearly);
// otherwise the error that ends the pass (store.ErrNotLeader, or etcd's).
func (g *guard) allow(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.answered.L == nil {
		g.answered.L = &g.mu
	}
	asked := false // by this caller: it calls in the window its answer opened
	for g.err == nil {
		left := time.Until(g.until)
		switch {
		case left > 0 && (g.asking || asked || left > g.took):
			return nil
		case left > 0 || !g.asking:
			g.ask(ctx) // nearly over: renew; over: confirm before calling
			asked = true
		default:
			g.answered.Wait() // over, and another caller is confirming
		}
	}
	return g.err
}

// ask confirms leadership without holding mu (other callers go on within
// the window), and moves the window's end. Called with mu held.
func (g *guard) ask(ctx context.Context) {
	g.asking = true
	g.mu.Unlock()
	start := time.Now()
	window, err := g.confirm(ctx)
	answer := time.Now()
	if err == nil && window <= 0 { // under a second of lease left: wait for the keep-alive
		if !sleep(ctx, 100*time.Millisecond) {
			err = ctx.Err()
		}
	}
	g.mu.Lock()
	g.asking = false
	g.answered.Broadcast()
	g.took = answer.Sub(start)
	switch {
	case err != nil:
		g.err = err
	case window > 0:
		// The lease's time counts from before the question (window is
		// what was left when etcd answered), the second from the answer.
		if end := minTime(start.Add(window), answer.Add(maxConfirmAge)); end.After(g.until) {
			g.until = end
		}
		if g.confirmed != nil {
			g.confirmed()
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
