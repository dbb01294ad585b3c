package fleet

import (
	"context"
	"fmt"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/coreos/fleet/client"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/store"
)

// stopTimes is fleet's API, noting when each fleet unit was first told
// to stop (target loaded or inactive) or destroyed, the earliest moment
// fleet can begin to stop it, and whether the registry (read then,
// linearizable) still listed it.
type stopTimes struct {
	client.API
	store  *store.Store
	mu     gosync.Mutex
	first  map[string]time.Time
	listed []string
}

func (s *stopTimes) note(name string) {
	at := time.Now()
	ins, err := s.store.ListInstances(context.Background())
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.first[name]; ok {
		return
	}
	s.first[name] = at
	if err != nil {
		s.listed = append(s.listed, fmt.Sprintf("%s: %v", name, err))
	}
	for _, in := range ins {
		if in.FleetUnit == name {
			s.listed = append(s.listed, name+" was told to stop while still in the registry")
		}
	}
}

func (s *stopTimes) SetUnitTargetState(name, target string) error {
	if target != targetLaunched {
		s.note(name)
	}
	return s.API.SetUnitTargetState(name, target)
}

func (s *stopTimes) DestroyUnit(name string) error {
	s.note(name)
	return s.API.DestroyUnit(name)
}

// deleteTimes is the store, noting when each instance key's delete was
// written (ApplyInstances returned: the delete is committed by then).
type deleteTimes struct {
	*store.Store
	mu      gosync.Mutex
	written map[string]time.Time // key under <prefix>/instances/ → time
}

func (d *deleteTimes) ApplyInstances(ctx context.Context, puts []*store.Instance, deletes []string, f store.Fence) error {
	err := d.Store.ApplyInstances(ctx, puts, deletes, f)
	at := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, k := range deletes {
		if _, ok := d.written[k]; !ok && err == nil {
			d.written[k] = at
		}
	}
	return err
}

// serveStore is serve with the reconciler on st (the election on h.store).
func (h *harness) serveStore(st Store, api client.API, opts Options) {
	h.t.Helper()
	r, err := NewReconciler(api, st, opts, testLogger(h.t))
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = h.store.Lead(ctx, store.SchedulerElection, "test", 3*time.Second, testLogger(h.t), r.Run)
	}()
	h.t.Cleanup(func() { cancel(); <-done })
}

// watchDeletes notes, from the store's current revision on, when each
// key under the instance registry of unit is deleted (as a router
// watching it sees it: instance → time).
func (h *harness) watchDeletes(unit string) (deleted func() map[string]time.Time) {
	h.t.Helper()
	cli := h.etcd.Client(h.t)
	prefix := store.DefaultPrefix + "/instances/" + unit + "/"
	resp, err := cli.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.t.Cleanup(cancel)
	var mu gosync.Mutex
	seen := map[string]time.Time{}
	wc := cli.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	go func() {
		for wr := range wc {
			at := time.Now()
			mu.Lock()
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					seen[strings.TrimPrefix(string(ev.Kv.Key), prefix)] = at
				}
			}
			mu.Unlock()
		}
	}()
	return func() map[string]time.Time {
		mu.Lock()
		defer mu.Unlock()
		out := make(map[string]time.Time, len(seen))
		for k, v := range seen {
			out[k] = v
		}
		return out
	}
}

// Issue 26, on fleet's engine and agents: in a rolling update, every old
// replica leaves the instance registry (its key's delete committed) at
// least DrainDelay before fleet is first told to stop it, and a watcher
// of the prefix (as a router) sees the delete that long before too, but
// for its watch's delivery (under 10 ms here: allowed 50); with
// DrainDelay 0, still before (the registry, read at the stop call, no
// longer lists it).
func TestDrainDelayOnFleet(t *testing.T) {
	// Not parallel: a watcher must see a delete within 50ms.
	for _, delay := range []time.Duration{time.Second, 0} {
		t.Run(fmt.Sprintf("DrainDelay %s", delay), func(t *testing.T) {
			h := newHarness(t, fleetsim.Machines(3, nil))
			opts := testOptions
			opts.MinReady, opts.DrainDelay = 300*time.Millisecond, delay
			stops := &stopTimes{API: h.api, store: h.store, first: map[string]time.Time{}}
			deletes := &deleteTimes{Store: h.store, written: map[string]time.Time{}}
			h.serveStore(deletes, stops, opts)
			spec := func(image string) *deploy.Spec {
				return &deploy.Spec{Name: "web", Replicas: 2, Apps: []deploy.App{{Image: image}}, Ports: []deploy.Port{{Name: "http", Port: 8080}}}
			}
			v1 := h.put(spec("docker://web:1"))
			h.waitStatus("web", store.PhaseRunning, v1, 60*time.Second)
			var olds []string // instances
			eventually(t, 10*time.Second, func() (bool, string) {
				in := h.instances("web")
				olds = olds[:0]
				for k := range in {
					olds = append(olds, k)
				}
				return len(in) == 2, fmt.Sprint(in)
			})
			deleted := h.watchDeletes("web")
			v2 := h.put(spec("docker://web:2"))
			h.waitStatus("web", store.PhaseRunning, v2, 60*time.Second)
			h.waitUnits("web", v2, 2, 30*time.Second)
			var del map[string]time.Time
			eventually(t, 5*time.Second, func() (bool, string) {
				del = deleted()
				return len(del) >= len(olds), fmt.Sprint(del)
			})
			stops.mu.Lock()
			defer stops.mu.Unlock()
			for _, l := range stops.listed {
				t.Error(l)
			}
			deletes.mu.Lock()
			defer deletes.mu.Unlock()
			for _, inst := range olds {
				gone, seen, stopped := deletes.written["web/"+inst], del[inst], stops.first[inst+".service"]
				switch margin, watched := stopped.Sub(gone), stopped.Sub(seen); {
				case gone.IsZero() || seen.IsZero() || stopped.IsZero():
					t.Errorf("%s: left the registry at %v (a watcher saw it at %v), told to stop at %v: want all three", inst, gone, seen, stopped)
				case margin < delay:
					t.Errorf("%s: told to stop %s after it left the registry, want at least DrainDelay (%s)", inst, margin, delay)
				case delay > 0 && watched < delay-50*time.Millisecond:
					t.Errorf("%s: told to stop %s after a watcher saw it leave the registry, want at least DrainDelay (%s) less 50ms", inst, watched, delay)
				default:
					t.Logf("%s: told to stop %s after it left the registry (%s after a watcher saw it)", inst, margin, watched)
				}
			}
		})
	}
}
