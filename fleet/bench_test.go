package fleet

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/fleet/client"
	"github.com/coreos/fleet/job"
	"github.com/coreos/fleet/machine"
	"github.com/coreos/fleet/schema"
	"github.com/coreos/fleet/unit"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet/fleetreg"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// countingAPI counts fleet calls.
type countingAPI struct {
	client.API
	calls atomic.Int64
}

func (c *countingAPI) Units() ([]*schema.Unit, error) { c.calls.Add(1); return c.API.Units() }
func (c *countingAPI) UnitStates() ([]*schema.UnitState, error) {
	c.calls.Add(1)
	return c.API.UnitStates()
}
func (c *countingAPI) Machines() ([]machine.MachineState, error) {
	c.calls.Add(1)
	return c.API.Machines()
}
func (c *countingAPI) CreateUnit(u *schema.Unit) error { c.calls.Add(1); return c.API.CreateUnit(u) }
func (c *countingAPI) DestroyUnit(n string) error      { c.calls.Add(1); return c.API.DestroyUnit(n) }
func (c *countingAPI) SetUnitTargetState(n, t string) error {
	c.calls.Add(1)
	return c.API.SetUnitTargetState(n, t)
}

func benchSpec(i int) *deploy.Spec {
	return &deploy.Spec{
		Name: fmt.Sprintf("svc-%04d", i), Replicas: 3, MaxReplicasPerHost: 1,
		Env:     []deploy.EnvVar{{Name: "PORT", Value: "8080"}, {Name: "MODE", Value: "prod"}},
		Machine: []string{"role=worker"},
		Apps:    []deploy.App{{Image: fmt.Sprintf("docker://registry.lan/svc-%04d:1.2.3", i), Args: []string{"--listen", ":8080"}}},
	}
}

// BenchmarkNoopReconcile: 1,000 Kaylee units × 3 replicas, all in fleet's
// registry (real etcd v2) and running, statuses up to date. One op is a
// full pass: store reads, fleet list calls, planning, no write. The
// "lists-only" sub-benchmark is the baseline: the same store and fleet
// reads with no planning.
func BenchmarkNoopReconcile(b *testing.B) {
	const units = 1000
	e := etcdtest.New(b)
	cli := e.Client(b)
	s := store.New(cli, store.DefaultPrefix)
	api, err := NewAPI(Config{EtcdEndpoints: e.Endpoints(), RequestTimeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	reg := api.(*fleetreg.API).Registry()
	ctx := context.Background()
	machines := make([]string, 10)
	for i := range machines {
		machines[i] = fmt.Sprintf("%032x", i+1)
		if _, err := reg.CreateMachineState(machine.MachineState{ID: machines[i], PublicIP: fmt.Sprintf("10.0.0.%d", i+1),
			Metadata: map[string]string{"role": "worker"}}, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, units)
	sem := make(chan struct{}, 16)
	for i := range units {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs <- seedUnit(ctx, s, reg, benchSpec(i), machines, i)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}

	counting := &countingAPI{API: api}
	cs := &countingStore{Store: s}
	r, err := NewReconciler(counting, cs, Options{MinReady: time.Nanosecond}, nil)
	if err != nil {
		b.Fatal(err)
	}
	t, err := r.newTerm(ctx, store.Fence{})
	if err != nil {
		b.Fatal(err)
	}
	// Two passes: the first sees replicas running, the second ready; both
	// write statuses. After that a pass is a no-op.
	for range 2 {
		if _, err := t.pass(ctx); err != nil {
			b.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if n, keys := cs.txns.Load(), cs.keys.Load(); keys != 3*units {
		b.Fatalf("the first passes wrote %d registry entries, want %d", keys, 3*units)
	} else {
		b.Logf("registry: %d entries written by the first pass in %d transactions", keys, n)
	}
	b.Run("reconcile", func(b *testing.B) {
		b.ReportAllocs()
		counting.calls.Store(0)
		cs.txns.Store(0)
		for b.Loop() {
			res, err := t.pass(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if res.ops != 0 || res.busy {
				b.Fatalf("not a no-op pass: %d fleet ops, busy %v", res.ops, res.busy)
			}
		}
		b.ReportMetric(float64(counting.calls.Load())/float64(b.N), "fleet-calls/op")
		b.ReportMetric(float64(cs.txns.Load())/float64(b.N), "registry-txns/op")
	})
	for _, part := range []struct {
		name string
		f    func() error
	}{
		{"store-list", func() error { _, _, err := s.ListUnits(ctx); return err }},
		{"fleet-units", func() error { _, err := api.Units(); return err }},
		{"fleet-states", func() error { _, err := api.UnitStates(); return err }},
	} {
		b.Run(part.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := part.f(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("lists-only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := s.ListUnits(ctx); err != nil {
				b.Fatal(err)
			}
			if _, err := s.RestartCounters(ctx); err != nil {
				b.Fatal(err)
			}
			if _, err := api.Units(); err != nil {
				b.Fatal(err)
			}
			if _, err := api.UnitStates(); err != nil {
				b.Fatal(err)
			}
			if _, err := api.Machines(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// countingStore counts the registry's writes: transactions (up to 120
// keys each) and keys.
type countingStore struct {
	*store.Store
	txns, keys atomic.Int64
}

func (c *countingStore) ApplyInstances(ctx context.Context, puts []*store.Instance, deletes []string, f store.Fence) error {
	n := len(puts) + len(deletes)
	c.txns.Add(int64((n + 119) / 120))
	c.keys.Add(int64(n))
	return c.Store.ApplyInstances(ctx, puts, deletes, f)
}

// seedUnit stores a spec and puts its rendered units in the registry,
// scheduled and running, as fleet's engine and agents would.
func seedUnit(ctx context.Context, s *store.Store, reg interface {
	CreateUnit(*job.Unit) error
	ScheduleUnit(name, machID string) error
	SaveUnitState(string, *unit.UnitState, time.Duration)
}, sp *deploy.Spec, machines []string, i int) error {
	if _, err := s.PutUnit(ctx, sp, store.Fence{}); err != nil {
		return err
	}
	rendered, err := deploy.Render(sp, deploy.RenderOptions{})
	if err != nil {
		return err
	}
	for j, u := range rendered {
		uf := schema.MapSchemaUnitOptionsToUnitFile(u.Options)
		if err := reg.CreateUnit(&job.Unit{Name: u.Name, Unit: *uf, TargetState: job.JobStateLaunched}); err != nil {
			return err
		}
		m := machines[(i+j)%len(machines)]
		if err := reg.ScheduleUnit(u.Name, m); err != nil {
			return err
		}
		reg.SaveUnitState(u.Name, &unit.UnitState{LoadState: "loaded", ActiveState: "active", SubState: "running",
			MachineID: m, UnitHash: uf.Hash().String(), UnitName: u.Name}, time.Hour)
	}
	return nil
}

// BenchmarkPlanNew: the plan for 1,000 new units × 3 replicas (rendering
// included, nothing in fleet yet): 3,000 creates.
func BenchmarkPlanNew(b *testing.B) {
	units := make([]*store.Unit, 1000)
	for i := range units {
		sp := benchSpec(i)
		units[i] = &store.Unit{Name: sp.Name, Spec: *sp, Raw: sp.CanonicalJSON()}
	}
	r, err := NewReconciler(nil, nil, Options{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		snap := &snapshot{units: units, statuses: map[string]*store.Status{}, registry: &registry{}}
		plan := newPassPlanner(r.opts).plan(snap, time.Now())
		if len(plan.ops) != 3000 {
			b.Fatalf("%d ops, want 3000 creates", len(plan.ops))
		}
	}
}
