package fleet

import (
	"context"
	"errors"
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
