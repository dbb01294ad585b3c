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
	// values and machines: the states and the machines as StateChanges's
	// watches saw them, and counts (see StateSeqs).
	values, machines *stateValues
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
		removed: &stateRemovals{at: map[string]time.Time{}}, values: &stateValues{},
		machines: &stateValues{expiryChanges: true}}
}

// Registry is fleet's registry itself (for tests that write machine
// records, as fleet's agents do).
func (a *API) Registry() registry.Registry { return a.reg }

// StateChanges sends a value soon after fleet's agents publish a change
// of any unit state, or after a state expires, or a machine comes,
// leaves or changes its record (several may come as one), until ctx
// ends. It also sends one each time one of its two watches starts (at
// once, and after a broken watch, etcd away or its event history passed,
// starts again after retry): a change may have come before it, so the
// caller looks. A watch starts at the etcd index of a listing of its
// directory read right before that value is sent, so no change falls
// between a look and the watch: a caller that looks at every value needs
// no poll of the states.
//
// A state published again with the same value is no change: fleet's
// agents publish every state again every 24s (4/5 of its TTL), so each
// machine's republish would otherwise wake the caller, which lists every
// state to see what changed: a cost of units × machines per minute on a
// cluster where nothing changes. Nor is a state that comes back with its
// last value within hold of its expiry (statewatch.go); StateSeqs tells
// a change from an expiry.
func (a *API) StateChanges(ctx context.Context, retry, hold time.Duration) <-chan struct{} {
	out := make(chan struct{}, 1)
	send := func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}
	// The first value once both watches have started; after that, one
	// at each start again.
	firsts := make(chan struct{}, 2)
	started := func() func() {
		once := true
		return func() {
			if once {
				once = false
				firsts <- struct{}{}
				return
			}
			send()
		}
	}
	go func() {
		for range 2 {
			select {
			case <-firsts:
			case <-ctx.Done():
				return
			}
		}
		send()
	}()
	states := path.Join(a.prefix, "states")
	go a.follow(ctx, states, a.values, hold, retry, func(r *etcd.Response, now time.Time) {
		a.removed.record(states, r, now)
		send()
	}, started())
	go a.follow(ctx, path.Join(a.prefix, "machines"), a.machines, 0, retry, func(*etcd.Response, time.Time) { send() }, started())
	return out
}

// follow watches dir until ctx ends, keeping v: it lists dir, calls
// started, then told for each event v says is one to tell. A watch that
// breaks starts again (with a listing) after retry.
func (a *API) follow(ctx context.Context, dir string, v *stateValues, hold, retry time.Duration, told func(*etcd.Response, time.Time), started func()) {
	for ctx.Err() == nil {
		if index, ok := a.list(ctx, dir, v, hold); ok {
			w := a.keys.Watcher(dir, &etcd.WatcherOptions{Recursive: true, AfterIndex: index})
			started()
			for {
				r, err := w.Next(ctx)
				if err != nil {
					break
				}
				if now := time.Now(); v.apply(dir, r, now) {
					told(r, now)
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}

// list reads every record under dir into v and returns etcd's index of
// that read.
func (a *API) list(ctx context.Context, dir string, v *stateValues, hold time.Duration) (uint64, bool) {
	r, err := a.keys.Get(ctx, dir, &etcd.GetOptions{Recursive: true, Quorum: true})
	if err == nil {
		v.reset(r.Node, hold, time.Now())
		return r.Index, true
	}
	var e etcd.Error
	if errors.As(err, &e) && e.Code == etcd.ErrorCodeKeyNotFound {
		v.reset(nil, hold, time.Now())
		return e.Index, true
	}
	return 0, false
}
