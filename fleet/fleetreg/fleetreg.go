// Package fleetreg is fleet's registry client (fleet's unit and state
// records in etcd's v2 keyspace) with what fleet's own client lacks: a
// watch on the unit states that fleet's agents publish, so that the
// scheduler reacts to a state change as it happens instead of at its next
// poll.
package fleetreg

import (
	"context"
	"errors"
	"path"
	"time"

	etcd "github.com/coreos/etcd/client"
	"github.com/coreos/fleet/client"
	"github.com/coreos/fleet/registry"
)

// API is fleet's registry client that can also watch unit states.
type API struct {
	client.API
	reg    registry.Registry
	keys   etcd.KeysAPI
	prefix string
	files  *unitFiles // the unit files Units parsed
	// removed: the unit states fleet's agents removed, seen by
	// StateChanges (see StateRemovals).
	removed *stateRemovals
	// IdleCloser, when set, closes the idle connections of the HTTP
	// transport under keys: see CloseIdleConnections.
	IdleCloser func()
}

// CloseIdleConnections closes the connections the transport under keys
// keeps idle for later requests (IdleCloser), so that none is left open
// to etcd once the caller is done with the API.
func (a *API) CloseIdleConnections() {
	if a.IdleCloser != nil {
		a.IdleCloser()
	}
}

// New returns the registry client of fleet's records under prefix.
func New(keys etcd.KeysAPI, prefix string) *API {
	reg := registry.NewEtcdRegistry(keys, prefix)
	return &API{API: &client.RegistryClient{Registry: reg}, reg: reg, keys: keys, prefix: prefix, files: &unitFiles{},
		removed: &stateRemovals{at: map[string]time.Time{}}}
}

// Registry is fleet's registry itself (for tests that write machine
// records, as fleet's agents do).
func (a *API) Registry() registry.Registry { return a.reg }

// StateChanges sends a value soon after fleet's agents publish a change
// of any unit state (several changes may come as one), until ctx ends.
// It also sends one each time its watch starts (at once, and after a
// broken watch, etcd away or its event history passed, starts again
// after retry): a change may have come before it, so the caller looks.
// The watch starts at the etcd index read right before that value is
// sent, so no change falls between a look and the watch: a caller that
// looks at every value needs no poll of the states.
//
// A state published again with the same value is no change: fleet's
// agents publish every state again every 24s (4/5 of its TTL), so each
// machine's republish would otherwise wake the caller, which lists every
// state to see what changed: a cost of units × machines per minute on a
// cluster where nothing changes.
func (a *API) StateChanges(ctx context.Context, retry time.Duration) <-chan struct{} {
	out := make(chan struct{}, 1)
	send := func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}
	key := path.Join(a.prefix, "states")
	go func() {
		for ctx.Err() == nil {
			if index, ok := a.index(ctx, key); ok {
				w := a.keys.Watcher(key, &etcd.WatcherOptions{Recursive: true, AfterIndex: index})
				send()
				for {
					r, err := w.Next(ctx)
					if err != nil {
						break
					}
					if !republished(r) {
						a.removed.record(key, r, time.Now())
						send()
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(retry):
			}
		}
	}()
	return out
}

// index is etcd's index now (as it answers a read of key, which may not
// exist).
func (a *API) index(ctx context.Context, key string) (uint64, bool) {
	r, err := a.keys.Get(ctx, key, &etcd.GetOptions{Quorum: true})
	if err == nil {
		return r.Index, true
	}
	var e etcd.Error
	if errors.As(err, &e) && e.Code == etcd.ErrorCodeKeyNotFound {
		return e.Index, true
	}
	return 0, false
}

// republished: the event sets a key to the value it had (fleet's agent
// publishing an unchanged state again, with a new TTL).
func republished(r *etcd.Response) bool {
	switch r.Action {
	case "set", "update", "compareAndSwap":
		return r.Node != nil && r.PrevNode != nil && !r.Node.Dir && r.PrevNode.Value == r.Node.Value
	}
	return false
}
