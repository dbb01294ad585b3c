package fleet

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/coreos/fleet/client"
	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// pollOnly hides the registry's state watch: the reconciler polls fleet's
// states every Poll, as it does over fleet's HTTP API (and as it did
// over the registry before it watched).
type pollOnly struct{ client.API }

// BenchmarkRollout times rolling updates on fleet's engine and agents
// with kaylee dev's timings (fleetsim's defaults: engine every 2s, 300ms
// from start to running), MinReady 1s, from the new spec stored to the
// status running it: "watch" reacts to fleet's published states as they
// change, "poll" only polls them every 2s. "fleet-floor" is fleet's own
// share of one step: a unit created until its state is published running
// (schedule + start + publish), watched the same way.
//
//	go test -run XXX -bench BenchmarkRollout -benchtime 3x -timeout 40m ./fleet/
func BenchmarkRollout(b *testing.B) {
	cases := []struct {
		name     string
		replicas int
		surge    deploy.Amount
		poll     bool
	}{
		{"replicas=2/poll", 2, "", true},
		{"replicas=2/watch", 2, "", false},
		{"replicas=2/surge=2/watch", 2, "2", false},
		{"replicas=12/surge=1/watch", 12, "", false},
		{"replicas=12/surge=4/watch", 12, "4", false},
		{"replicas=12/surge=12/watch", 12, "12", false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			h := newBenchFleet(b, 4)
			api := h.api
			if c.poll {
				api = pollOnly{h.api}
			}
			r, err := NewReconciler(api, h.store, Options{MinReady: time.Second}, nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() { _ = r.Run(ctx, store.Fence{}) }()
			version := 0
			put := func() string {
				version++
				s := &deploy.Spec{Name: "bench", Replicas: c.replicas, Apps: []deploy.App{{Image: fmt.Sprintf("docker://bench:%d", version)}}}
				if c.surge != "" {
					s.Update = &deploy.Update{MaxSurge: c.surge}
				}
				if _, err := h.store.PutUnit(ctx, s, store.Fence{}); err != nil {
					b.Fatal(err)
				}
				return s.Hash(0)
			}
			waitRunning(b, h.store, put(), 5*time.Minute)
			var total time.Duration
			for b.Loop() {
				start := time.Now()
				waitRunning(b, h.store, put(), 5*time.Minute)
				total += time.Since(start)
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/rollout")
		})
	}
	b.Run("fleet-floor", func(b *testing.B) {
		h := newBenchFleet(b, 1)
		notifier := h.api.(StateNotifier)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		changes := notifier.StateChanges(ctx, time.Second, returnHold(30*time.Second))
		i := 0
		var total time.Duration
		for b.Loop() {
			i++
			name := fmt.Sprintf("floor-%d.service", i)
			u := &schema.Unit{Name: name, DesiredState: targetLaunched, Options: []*schema.UnitOption{{Section: "Service", Name: "ExecStart", Value: "/bin/true"}}}
			start := time.Now()
			if err := h.api.CreateUnit(u); err != nil {
				b.Fatal(err)
			}
			for running := false; !running; {
				select {
				case <-changes:
				case <-time.After(time.Minute):
					b.Fatalf("%s not running after a minute", name)
				}
				states, err := h.api.UnitStates()
				if err != nil {
					b.Fatal(err)
				}
				for _, s := range states {
					running = running || s.Name == name && s.SystemdSubState == "running"
				}
			}
			total += time.Since(start)
			if err := h.api.DestroyUnit(name); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(total.Seconds()/float64(b.N), "s/unit")
	})
}

type benchFleet struct {
	api   client.API
	store *store.Store
}

// newBenchFleet is fleet's engine and agents on n machines with
// fleetsim's default timings (as kaylee dev runs them).
func newBenchFleet(b *testing.B, n int) *benchFleet {
	e := etcdtest.New(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := fleetsim.Start(ctx, fleetsim.Config{Endpoints: e.Endpoints(), Machines: fleetsim.Machines(n, nil)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return &benchFleet{api: c.API(), store: store.New(e.Client(b), store.DefaultPrefix)}
}

func waitRunning(b *testing.B, s *store.Store, hash string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := s.GetStatus(context.Background(), "bench")
		if err == nil && st.SpecHash == hash && st.Phase == store.PhaseRunning {
			return
		}
		if err == nil && st.SpecHash == hash && st.Phase == store.PhaseFailed {
			b.Fatalf("rollout failed: %s", st.Message)
		}
		if time.Now().After(deadline) {
			b.Fatalf("rollout of %s not done after %s: %+v", hash, timeout, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
