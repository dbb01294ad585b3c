package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/coreos/fleet/client"
	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// Options tune the reconciler. Zero values take the defaults (but
// DrainDelay's, which is none).
type Options struct {
	UnitPrefix string // only fleet units named "<UnitPrefix>:..." are touched; default "k2"
	// DefaultEngine is the engine a unit that names none runs with
	// (deploy.Engines; "" is rkt, the seed format's default). The
	// scheduler applies it (deploy.Spec.WithDefaultEngine) to every
	// stored spec before hashing or rendering it; the stored JSON is
	// never changed. A default other than rkt changes the spec hash of
	// those units, so switching it rolls them over one by one.
	DefaultEngine string
	// MinReady: a new replica must have run this long before an old one
	// is removed. Default 10s.
	MinReady time.Duration
	// RolloutTimeout: a rollout not done by then fails. Default 5m.
	RolloutTimeout time.Duration
	// MaxRestarts: a new replica seen entering activating/auto-restart
	// this many times (units render Restart=always, so on real systemd a
	// crashing process restarts forever and never shows as failed) fails
	// the rollout at once, without waiting for RolloutTimeout. The count
	// starts again once a replica has been ready (running for MinReady).
	// A replica of a deployed spec that restarts is left to systemd and
	// named in the status. Default 2.
	//
	// A health check renders as ExecStartPost: systemd holds the unit in
	// activating/start-post until it passes, and fails the start (then
	// auto-restart, under Restart=always) when it does not within the
	// spec's startPeriod. A new replica seen going from start-post to
	// auto-restart (or failed) fails the rollout the first time, whatever
	// MaxRestarts; a replica of a deployed spec is left to systemd, as a
	// restart.
	MaxRestarts int
	// DrainDelay: a replica that serves (it is in the instance registry)
	// and that the scheduler stops (a rollout's surplus, a scale down, a
	// removed unit, a replacement in place) leaves the registry at once,
	// and is told to stop only this long after the registry write that
	// removed it, so that routers and load balancers following the
	// registry stop sending to it first. Meanwhile it still counts as up
	// for maxSurge and maxReplicasPerHost. A replica that does not serve
	// (failed, restarting, on a lost machine) is stopped at once. A new
	// leader starts the wait again for a replica it finds draining (it
	// does not list it either). 0, the zero value, turns it off.
	DrainDelay time.Duration
	// StopTimeout: a unit set to stop is destroyed after this long even if
	// fleet still reports it active. Default 90s.
	StopTimeout time.Duration
	// Unschedulable: a new replica with no machine this long fails the
	// rollout. Default 30s (fleet's engine looks every 2s).
	Unschedulable time.Duration
	// RetryFailed: a failed replica of a deployed spec is replaced after
	// this pause. Default 30s.
	RetryFailed time.Duration
	// SweepDelay: what fleet keeps of the fleet units the scheduler
	// destroyed (unit files, which fleet never deletes and each of its
	// agents reads on every reconciliation, and emptied directories) is
	// removed this long after a destroy, once the destroyed units' last
	// heartbeats have expired (fleet's agent_ttl, 30s by default), and
	// this long after a leader starts. Default 2m. See sweep.go.
	SweepDelay time.Duration
	// MachineLossGrace: a member of a stateful unit with onMachineLoss
	// move whose machine has left fleet for this long is moved to another
	// machine (of its zone, with spread). The leader remembers since when
	// a machine is gone: after a change of leader the grace starts again.
	// Default 5m.
	MachineLossGrace time.Duration
	Poll             time.Duration // how often fleet's unit states are polled; default 2s
	Resync           time.Duration // full reconcile even when nothing changed; default 30s
	Workers          int           // concurrent fleet calls; default 8
	// HistoryLimit: how many revisions of each unit the history keeps.
	// Default store.DefaultHistory (10).
	HistoryLimit int
	Observer     Observer // told about fleet calls and phases; may be nil
	// ID names this process in the events it writes (<prefix>/events).
	ID string
	// Confirmed, when set, is called each time the leader has confirmed
	// its leadership right before fleet calls (a fault-injection hook for
	// tests: a process may stop itself there).
	Confirmed func()
}

// Observer is told what the reconciler does (for metrics).
type Observer interface {
	// FleetCall reports one fleet call: op is create, launch, stop or
	// destroy; err is its error.
	FleetCall(op string, err error)
	// Phases reports, after each pass, how many units are in each phase.
	Phases(counts map[string]int)
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.UnitPrefix == "" {
		o.UnitPrefix = deploy.DefaultUnitPrefix
	}
	def(&o.MinReady, 10*time.Second)
	def(&o.RolloutTimeout, 5*time.Minute)
	def(&o.StopTimeout, 90*time.Second)
	def(&o.Unschedulable, 30*time.Second)
	def(&o.RetryFailed, 30*time.Second)
	def(&o.MachineLossGrace, 5*time.Minute)
	def(&o.SweepDelay, 2*time.Minute)
	def(&o.Poll, 2*time.Second)
	def(&o.Resync, 30*time.Second)
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.MaxRestarts <= 0 {
		o.MaxRestarts = 2
	}
	if o.HistoryLimit <= 0 {
		o.HistoryLimit = store.DefaultHistory
	}
	return o
}

// Store is what the reconciler needs from the store.
type Store interface {
	ListUnits(ctx context.Context) ([]*store.Unit, int64, error)
	RestartCounters(ctx context.Context) (map[string]int64, error)
	WatchUnits(ctx context.Context, rev int64) <-chan []store.Change
	ListStatuses(ctx context.Context) (map[string]*store.Status, error)
	// ApplyStatuses writes and deletes statuses, fenced, a few
	// transactions for all of them.
	ApplyStatuses(ctx context.Context, puts []*store.Status, deletes []string, f store.Fence) error
	Suspensions(ctx context.Context) (map[string]*store.Suspension, error)
	AllHistory(ctx context.Context) (map[string][]*store.HistoryEntry, error)
	PutHistory(ctx context.Context, e *store.HistoryEntry, drop []int64, f store.Fence) error
	DeleteHistory(ctx context.Context, name string, f store.Fence) error
	RollbackPins(ctx context.Context) (map[string]*store.RollbackPin, error)
	ListSyncRecords(ctx context.Context) (map[string]*store.SyncRecord, error)
	// Confirm checks the fence stands and says for how long at least (see
	// store.Store.Confirm); every batch of fleet calls waits for it.
	Confirm(ctx context.Context, f store.Fence) (time.Duration, error)
	ListInstances(ctx context.Context) (map[string]*store.Instance, error)
	ApplyInstances(ctx context.Context, puts []*store.Instance, deletes []string, f store.Fence) error
	AppendEvents(ctx context.Context, f store.Fence, evs ...store.Event) error
	// PutSchedulerSettings publishes the leader's settings (its default
	// engine) for the processes that wait for rollouts (fenced).
	PutSchedulerSettings(ctx context.Context, st *store.SchedulerSettings, f store.Fence) error
	// GetSchedulerSettings reads the settings the last leader published
	// (rkt when none did).
	GetSchedulerSettings(ctx context.Context) (*store.SchedulerSettings, error)
	// GetEvidence reads what a failed replica's machine saw (see
	// evidence.go); machine "" for any machine's newest.
	GetEvidence(ctx context.Context, unit, fleetUnit, machine string) (*store.Evidence, error)
}

// Reconciler drives fleet to the units in the store. Run it only while
// leading (see store.Lead): it is level-triggered, so a new leader
// converges from whatever state the last one left.
type Reconciler struct {
	api   client.API
	store Store
	opts  Options
	log   *slog.Logger
}

// NewReconciler returns a reconciler; log may be nil.
func NewReconciler(api client.API, s Store, opts Options, log *slog.Logger) (*Reconciler, error) {
	opts = opts.withDefaults()
	if err := deploy.CheckUnitPrefix(opts.UnitPrefix); err != nil {
		return nil, fmt.Errorf("unit prefix: %w", err)
	}
	if opts.DefaultEngine != "" {
		if err := deploy.CheckEngine(opts.DefaultEngine); err != nil {
			return nil, fmt.Errorf("default engine: %w", err)
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{api: api, store: s, opts: opts, log: log}, nil
}

// term is the reconciler's state during one leadership term.
type term struct {
	*Reconciler
	fence store.Fence
	// planner computes each pass's plan; it remembers what fleet showed.
	planner *passPlanner
	// What this term wrote (it alone writes while it leads), read from
	// the store when it starts.
	statuses map[string]*store.Status         // as last written
	history  map[string][]*store.HistoryEntry // as last written
	reg      *registry
	states   string     // fingerprint of fleet unit states at the last pass
	removals uint64     // the count of states fleet's agents removed, at the last pass
	seqs     uint64     // the StateTracker's count of changes at the last pass
	events   eventBatch // of the pass under way
	// machinesDropped is what was last left out of fleet's machines.
	machinesDropped string
	sweep           *sweeper // when fleet's leftovers are removed
}

func (r *Reconciler) newTerm(ctx context.Context, fence store.Fence) (*term, error) {
	sts, err := r.store.ListStatuses(ctx)
	if err != nil {
		return nil, err
	}
	hist, err := r.store.AllHistory(ctx)
	if err != nil {
		return nil, err
	}
	reg, err := r.newRegistry(ctx)
	if err != nil {
		return nil, err
	}
	return &term{Reconciler: r, fence: fence, planner: newPassPlanner(r.opts), statuses: sts, history: hist, reg: reg,
		sweep: newSweeper(r.opts.SweepDelay, time.Now())}, nil
}

// Run reconciles until ctx ends or a status write is refused because this
// process no longer leads. fence guards its writes.
func (r *Reconciler) Run(ctx context.Context, fence store.Fence) error {
	t := r.startTerm(ctx, fence)
	if t == nil { // stopping: not an error
		return nil
	}
	l := t.newLoop(ctx)
	defer l.stop()
	for {
		if l.due {
			if err := l.runPass(ctx); err != nil {
				return err
			}
		}
		if !l.wait(ctx) {
			return nil
		}
	}
}

// startTerm reads what the term starts from, retrying until it can; nil
// when ctx ends first.
func (r *Reconciler) startTerm(ctx context.Context, fence store.Fence) *term {
	for {
		t, err := r.newTerm(ctx, fence)
		if err == nil {
			return t
		}
		if ctx.Err() != nil {
			return nil
		}
		r.log.Error("reading status records; retrying", "err", err)
		if !sleep(ctx, r.opts.Poll) {
			return nil
		}
	}
}

// loop is when Run makes a pass: at once after a change of the units
// (watch), of fleet's unit states (a notifier, or a poll), at the time a
// pass asked for, and at every resync.
type loop struct {
	t            *term
	wake         chan struct{}
	revs         chan int64 // store revisions passes read, for the watch
	fleetChanged <-chan struct{}
	poll, resync *time.Ticker
	soon         *time.Timer
	quick        time.Duration // after a pass that made fleet calls, look again this soon
	due          bool          // a pass is due now
}

func (t *term) newLoop(ctx context.Context) *loop {
	l := &loop{t: t, wake: make(chan struct{}, 1), revs: make(chan int64, 1), due: true,
		poll: time.NewTicker(t.opts.Poll), resync: time.NewTicker(t.opts.Resync), soon: time.NewTimer(time.Hour)}
	go t.watch(ctx, l.revs, l.wake)
	if n, ok := t.api.(StateNotifier); ok {
		l.fleetChanged = n.StateChanges(ctx, time.Second, returnHold(t.opts.Resync))
	}
	return l
}

func (l *loop) stop() {
	l.poll.Stop()
	l.resync.Stop()
	l.soon.Stop()
}

// runPass makes one pass and schedules the next. It returns an error only
// when the term ends (store.ErrNotLeader).
func (l *loop) runPass(ctx context.Context) error {
	res, err := l.t.pass(ctx)
	switch {
	case errors.Is(err, store.ErrNotLeader):
		return err
	case err != nil && ctx.Err() == nil:
		l.t.log.Error("reconcile pass failed; nothing was changed for what it could not read, retrying", "err", err)
	}
	if res.rev > 0 {
		select {
		case l.revs <- res.rev:
		default:
		}
	}
	l.due = err != nil || res.busy
	l.schedule(res)
	return nil
}

// schedule sets the timer of the next pass: when the pass asked, or soon
// after one that made fleet calls, to see their effect at once (fleet's
// registry shows them as soon as they return), backing off while every
// pass makes calls, so that a call failing over and over does not spin.
func (l *loop) schedule(res passResult) {
	next := res.wakeAt
	if res.ops > 0 {
		l.quick = min(max(2*l.quick, quickPass), l.t.opts.Poll)
		if at := time.Now().Add(l.quick); next.IsZero() || at.Before(next) {
			next = at
		}
	} else {
		l.quick = 0
	}
	l.soon.Stop()
	if !next.IsZero() {
		l.soon.Reset(time.Until(next))
	}
}

// wait waits for the next reason to look; false when ctx ends.
func (l *loop) wait(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-l.wake:
		l.due = true
		sleep(ctx, 100*time.Millisecond) // let a burst of writes land
		drain(l.wake)
	case <-l.fleetChanged:
		l.due = l.due || l.t.statesChanged()
	case <-l.soon.C:
		l.due = true
	case <-l.resync.C:
		l.due = true
	case <-l.poll.C:
		// A poll makes the pass a busy one is due; it lists fleet's states
		// only without a notifier: one tells of every change (and of each
		// start of its watch, before which one may have come), so polling
		// them too cost a list of every state every Poll on an idle
		// cluster (BenchmarkIdle).
		l.due = l.due || l.fleetChanged == nil && l.t.statesChanged()
	}
	return true
}

// quickPass is how soon a pass that made fleet calls is followed by
// another (doubling, up to Poll, while passes keep making calls).
const quickPass = 100 * time.Millisecond

// watch wakes the loop on any change of units or restart counters, from
// the revision the first pass read at.
func (r *Reconciler) watch(ctx context.Context, revs <-chan int64, wake chan<- struct{}) {
	var rev int64
	select {
	case rev = <-revs:
	case <-ctx.Done():
		return
	}
	for {
		for range r.store.WatchUnits(ctx, rev) {
			select {
			case wake <- struct{}{}:
			default:
			}
		}
		if !sleep(ctx, time.Second) {
			return
		}
		// The watch broke (etcd away or compacted): catch up with a pass
		// and watch again from what it read.
		select {
		case wake <- struct{}{}:
		default:
		}
		select {
		case rev = <-revs:
		case <-ctx.Done():
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func drain(c <-chan struct{}) {
	select {
	case <-c:
	default:
	}
}

// statesChanged reports whether a pass is due for fleet's unit states:
// from a StateTracker's counts when the API has one (trackedChanged);
// else it polls the states (one call) and reports whether those of
// Kaylee's units changed since the last pass, or fleet's agents removed
// one since: its removal may have been told after the pass read the
// states without it, and it ends the state's hold (plan_held.go).
func (t *term) statesChanged() bool {
	if tr, ok := t.api.(StateTracker); ok {
		return t.trackedChanged(tr)
	}
	if r, ok := t.api.(StateRemovalTracker); ok {
		if _, n := r.StateRemovals(); n != t.removals {
			return true
		}
	}
	states, err := t.api.UnitStates()
	if err != nil {
		t.log.Warn("polling fleet unit states", "err", err)
		return true
	}
	return fingerprint(t.opts.UnitPrefix, states) != t.states
}

// trackedChanged is statesChanged from a StateTracker's counts: a change
// since the last pass makes a pass; expiries alone do not.
func (t *term) trackedChanged(tr StateTracker) bool {
	changes, _ := tr.StateSeqs()
	return changes != t.seqs
}

// returnHold is how soon after its expiry a state back with its last
// value is no change to the scheduler: it still holds the state then
// (stateHold from the last pass that saw it, at most a resync before
// the expiry).
func returnHold(resync time.Duration) time.Duration {
	return max(stateHold-resync, 0)
}

func fingerprint(prefix string, states []*schema.UnitState) string {
	h := sha256.New()
	p := prefix + ":"
	for _, s := range states {
		if len(s.Name) > len(p) && s.Name[:len(p)] == p {
			fmt.Fprintf(h, "%s|%s|%s|%s|%s\n", s.Name, s.MachineID, s.SystemdActiveState, s.SystemdSubState, s.Hash)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// passResult sums up one pass.
type passResult struct {
	rev    int64     // store revision read
	ops    int       // fleet calls made
	busy   bool      // some unit is still on its way: look again at the next poll
	wakeAt time.Time // look again then, even if nothing changes (a replica becomes ready)
}

// pass is one level-triggered reconcile, a pipeline:
//
//  1. snapshot: read the store and fleet (a fixed number of list calls);
//  2. plan: decide every fleet call, status, registry and history entry
//     from the snapshot alone; the history's sources (rollback pins, sync
//     records) are read, and its part planned again with them, only when
//     the plan writes a history entry;
//  3. apply: make the fleet calls with a bounded pool under the fence,
//     write what changed (see term.apply for the order).
func (t *term) pass(ctx context.Context) (passResult, error) {
	snap, err := t.readSnapshot(ctx)
	if err != nil {
		return passResult{}, err
	}
	now := time.Now()
	plan := t.planner.plan(snap, now)
	t.attachEvidence(ctx, plan)
	if plan.writesHistory() {
		snap.sources = t.readSources(ctx, snap.pins)
		plan.history = planHistory(now, t.opts.HistoryLimit, snap.history, plan.inputs, plan.statuses, snap.sources)
	}
	t.states = plan.fingerprint
	res := passResult{rev: snap.rev, ops: len(plan.ops), busy: plan.busy(), wakeAt: plan.wakeAt}
	err = t.apply(ctx, snap, plan)
	if due := t.sweep.next(); !due.IsZero() && (res.wakeAt.IsZero() || due.Before(res.wakeAt)) {
		res.wakeAt = due // the next sweep of fleet's leftovers
	}
	return res, err
}
