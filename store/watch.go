package store

import (
	"context"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Wakeups tells a waiter when to read again: after each change of any key
// under the prefix (one pending wake-up stands for many), and at least
// every fallback whatever the watch does; a watch that fails is made anew,
// with a wake-up once it is back (what changed meanwhile is read then). It
// returns once the watch is in place (or after a second, when etcd is slow
// to answer: the fallback covers that), so that a read made after it
// misses no change. The channel closes when ctx ends.
func (s *Store) Wakeups(ctx context.Context, fallback time.Duration) <-chan struct{} {
	return s.WakeupsUnder(ctx, fallback)
}

// WakeupsUnder is Wakeups for the changes of keys under the given
// directories of the prefix alone ("units/", "instances/"); none: every
// key.
func (s *Store) WakeupsUnder(ctx context.Context, fallback time.Duration, dirs ...string) <-chan struct{} {
	out := make(chan struct{}, 1)
	created := make(chan struct{})
	under := make([]string, len(dirs))
	for i, d := range dirs {
		under[i] = s.prefix + "/" + d
	}
	go s.wakeups(ctx, fallback, under, out, created)
	select {
	case <-created:
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
	return out
}

func (s *Store) wakeups(ctx context.Context, fallback time.Duration, under []string, out chan<- struct{}, created chan<- struct{}) {
	defer close(out)
	wake := func() {
		select {
		case out <- struct{}{}:
		default: // one pending wake-up says as much as many
		}
	}
	tick := time.NewTicker(fallback)
	defer tick.Stop()
	first := true
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		wc := s.c.Watch(clientv3.WithRequireLeader(wctx), s.prefix+"/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	watch:
		for {
			select {
			case <-ctx.Done():
				break watch
			case wr, ok := <-wc:
				switch {
				case !ok || wr.Err() != nil:
					break watch
				case wr.Created:
					if first {
						first = false
						close(created)
					} else {
						wake()
					}
				case watched(wr.Events, under):
					wake()
				}
			case <-tick.C:
				wake()
			}
		}
		cancel()
		// The watch failed (etcd away, or compacted): the fallback goes
		// on; watch again shortly.
		retry := time.NewTimer(time.Second)
	pause:
		for {
			select {
			case <-ctx.Done():
				retry.Stop()
				return
			case <-tick.C:
				wake()
			case <-retry.C:
				break pause
			}
		}
	}
}

// WatchChanges sends the store revision of each change of any key under
// the prefix until ctx ends; it closes when the watch fails (the caller
// reads again and watches anew).
func (s *Store) WatchChanges(ctx context.Context) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		defer close(out)
		for wr := range s.c.Watch(clientv3.WithRequireLeader(ctx), s.prefix+"/", clientv3.WithPrefix()) {
			if wr.Err() != nil {
				return
			}
			select {
			case out <- wr.Header.Revision:
			default: // one pending notice says as much as many
			}
		}
	}()
	return out
}

// watched: one of the events is of a key under one of the directories
// (all are, with none).
func watched(events []*clientv3.Event, under []string) bool {
	if len(under) == 0 {
		return true
	}
	for _, e := range events {
		for _, d := range under {
			if strings.HasPrefix(string(e.Kv.Key), d) {
				return true
			}
		}
	}
	return false
}
