package fleet

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
)

// The guard confirms before the first call, not again within the window,
// again once the window is over (as after a freeze), and refuses every
// call once leadership is gone.
func TestGuard(t *testing.T) {
	ctx := context.Background()
	confirms := 0
	deposed := false
	g := &guard{confirm: func(context.Context) (time.Duration, error) {
		confirms++
		if deposed {
			return 0, store.ErrNotLeader
		}
		return 200 * time.Millisecond, nil
	}}
	steps := []struct {
		name     string
		before   func()
		err      error
		confirms int
	}{
		{"first call confirms", nil, nil, 1},
		{"within the window: no confirmation", nil, nil, 1},
		{"after a freeze longer than the window: confirms again", func() { time.Sleep(250 * time.Millisecond) }, nil, 2},
		{"deposed while frozen: refused", func() { deposed = true; time.Sleep(250 * time.Millisecond) }, store.ErrNotLeader, 3},
		{"refused from then on, without asking etcd", func() { deposed = false }, store.ErrNotLeader, 3},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		if err := g.allow(ctx); !errors.Is(err, s.err) || confirms != s.confirms {
			t.Fatalf("%s: err %v, %d confirmations; want %v, %d", s.name, err, confirms, s.err, s.confirms)
		}
	}
}

// Under a second of lease left (TTL 0): the guard waits for the
// keep-alive instead of calling or giving up.
func TestGuardWaitsForKeepAlive(t *testing.T) {
	windows := []time.Duration{0, 0, time.Second}
	g := &guard{confirm: func(context.Context) (time.Duration, error) {
		w := windows[0]
		windows = windows[1:]
		return w, nil
	}}
	if err := g.allow(context.Background()); err != nil || len(windows) != 0 {
		t.Fatalf("err %v, %d confirmations left", err, len(windows))
	}
}

// A confirmation that takes longer than maxConfirmAge (an etcd under
// load: 0.06 to 0.57 s per read at 1,000 units on 2 cores, docs/benchmarks.md)
// still opens a window: the window's second counts from the answer, its
// lease time from the question.
func TestGuardSlowConfirmation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	confirms := 0
	g := &guard{confirm: func(ctx context.Context) (time.Duration, error) {
		confirms++
		if !sleep(ctx, maxConfirmAge+200*time.Millisecond) {
			return 0, ctx.Err()
		}
		return 10 * time.Second, nil
	}}
	if err := g.allow(ctx); err != nil || confirms != 1 {
		t.Fatalf("allow: %v after %d confirmations of %s each; want a call allowed after one", err, confirms, maxConfirmAge+200*time.Millisecond)
	}
}

// The window is renewed before it ends: when less of it is left than the
// last confirmation took, one caller confirms while the others go on
// calling in what is left, so a slow etcd does not stop every call for
// each confirmation.
func TestGuardRenewsAhead(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var (
		mu       sync.Mutex
		n        int
		inFlight bool
		release  = make(chan struct{})
	)
	const took = 300 * time.Millisecond
	g := &guard{confirm: func(ctx context.Context) (time.Duration, error) {
		mu.Lock()
		n++
		first := n == 1
		inFlight = !first
		mu.Unlock()
		if first {
			sleep(ctx, took)
			return 10 * time.Second, nil
		}
		select { // the second confirmation answers when the test says
		case <-release:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		mu.Lock()
		inFlight = false
		mu.Unlock()
		return 10 * time.Second, nil
	}}
	flying := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return inFlight
	}
	if err := g.allow(ctx); err != nil {
		t.Fatal(err)
	}
	// Two callers; one of them will be the one to renew.
	allowedDuring := make(chan int, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			during := 0
			for end := time.Now().Add(maxConfirmAge); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
				before := flying()
				if g.allow(ctx) != nil {
					break
				}
				if before && flying() { // allowed, not held until the answer
					during++
				}
			}
			allowedDuring <- during
		}()
	}
	time.Sleep(maxConfirmAge - 100*time.Millisecond)
	close(release)
	wg.Wait()
	close(allowedDuring)
	total := 0
	for d := range allowedDuring {
		total += d
	}
	mu.Lock()
	defer mu.Unlock()
	if n != 2 || total == 0 {
		t.Fatalf("%d confirmations, %d calls allowed while the second was in flight; want 2 and some", n, total)
	}
}
