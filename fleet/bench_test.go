package fleet

import (
	"context"
	"fmt"
	"maps"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/fleet/client"
	"github.com/coreos/fleet/job"
	"github.com/coreos/fleet/machine"
	fleetregistry "github.com/coreos/fleet/registry"
	"github.com/coreos/fleet/schema"
	"github.com/coreos/fleet/unit"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet/fleetreg"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// countingAPI counts fleet calls, by method; dry: the writes are counted,
// not made. It is a StateNotifier when the API it wraps is one.
type countingAPI struct {
	client.API
	calls atomic.Int64
	dry   bool
	mu    sync.Mutex
	by    map[string]int64
}

func (c *countingAPI) count(method string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.by[method]
}

func (c *countingAPI) counts() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.by)
}

func (c *countingAPI) reset() {
	c.mu.Lock()
	c.by = nil
	c.mu.Unlock()
	c.calls.Store(0)
}

func (c *countingAPI) add(method string) {
	c.calls.Add(1)
	c.mu.Lock()
	if c.by == nil {
		c.by = map[string]int64{}
	}
	c.by[method]++
	c.mu.Unlock()
}

func (c *countingAPI) Units() ([]*schema.Unit, error) { c.add("Units"); return c.API.Units() }
func (c *countingAPI) UnitStates() ([]*schema.UnitState, error) {
	c.add("UnitStates")
	return c.API.UnitStates()
}
func (c *countingAPI) Machines() ([]machine.MachineState, error) {
	c.add("Machines")
	return c.API.Machines()
}
func (c *countingAPI) CreateUnit(u *schema.Unit) error {
	c.add("CreateUnit")
	if c.dry {
		return nil
	}
	return c.API.CreateUnit(u)
}
func (c *countingAPI) DestroyUnit(n string) error {
	c.add("DestroyUnit")
	if c.dry {
		return nil
	}
	return c.API.DestroyUnit(n)
}
func (c *countingAPI) SetUnitTargetState(n, t string) error {
	c.add("SetUnitTargetState")
	if c.dry {
		return nil
	}
	return c.API.SetUnitTargetState(n, t)
}

// StateChanges is the wrapped API's; without one, a channel that never
// sends (as no notifier).
func (c *countingAPI) StateChanges(ctx context.Context, retry, hold time.Duration) <-chan struct{} {
	if n, ok := c.API.(StateNotifier); ok {
		return n.StateChanges(ctx, retry, hold)
	}
	return nil
}

// StateSeqs and StateRemovals are the wrapped API's: every test wraps
// fleet's registry (fleetreg), which has them.
func (c *countingAPI) StateSeqs() (uint64, uint64) { return c.API.(StateTracker).StateSeqs() }
func (c *countingAPI) StateRemovals() (map[string]time.Time, uint64) {
	return c.API.(StateRemovalTracker).StateRemovals()
}

func benchSpec(i int) *deploy.Spec {
	return &deploy.Spec{
		Name: fmt.Sprintf("svc-%04d", i), Replicas: 3, MaxReplicasPerHost: 1,
		Env:     []deploy.EnvVar{{Name: "PORT", Value: "8080"}, {Name: "MODE", Value: "prod"}},
		Machine: []string{"role=worker"},
		Apps:    []deploy.App{{Image: fmt.Sprintf("docker://registry.lan/svc-%04d:1.2.3", i), Args: []string{"--listen", ":8080"}}},
	}
}

// benchCluster is units Kaylee units × 3 replicas in fleet's registry
// (real etcd v2) on machines machines, every replica scheduled and
// running, statuses up to date, and a term that made the passes that see
// them ready: a pass after that is a no-op.
type benchCluster struct {
	s        *store.Store
	api      client.API
	reg      fleetregistry.Registry
	counting *countingAPI
	cs       *countingStore
	r        *Reconciler
	t        *term
	// states: what fleet's agents publish of each replica, by machine.
	states map[string][]*unit.UnitState
}

func newBenchCluster(b *testing.B, units, machineCount int) *benchCluster {
	e := etcdtest.New(b)
	cli := e.Client(b)
	s := store.New(cli, store.DefaultPrefix)
	api, err := NewAPI(Config{EtcdEndpoints: e.Endpoints(), RequestTimeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	reg := api.(*fleetreg.API).Registry()
	ctx := context.Background()
	machines := make([]string, machineCount)
	for i := range machines {
		machines[i] = fmt.Sprintf("%032x", i+1)
		if _, err := reg.CreateMachineState(machine.MachineState{ID: machines[i], PublicIP: fmt.Sprintf("10.0.%d.%d", i/250, i%250+1),
			Metadata: map[string]string{"role": "worker"}}, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	c := &benchCluster{s: s, api: api, reg: reg, states: map[string][]*unit.UnitState{}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := make(chan error, units)
	sem := make(chan struct{}, 16)
	for i := range units {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			states, err := seedUnit(ctx, s, reg, benchSpec(i), machines, i)
			errs <- err
			mu.Lock()
			for _, st := range states {
				c.states[st.MachineID] = append(c.states[st.MachineID], st)
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	c.counting = &countingAPI{API: api}
	c.cs = &countingStore{Store: s}
	if c.r, err = NewReconciler(c.counting, c.cs, Options{MinReady: time.Nanosecond}, nil); err != nil {
		b.Fatal(err)
	}
	if c.t, err = c.r.newTerm(ctx, store.Fence{}); err != nil {
		b.Fatal(err)
	}
	// Two passes: the first sees replicas running, the second ready; both
	// write statuses. After that a pass is a no-op.
	for range 2 {
		if _, err := c.t.pass(ctx); err != nil {
			b.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if n, keys := c.cs.txns.Load(), c.cs.keys.Load(); keys != 3*int64(units) {
		b.Fatalf("the first passes wrote %d registry entries, want %d", keys, 3*units)
	} else {
		b.Logf("registry: %d entries written by the first pass in %d transactions", keys, n)
	}
	c.counting.reset()
	c.cs.reset()
	return c
}

// benchSizes are the clusters the scheduler's benchmarks run on.
var benchSizes = []struct{ units, machines int }{{100, 10}, {500, 10}, {1000, 10}, {100, 100}, {500, 100}, {1000, 100}, {100, 1000}}

// BenchmarkNoopReconcile: Kaylee units × 3 replicas, all in fleet's
// registry (real etcd v2) and running, statuses up to date, at each of
// benchSizes. One op is a full pass: store reads, fleet list calls,
// planning, no write. The "lists-only" sub-benchmark is the baseline: the
// same store and fleet reads with no planning.
//
//	go test ./fleet -run '^$' -bench NoopReconcile -benchtime 5x
func BenchmarkNoopReconcile(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("units=%d/machines=%d", size.units, size.machines), func(b *testing.B) {
			c := newBenchCluster(b, size.units, size.machines)
			ctx := context.Background()
			b.Run("reconcile", func(b *testing.B) {
				b.ReportAllocs()
				c.counting.reset()
				c.cs.reset()
				cpu := cpuTime()
				for b.Loop() {
					res, err := c.t.pass(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if res.ops != 0 || res.busy {
						b.Fatalf("not a no-op pass: %d fleet ops, busy %v", res.ops, res.busy)
					}
				}
				b.ReportMetric(float64((cpuTime()-cpu).Milliseconds())/float64(b.N), "cpu-ms/op")
				b.ReportMetric(float64(c.counting.calls.Load())/float64(b.N), "fleet-calls/op")
				b.ReportMetric(float64(c.cs.txns.Load())/float64(b.N), "registry-txns/op")
				b.ReportMetric(float64(c.cs.writes())/float64(b.N), "store-writes/op")
			})
			b.Run("lists-only", func(b *testing.B) {
				b.ReportAllocs()
				cpu := cpuTime()
				defer func() { b.ReportMetric(float64((cpuTime()-cpu).Milliseconds())/float64(b.N), "cpu-ms/op") }()
				for b.Loop() {
					if _, _, err := c.s.ListUnits(ctx); err != nil {
						b.Fatal(err)
					}
					if _, err := c.s.RestartCounters(ctx); err != nil {
						b.Fatal(err)
					}
					if _, err := c.api.Units(); err != nil {
						b.Fatal(err)
					}
					if _, err := c.api.UnitStates(); err != nil {
						b.Fatal(err)
					}
					if _, err := c.api.Machines(); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkChangedReconcile: the pass that follows a change of one unit
// among N (its image, as a push that changed one file): that unit is
// rendered again and gets its first new replica (maxSurge 1), a status
// and a history entry; the others are unchanged. fleet's writes are counted, not made (dry), so
// that every op starts from the same fleet. The unit's change itself (a
// store write) is not timed.
//
//	go test ./fleet -run '^$' -bench ChangedReconcile -benchtime 20x
func BenchmarkChangedReconcile(b *testing.B) {
	for _, size := range benchSizes[:3] {
		b.Run(fmt.Sprintf("units=%d/machines=%d", size.units, size.machines), func(b *testing.B) {
			c := newBenchCluster(b, size.units, size.machines)
			c.counting.dry = true
			ctx := context.Background()
			version := 0
			b.ReportAllocs()
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				version++
				sp := benchSpec(0)
				sp.Apps[0].Image = fmt.Sprintf("docker://registry.lan/svc-0000:2.0.%d", version%2)
				if _, err := c.s.PutUnit(ctx, sp, store.Fence{}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := cpuTime()
				res, err := c.t.pass(ctx)
				cpu += cpuTime() - start
				if err != nil {
					b.Fatal(err)
				}
				if res.ops < 1 {
					b.Fatalf("%d fleet ops after a change, want a create at least", res.ops)
				}
			}
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(c.counting.calls.Load())/float64(b.N), "fleet-calls/op")
			b.ReportMetric(float64(c.cs.count("PutStatus"))/float64(b.N), "status-writes/op")
			b.ReportMetric(float64(c.cs.writes())/float64(b.N), "store-writes/op")
		})
	}
}

// BenchmarkIdle: the reconciler's Run, with its default timings (poll
// every 2s, resync every 30s), on a cluster where nothing changes, while
// fleet's agents republish every unit state every 24s (each machine's at
// its own time) as they do. One op is an idle minute (run it with
// -benchtime 1x; KAYLEE_BENCH_IDLE sets another length). cpu-s/min is
// this process's CPU time (user and system: the reconciler, the embedded
// etcd serving it, and the republishing) per minute; floor-cpu-s/min the
// same before the reconciler started (the republishing and etcd alone);
// the calls it made are counted per minute.
//
// The churn cases are fleet on a loaded etcd: each state is published
// with a TTL of 20s, so it expires 4s before its agent publishes it
// again, unchanged (about 125 expiries and as many returns a second at
// 1,000 units × 3). "tracked" is the scheduler as it runs on fleet's
// registry (it counts expiries apart: StateTracker); "listing" the
// baseline, a scheduler that lists every state when told of any change.
//
//	go test ./fleet -run '^$' -bench Idle -benchtime 1x -timeout 30m
func BenchmarkIdle(b *testing.B) {
	window := time.Minute
	if v := os.Getenv("KAYLEE_BENCH_IDLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("KAYLEE_BENCH_IDLE: %v", err)
		}
		window = d
	}
	perMin := func(n int64, total time.Duration) float64 { return float64(n) / total.Minutes() }
	for _, tc := range []struct {
		units, machines int
		churn, listing  bool
	}{{100, 10, false, false}, {1000, 10, false, false}, {1000, 100, false, false}, {1000, 10, true, false}, {1000, 10, true, true}} {
		name := fmt.Sprintf("units=%d/machines=%d", tc.units, tc.machines)
		if tc.churn {
			name += map[bool]string{false: "/churn/tracked", true: "/churn/listing"}[tc.listing]
		}
		b.Run(name, func(b *testing.B) {
			c := newBenchCluster(b, tc.units, tc.machines)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ttl := time.Hour
			if tc.churn {
				ttl = 20 * time.Second
			}
			c.republish(ctx, 24*time.Second, ttl)
			floor := cpuTime()
			time.Sleep(window)
			floor = cpuTime() - floor
			r := c.r
			if tc.listing {
				var err error
				if r, err = NewReconciler(listingAPI{API: c.counting, c: c.counting}, c.cs, Options{MinReady: time.Nanosecond}, nil); err != nil {
					b.Fatal(err)
				}
			}
			run, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- r.Run(run, store.Fence{}) }()
			c.settle(b, tc.units)
			c.counting.reset()
			c.cs.reset()
			var cpu, total time.Duration
			for b.Loop() {
				start, at := cpuTime(), time.Now()
				time.Sleep(window)
				cpu += cpuTime() - start
				total += time.Since(at)
			}
			stop()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(cpu.Seconds()/total.Minutes(), "cpu-s/min")
			b.ReportMetric(floor.Seconds()/window.Minutes(), "floor-cpu-s/min")
			b.ReportMetric(perMin(c.counting.count("UnitStates"), total), "fleet-states-lists/min")
			b.ReportMetric(perMin(c.counting.count("Units"), total), "fleet-units-lists/min")
			b.ReportMetric(perMin(c.counting.count("Machines"), total), "fleet-machines-lists/min")
			b.ReportMetric(perMin(c.cs.count("ListUnits"), total), "passes/min")
			b.ReportMetric(perMin(c.cs.writes(), total), "store-writes/min")
			b.Logf("idle %s: fleet calls %v, store calls %v", total.Round(time.Second), c.counting.counts(), c.cs.counts())
		})
	}
}

// listingAPI is fleet's registry as a scheduler without StateTracker
// sees it (BenchmarkIdle's baseline): told of any change of the states,
// it lists them all to see whether one changed.
type listingAPI struct {
	client.API
	c *countingAPI
}

func (l listingAPI) StateChanges(ctx context.Context, retry, hold time.Duration) <-chan struct{} {
	return l.c.StateChanges(ctx, retry, hold)
}
func (l listingAPI) StateRemovals() (map[string]time.Time, uint64) { return l.c.StateRemovals() }

// settle waits until the reconciler's new term has made its first passes
// (which see the replicas running, then ready, and write statuses and
// the registry): at least two passes, every status running with 3
// ready, and no status written for a second.
func (c *benchCluster) settle(b *testing.B, units int) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		writes := c.cs.count("PutStatus")
		time.Sleep(time.Second)
		sts, err := c.s.ListStatuses(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		ready := 0
		for _, st := range sts {
			if st.Phase == store.PhaseRunning && st.Ready == 3 {
				ready++
			}
		}
		if ready == units && c.cs.count("ListUnits") >= 2 && c.cs.count("PutStatus") == writes {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("2 minutes after the reconciler started: %d of %d statuses running with 3 ready, %d passes", ready, units, c.cs.count("ListUnits"))
		}
	}
}

// republish saves, every period, each machine's unit states again as its
// fleet agent does (fleet's UnitStatePublisher: every 4/5 of its 30s
// TTL) with a TTL of ttl, each machine at its own time, until ctx ends.
func (c *benchCluster) republish(ctx context.Context, period, ttl time.Duration) {
	k := 0
	for _, states := range c.states {
		offset := period * time.Duration(k) / time.Duration(len(c.states))
		k++
		go func() {
			if !sleep(ctx, offset) {
				return
			}
			tick := time.NewTicker(period)
			defer tick.Stop()
			for {
				for _, st := range states {
					c.reg.SaveUnitState(st.UnitName, st, ttl)
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
}

// cpuTime is this process's CPU time so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countingStore counts the store calls of the reconciler, by method, and
// the registry's writes: transactions (up to 120 keys each) and keys.
type countingStore struct {
	*store.Store
	txns, keys atomic.Int64
	mu         sync.Mutex
	by         map[string]int64
}

func (c *countingStore) add(method string) {
	c.mu.Lock()
	if c.by == nil {
		c.by = map[string]int64{}
	}
	c.by[method]++
	c.mu.Unlock()
}

func (c *countingStore) count(method string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.by[method]
}

func (c *countingStore) counts() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.by)
}

// writes counts the calls that write.
func (c *countingStore) writes() int64 {
	n := int64(0)
	for _, m := range []string{"PutStatus", "DeleteStatus", "PutHistory", "DeleteHistory", "ApplyInstances", "AppendEvents", "PutSchedulerSettings"} {
		n += c.count(m)
	}
	return n
}

func (c *countingStore) reset() {
	c.mu.Lock()
	c.by = nil
	c.mu.Unlock()
	c.txns.Store(0)
	c.keys.Store(0)
}

func (c *countingStore) ApplyInstances(ctx context.Context, puts []*store.Instance, deletes []string, f store.Fence) error {
	c.add("ApplyInstances")
	n := len(puts) + len(deletes)
	c.txns.Add(int64((n + 119) / 120))
	c.keys.Add(int64(n))
	return c.Store.ApplyInstances(ctx, puts, deletes, f)
}

func (c *countingStore) ListUnits(ctx context.Context) ([]*store.Unit, int64, error) {
	c.add("ListUnits")
	return c.Store.ListUnits(ctx)
}

func (c *countingStore) RestartCounters(ctx context.Context) (map[string]int64, error) {
	c.add("RestartCounters")
	return c.Store.RestartCounters(ctx)
}

func (c *countingStore) Suspensions(ctx context.Context) (map[string]*store.Suspension, error) {
	c.add("Suspensions")
	return c.Store.Suspensions(ctx)
}

func (c *countingStore) RollbackPins(ctx context.Context) (map[string]*store.RollbackPin, error) {
	c.add("RollbackPins")
	return c.Store.RollbackPins(ctx)
}

func (c *countingStore) GetSchedulerSettings(ctx context.Context) (*store.SchedulerSettings, error) {
	c.add("GetSchedulerSettings")
	return c.Store.GetSchedulerSettings(ctx)
}

func (c *countingStore) PutSchedulerSettings(ctx context.Context, st *store.SchedulerSettings, f store.Fence) error {
	c.add("PutSchedulerSettings")
	return c.Store.PutSchedulerSettings(ctx, st, f)
}

func (c *countingStore) ListSyncRecords(ctx context.Context) (map[string]*store.SyncRecord, error) {
	c.add("ListSyncRecords")
	return c.Store.ListSyncRecords(ctx)
}

// ApplyStatuses counts each status written as a PutStatus, each deleted
// as a DeleteStatus: the keys, whatever the transactions.
func (c *countingStore) ApplyStatuses(ctx context.Context, puts []*store.Status, deletes []string, f store.Fence) error {
	for range puts {
		c.add("PutStatus")
	}
	for range deletes {
		c.add("DeleteStatus")
	}
	return c.Store.ApplyStatuses(ctx, puts, deletes, f)
}

func (c *countingStore) PutHistory(ctx context.Context, e *store.HistoryEntry, drop []int64, f store.Fence) error {
	c.add("PutHistory")
	return c.Store.PutHistory(ctx, e, drop, f)
}

func (c *countingStore) DeleteHistory(ctx context.Context, name string, f store.Fence) error {
	c.add("DeleteHistory")
	return c.Store.DeleteHistory(ctx, name, f)
}

func (c *countingStore) AppendEvents(ctx context.Context, f store.Fence, evs ...store.Event) error {
	c.add("AppendEvents")
	return c.Store.AppendEvents(ctx, f, evs...)
}

func (c *countingStore) Confirm(ctx context.Context, f store.Fence) (time.Duration, error) {
	c.add("Confirm")
	return c.Store.Confirm(ctx, f)
}

// seedUnit stores a spec and puts its rendered units in the registry,
// scheduled and running, as fleet's engine and agents would; it returns
// the states it published.
func seedUnit(ctx context.Context, s *store.Store, reg interface {
	CreateUnit(*job.Unit) error
	ScheduleUnit(name, machID string) error
	SaveUnitState(string, *unit.UnitState, time.Duration)
}, sp *deploy.Spec, machines []string, i int) ([]*unit.UnitState, error) {
	if _, err := s.PutUnit(ctx, sp, store.Fence{}); err != nil {
		return nil, err
	}
	rendered, err := deploy.Render(sp, deploy.RenderOptions{})
	if err != nil {
		return nil, err
	}
	var states []*unit.UnitState
	for j, u := range rendered {
		uf := schema.MapSchemaUnitOptionsToUnitFile(u.Options)
		if err := reg.CreateUnit(&job.Unit{Name: u.Name, Unit: *uf, TargetState: job.JobStateLaunched}); err != nil {
			return nil, err
		}
		m := machines[(i+j)%len(machines)]
		if err := reg.ScheduleUnit(u.Name, m); err != nil {
			return nil, err
		}
		st := &unit.UnitState{LoadState: "loaded", ActiveState: "active", SubState: "running",
			MachineID: m, UnitHash: uf.Hash().String(), UnitName: u.Name}
		reg.SaveUnitState(u.Name, st, time.Hour)
		states = append(states, st)
	}
	return states, nil
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

// planWorld is a steady cluster in memory, as a pass's snapshot holds
// it: units Kaylee units × 3 replicas on machines machines, scheduled and
// running, with the statuses and registry of the passes that saw them
// ready; no etcd.
func planSnapshot(b *testing.B, units, machines int) (*passPlanner, *snapshot) {
	snap := &snapshot{statuses: map[string]*store.Status{}, history: map[string][]*store.HistoryEntry{},
		registry: &registry{written: map[string]*store.Instance{}, left: map[string]bool{}, since: map[string]time.Time{}}}
	ids := make([]string, machines)
	for i := range ids {
		ids[i] = fmt.Sprintf("%032x", i+1)
		snap.machines = append(snap.machines, machine.MachineState{ID: ids[i], PublicIP: fmt.Sprintf("10.0.%d.%d", i/250, i%250+1),
			Metadata: map[string]string{"role": "worker"}})
	}
	for i := range units {
		sp := benchSpec(i)
		snap.units = append(snap.units, &store.Unit{Name: sp.Name, Spec: *sp, Raw: sp.CanonicalJSON()})
		rendered, err := deploy.Render(sp, deploy.RenderOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for j, u := range rendered {
			m := ids[(i+j)%machines]
			snap.fleetUnits = append(snap.fleetUnits, &schema.Unit{Name: u.Name, Options: u.Options, DesiredState: targetLaunched, MachineID: m})
			snap.states = append(snap.states, &schema.UnitState{Name: u.Name, MachineID: m, Hash: unitHash(u.Options),
				SystemdLoadState: "loaded", SystemdActiveState: "active", SystemdSubState: "running"})
		}
	}
	pp := newPassPlanner(Options{MinReady: time.Nanosecond}.withDefaults())
	for range 2 { // running, then ready
		settlePlan(pp, snap, time.Now())
		time.Sleep(time.Millisecond)
	}
	return pp, snap
}

// settlePlan plans and keeps what the plan writes, as apply would.
func settlePlan(pp *passPlanner, snap *snapshot, now time.Time) *planResult {
	plan := pp.plan(snap, now)
	for _, ns := range plan.statuses {
		if ns.status == nil {
			delete(snap.statuses, ns.name)
		} else {
			snap.statuses[ns.name] = ns.status
		}
	}
	snap.registry.applied(plan.instances.puts, plan.instances.deletes)
	return plan
}

// BenchmarkPlanNoop: the plan phase alone of a no-op pass (the snapshot
// in memory), at each of benchSizes: what a pass costs beyond its lists.
//
//	go test ./fleet -run '^$' -bench PlanNoop -benchtime 20x
func BenchmarkPlanNoop(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("units=%d/machines=%d", size.units, size.machines), func(b *testing.B) {
			pp, snap := planSnapshot(b, size.units, size.machines)
			b.ReportAllocs()
			for b.Loop() {
				plan := pp.plan(snap, time.Now())
				if len(plan.ops) != 0 || plan.busy() || len(plan.instances.puts)+len(plan.instances.deletes) != 0 {
					b.Fatalf("not a no-op plan: %d ops, busy %v, %d registry writes", len(plan.ops), plan.busy(), len(plan.instances.puts)+len(plan.instances.deletes))
				}
			}
		})
	}
}

// BenchmarkPlanRemoveAll: the plan of the pass after every unit was
// removed from the store (a source pruned), its fleet units still there:
// each unit's dependants among the removed ones are looked up.
//
//	go test ./fleet -run '^$' -bench PlanRemoveAll -benchtime 10x
func BenchmarkPlanRemoveAll(b *testing.B) {
	for _, size := range benchSizes[:3] {
		b.Run(fmt.Sprintf("units=%d/machines=%d", size.units, size.machines), func(b *testing.B) {
			pp, snap := planSnapshot(b, size.units, size.machines)
			snap.units = nil
			b.ReportAllocs()
			for b.Loop() {
				plan := pp.plan(snap, time.Now())
				if len(plan.ops) != 3*size.units {
					b.Fatalf("%d ops, want %d stops", len(plan.ops), 3*size.units)
				}
			}
		})
	}
}
