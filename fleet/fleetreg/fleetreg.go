// Package fleetreg is fleet's registry client (fleet's unit and state
// records in etcd's v2 keyspace) with what fleet's own client lacks: a
// watch on the unit states that fleet's agents publish, so that the
// scheduler reacts to a state change as it happens instead of at its next
// poll.
package fleetreg

import (
	"context"
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
}

// New returns the registry client of fleet's records under prefix.
func New(keys etcd.KeysAPI, prefix string) *API {
	reg := registry.NewEtcdRegistry(keys, prefix)
	return &API{API: &client.RegistryClient{Registry: reg}, reg: reg, keys: keys, prefix: prefix}
}

// Registry is fleet's registry itself (for tests that write machine
// records, as fleet's agents do).
func (a *API) Registry() registry.Registry { return a.reg }

// StateChanges sends a value soon after fleet's agents publish a change
// of any unit state (several changes may come as one), until ctx ends. A
// broken watch (etcd away, its event history passed) starts again after
// retry; a change in between may be missed, so callers keep a slower poll.
//
// A state published again with the same value is no change: fleet's
// agents publish every state again every 24s (4/5 of its TTL), so each
// machine's republish would otherwise wake the caller, which lists every
// state to see what changed: a cost of units × machines per minute on a
// cluster where nothing changes.
func (a *API) StateChanges(ctx context.Context, retry time.Duration) <-chan struct{} {
	out := make(chan struct{}, 1)
	key := path.Join(a.prefix, "states")
	go func() {
		for ctx.Err() == nil {
			w := a.keys.Watcher(key, &etcd.WatcherOptions{Recursive: true})
			for {
				r, err := w.Next(ctx)
				if err != nil {
					break
				}
				if republished(r) {
					continue
				}
				select {
				case out <- struct{}{}:
				default:
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

// republished: the event sets a key to the value it had (fleet's agent
// publishing an unchanged state again, with a new TTL).
func republished(r *etcd.Response) bool {
	switch r.Action {
	case "set", "update", "compareAndSwap":
		return r.Node != nil && r.PrevNode != nil && !r.Node.Dir && r.PrevNode.Value == r.Node.Value
	}
	return false
}
