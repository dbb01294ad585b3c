package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/fleet/client"
	"github.com/coreos/fleet/machine"
	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// Options tune the reconciler. Zero values take the defaults.
type Options struct {
	UnitPrefix string // only fleet units named "<UnitPrefix>:..." are touched; default "k2"
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
	// StopTimeout: a unit set to stop is destroyed after this long even if
	// fleet still reports it active. Default 90s.
	StopTimeout time.Duration
	// Unschedulable: a new replica with no machine this long fails the
	// rollout. Default 30s (fleet's engine looks every 2s).
	Unschedulable time.Duration
	// RetryFailed: a failed replica of a deployed spec is replaced after
	// this pause. Default 30s.
	RetryFailed time.Duration
	Poll        time.Duration // how often fleet's unit states are polled; default 2s
	Resync      time.Duration // full reconcile even when nothing changed; default 30s
	Workers     int           // concurrent fleet calls; default 8
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
	PutStatus(ctx context.Context, st *store.Status, f store.Fence) error
	DeleteStatus(ctx context.Context, name string, f store.Fence) error
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
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{api: api, store: s, opts: opts, log: log}, nil
}

// term is the reconciler's state during one leadership term.
type term struct {
	*Reconciler
	fence    store.Fence
	mem      *memory
	statuses map[string]*store.Status // as last written
	rendered map[string]*desiredUnits
	// previous: renderings of the spec each unit last rolled out, while
	// another one is desired (see renderPrevious).
	previous map[string]*desiredUnits
	// previousWarned: unit → the spec hash whose previous rendering
	// failed, logged once.
	previousWarned map[string]string
	history        map[string][]*store.HistoryEntry // as last written
	states         string                           // fingerprint of fleet unit states at the last pass
	reg            *registry
	events         eventBatch // of the pass under way
	// machinesDropped is what was last left out of fleet's machines.
	machinesDropped string
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
	return &term{Reconciler: r, fence: fence, mem: newMemory(), statuses: sts, rendered: map[string]*desiredUnits{}, previous: map[string]*desiredUnits{}, previousWarned: map[string]string{}, history: hist, reg: reg}, nil
}

// Run reconciles until ctx ends or a status write is refused because this
// process no longer leads. fence guards its writes.
func (r *Reconciler) Run(ctx context.Context, fence store.Fence) error {
	var t *term
	for t == nil {
		var err error
		if t, err = r.newTerm(ctx, fence); err != nil {
			if ctx.Err() != nil { // stopping: not an error
				return nil
			}
			r.log.Error("reading status records; retrying", "err", err)
			if !sleep(ctx, r.opts.Poll) {
				return nil
			}
		}
	}
	wake := make(chan struct{}, 1)
	revs := make(chan int64, 1)
	go r.watch(ctx, revs, wake)
	var fleetChanged <-chan struct{}
	if n, ok := r.api.(StateNotifier); ok {
		fleetChanged = n.StateChanges(ctx, time.Second)
	}

	poll := time.NewTicker(r.opts.Poll)
	defer poll.Stop()
	resync := time.NewTicker(r.opts.Resync)
	defer resync.Stop()
	soon := time.NewTimer(time.Hour)
	defer soon.Stop()
	quick := time.Duration(0) // after a pass that made fleet calls, look again this soon
	due := true               // a pass is due now
	for {
		if due {
			res, err := t.pass(ctx)
			switch {
			case errors.Is(err, store.ErrNotLeader):
				return err
			case err != nil && ctx.Err() == nil:
				r.log.Error("reconcile pass failed; nothing was changed for what it could not read, retrying", "err", err)
			}
			if res.rev > 0 {
				select {
				case revs <- res.rev:
				default:
				}
			}
			due = err != nil || res.busy
			// See the effect of this pass's own calls at once (fleet's
			// registry shows them as soon as they return), backing off
			// while every pass makes calls, so that a call failing over
			// and over does not spin.
			next := res.wakeAt
			if res.ops > 0 {
				quick = min(max(2*quick, quickPass), r.opts.Poll)
				if at := time.Now().Add(quick); next.IsZero() || at.Before(next) {
					next = at
				}
			} else {
				quick = 0
			}
			soon.Stop()
			if !next.IsZero() {
				soon.Reset(time.Until(next))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
			due = true
			sleep(ctx, 100*time.Millisecond) // let a burst of writes land
			drain(wake)
		case <-fleetChanged:
			if !due {
				due = t.statesChanged()
			} else {
				due = true
			}
		case <-soon.C:
			due = true
		case <-resync.C:
			due = true
		case <-poll.C:
			if !due {
				due = t.statesChanged()
			}
		}
	}
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

// statesChanged polls fleet's unit states (one call) and reports whether
// those of Kaylee's units changed since the last pass.
func (t *term) statesChanged() bool {
	states, err := t.api.UnitStates()
	if err != nil {
		t.log.Warn("polling fleet unit states", "err", err)
		return true
	}
	return fingerprint(t.opts.UnitPrefix, states) != t.states
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

// pass is one level-triggered reconcile: read the store and fleet (a fixed
// number of list calls), plan every unit, make the fleet calls with a
// bounded pool, write the statuses that changed.
func (t *term) pass(ctx context.Context) (passResult, error) {
	units, rev, err := t.store.ListUnits(ctx)
	if err != nil {
		return passResult{}, err
	}
	restarts, err := t.store.RestartCounters(ctx)
	if err != nil {
		return passResult{}, err
	}
	suspended, err := t.store.Suspensions(ctx)
	if err != nil {
		return passResult{}, err
	}
	fleetUnits, err := t.api.Units()
	if err != nil {
		return passResult{}, fmt.Errorf("fleet: listing units: %w", err)
	}
	states, err := t.api.UnitStates()
	if err != nil {
		return passResult{}, fmt.Errorf("fleet: listing unit states: %w", err)
	}
	machines, err := t.api.Machines()
	if err != nil {
		return passResult{}, fmt.Errorf("fleet: listing machines: %w", err)
	}
	now := time.Now()
	ops, statuses, inputs, wakeAt := t.plan(now, units, restarts, suspended, fleetUnits, states, machines)
	t.states = fingerprint(t.opts.UnitPrefix, states)
	res := passResult{rev: rev, ops: len(ops), wakeAt: wakeAt}
	for _, st := range statuses {
		if st.status == nil || st.status.Phase != store.PhaseRunning && st.status.Phase != store.PhaseFailed && st.status.Phase != store.PhaseSuspended {
			res.busy = true
		}
	}
	if len(ops) > 0 {
		res.busy = true
	}
	// The registry first: a replica about to be stopped leaves it before
	// fleet is told to stop it.
	byID := make(map[string]machine.MachineState, len(machines))
	for _, m := range machines {
		byID[m.ID] = m
	}
	puts, deletes := t.reg.diff(serving(inputs, ops, byID, t.reg.since, now))
	if len(puts)+len(deletes) > 0 {
		if err := t.store.ApplyInstances(ctx, puts, deletes, t.fence); err != nil {
			return res, fmt.Errorf("instance registry: %w; no fleet call made", err)
		}
		t.reg.applied(puts, deletes)
	}
	why := make(map[string]string, len(statuses))
	for _, st := range statuses {
		if st.status != nil {
			why[st.name] = st.status.Message
		}
	}
	defer t.flushEvents(ctx)
	t.events.settle(fleetUnits, states)
	if err := t.apply(ctx, ops, why); err != nil {
		return res, err
	}
	if t.opts.Observer != nil {
		phases := map[string]int{}
		for _, st := range statuses {
			if st.status != nil {
				phases[st.status.Phase]++
			}
		}
		t.opts.Observer.Phases(phases)
	}
	if err := t.writeStatuses(ctx, statuses); err != nil {
		return res, err
	}
	return res, t.recordHistory(ctx, now, inputs, statuses)
}

// warnMachines logs what was left out of fleet's machines, once for each
// change of it.
func (t *term) warnMachines(dropped []string) {
	key := strings.Join(dropped, "\n")
	if key == t.machinesDropped {
		return
	}
	t.machinesDropped = key
	for _, d := range dropped {
		t.log.Warn("fleet reports machine data no unit file can hold; left out of placement", "what", d)
	}
}

type namedStatus struct {
	name   string
	status *store.Status // nil: delete
}

// plan turns what was read into fleet calls and statuses. It makes no call.
func (t *term) plan(now time.Time, units []*store.Unit, restarts map[string]int64, suspended map[string]*store.Suspension,
	fleetUnits []*schema.Unit, states []*schema.UnitState, machines []machine.MachineState) ([]op, []namedStatus, map[string]*unitInput, time.Time) {
	p := &planner{opts: t.opts, mem: t.mem, now: now, machines: make(map[string]string, len(machines))}
	fleetMachines := make([]deploy.Machine, 0, len(machines))
	var dropped []string
	for _, m := range machines {
		p.machines[m.ID] = m.PublicIP
		// What fleet reports is held to the rules of what git gives:
		// its IDs and metadata are rendered into unit files.
		clean, d, ok := deploy.CleanMachine(deploy.Machine{ID: m.ID, Metadata: m.Metadata})
		for _, x := range d {
			dropped = append(dropped, fmt.Sprintf("machine %.12q: %s", m.ID, x))
		}
		if ok {
			fleetMachines = append(fleetMachines, clean)
		}
	}
	t.warnMachines(dropped)
	actual := t.observe(fleetUnits, states, p.machines)
	p.conflicts = newConflictView(t.opts.UnitPrefix, fleetUnits, states, p.machines)
	inputs := make(map[string]*unitInput, len(units)+len(actual))
	for _, u := range units {
		in := &unitInput{name: u.Name, prev: t.statuses[u.Name], specErr: u.Err, raw: u.Raw, restart: restarts[u.Name]}
		if u.Err == nil {
			in.spec = &u.Spec
			in.desired, in.specErr = t.render(u, restarts[u.Name], fleetMachines, actual[u.Name])
		}
		inputs[u.Name] = in
	}
	present := make(map[string]bool)
	for name, as := range actual {
		in := inputs[name]
		if in == nil {
			in = &unitInput{name: name, prev: t.statuses[name]}
			inputs[name] = in
		}
		in.actual = as
		for _, a := range as {
			present[a.name()] = true
		}
	}
	for name, st := range t.statuses {
		if inputs[name] == nil {
			inputs[name] = &unitInput{name: name, prev: st}
		}
	}
	for name, s := range suspended {
		if in := inputs[name]; in != nil {
			in.suspended = s
		}
	}
	for _, in := range inputs {
		if in.desired != nil {
			in.previous = t.renderPrevious(in, fleetMachines)
		}
	}
	for name := range t.rendered {
		if inputs[name] == nil || inputs[name].spec == nil {
			delete(t.rendered, name)
		}
	}
	for name := range t.previous {
		if inputs[name] == nil || inputs[name].previous == nil {
			delete(t.previous, name)
		}
	}
	for name := range t.previousWarned {
		if inputs[name] == nil {
			delete(t.previousWarned, name)
		}
	}
	names := make([]string, 0, len(inputs))
	for n := range inputs {
		names = append(names, n)
	}
	sort.Strings(names)
	var ops []op
	statuses := make([]namedStatus, 0, len(names))
	for _, n := range names {
		o, st := p.plan(inputs[n])
		ops = append(ops, o...)
		statuses = append(statuses, namedStatus{n, st})
	}
	t.mem.forget(present, now, 2*t.opts.RetryFailed)
	return ops, statuses, inputs, p.next
}

// observe groups fleet's units and states by Kaylee unit, ignoring every
// unit without the prefix. States fleet still holds for a machine that is
// gone (they live until their TTL), and, for a unit scheduled to one
// machine, states from another (where fleet moved it from), are left out:
// they are not replicas.
func (t *term) observe(fleetUnits []*schema.Unit, states []*schema.UnitState, machines map[string]string) map[string][]*actualUnit {
	byName := map[string]*actualUnit{}
	out := map[string][]*actualUnit{}
	get := func(name string) *actualUnit {
		if a, ok := byName[name]; ok {
			return a
		}
		id, ok := deploy.ParseUnitName(t.opts.UnitPrefix, name)
		if !ok {
			return nil
		}
		a := &actualUnit{id: id}
		byName[name] = a
		out[id.Name] = append(out[id.Name], a)
		return a
	}
	for _, u := range fleetUnits {
		if a := get(u.Name); a != nil {
			a.unit = u
			a.hash = unitHash(u.Options)
		}
	}
	for _, s := range states {
		if _, live := machines[s.MachineID]; !live {
			continue
		}
		if a := get(s.Name); a != nil {
			if a.unit != nil && a.unit.MachineID != "" && a.unit.MachineID != s.MachineID {
				continue
			}
			a.states = append(a.states, s)
		}
	}
	for _, as := range out {
		sort.Slice(as, func(i, j int) bool {
			return as[i].id.Index < as[j].id.Index || as[i].id.Index == as[j].id.Index && as[i].name() < as[j].name()
		})
	}
	return out
}

// machinesKey identifies a set of machines and their metadata.
func machinesKey(machines []deploy.Machine) string {
	lines := make([]string, 0, len(machines))
	for _, m := range machines {
		md := make([]string, 0, len(m.Metadata))
		for k, v := range m.Metadata {
			md = append(md, k+"="+v)
		}
		sort.Strings(md)
		lines = append(lines, m.ID+" "+strings.Join(md, ","))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func unitHash(opts []*schema.UnitOption) string {
	return schema.MapSchemaUnitOptionsToUnitFile(opts).Hash().String()
}

// renderPrevious renders the spec a unit last rolled out (its status's
// Deployed hash), read back from its history, while another spec is
// desired: if that rollout fails, the planner brings the previous version
// back to full strength with it (restorePrevious). It is nil when the
// unit never rolled out, is rolling global (a failed rollout launches its
// parked units again), or the history no longer has that spec.
func (t *term) renderPrevious(in *unitInput, machines []deploy.Machine) *desiredUnits {
	if in.prev == nil || in.prev.Deployed == "" || in.prev.Deployed == in.desired.hash || in.spec.Rolling() {
		return nil
	}
	entries := t.history[in.name]
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.SpecHash != in.prev.Deployed {
			continue
		}
		d, err := t.renderEntry(in, e, machines)
		if err != nil {
			if t.previousWarned[in.name] == e.SpecHash {
				return nil
			}
			t.previousWarned[in.name] = e.SpecHash
			t.log.Warn("the previous version of a unit cannot be rendered again from its history: a failed rollout will not bring it back to full strength",
				"unit", in.name, "specHash", e.SpecHash, "revision", e.Revision, "err", err)
			return nil
		}
		return d
	}
	return nil
}

// renderEntry renders the spec of a history entry, cached in t.previous.
func (t *term) renderEntry(in *unitInput, e *store.HistoryEntry, machines []deploy.Machine) (*desiredUnits, error) {
	doc, err := deploy.DecodeJSON(fmt.Sprintf("history of %s, revision %d", in.name, e.Revision), e.Spec)
	if err != nil {
		return nil, fmt.Errorf("decoding revision %d: %w", e.Revision, err)
	}
	u := &store.Unit{Name: in.name, Raw: e.Spec, Spec: doc.Spec}
	d, err := t.renderInto(t.previous, u, e.Restart, machines, in.actual)
	if err != nil {
		return nil, fmt.Errorf("rendering revision %d: %w", e.Revision, err)
	}
	if d.hash != e.SpecHash {
		// Another Kaylee hashed it: its fleet units have other names.
		delete(t.previous, in.name)
		return nil, fmt.Errorf("revision %d hashes to %s now, not %s", e.Revision, d.hash, e.SpecHash)
	}
	return d, nil
}

// render renders a stored unit, cached by its value and restart counter
// (and, for a rolling global unit, the machines it is rendered for).
func (t *term) render(u *store.Unit, restart int64, machines []deploy.Machine, actual unitSet) (*desiredUnits, error) {
	return t.renderInto(t.rendered, u, restart, machines, actual)
}

// renderInto is render with its cache, one rendering per unit name.
func (t *term) renderInto(cache map[string]*desiredUnits, u *store.Unit, restart int64, machines []deploy.Machine, actual unitSet) (*desiredUnits, error) {
	key := strconv.FormatInt(restart, 10) + ":" + string(u.Raw)
	opts := deploy.RenderOptions{UnitPrefix: t.opts.UnitPrefix, Restart: restart}
	if u.Spec.Rolling() {
		opts.Machines = machines
		key += "\x00" + machinesKey(machines)
	}
	if u.Spec.Spread != nil {
		opts.Zones = spreadZones(&u.Spec, u.Spec.Hash(restart), machines, actual)
		key += "\x00zones=" + strings.Join(opts.Zones, ",")
	}
	if d := cache[u.Name]; d != nil && d.key == key {
		return d, nil
	}
	units, err := deploy.Render(&u.Spec, opts)
	if err != nil {
		return nil, err
	}
	d := &desiredUnits{key: key, hash: u.Spec.Hash(restart), units: units, hashes: make(map[string]string, len(units))}
	for _, du := range units {
		d.hashes[du.Name] = unitHash(du.Options)
	}
	cache[u.Name] = d
	return d, nil
}

// spreadZones assigns each replica of a spread unit a value of its key
// among the live machines that match it, keeping each replica of the
// current spec in the zone it has while the skew allows (see
// deploy.AssignZones): a zone that loses its last machine has its
// replicas re-rendered into the others (fleet's drift repair then
// replaces them), and one that comes back is given its share again.
func spreadZones(s *deploy.Spec, hash string, machines []deploy.Machine, actual unitSet) []string {
	n := s.Instances()
	prev := make([]string, n)
	for _, a := range actual {
		if a.unit == nil || a.id.SpecHash != hash || a.id.Index >= n {
			continue
		}
		var md []string
		for _, o := range a.unit.Options {
			if o.Section == "X-Fleet" && o.Name == "MachineMetadata" {
				md = append(md, o.Value)
			}
		}
		prev[a.id.Index] = deploy.ZoneOf(s, md)
	}
	return deploy.AssignZones(n, deploy.Zones(s, machines), prev, s.Spread.Skew())
}

// apply makes the fleet calls of a pass with a bounded pool, each within
// a window of confirmed leadership (see guard). When leadership cannot be
// confirmed it makes no further call and returns why.
func (t *term) apply(ctx context.Context, ops []op, why map[string]string) error {
	if len(ops) == 0 {
		return nil
	}
	g := &guard{confirm: func(ctx context.Context) (time.Duration, error) { return t.store.Confirm(ctx, t.fence) },
		confirmed: t.opts.Confirmed}
	work := make(chan op)
	var wg sync.WaitGroup
	for range min(t.opts.Workers, len(ops)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				if g.allow(ctx) != nil {
					continue
				}
				err := t.call(o)
				if t.opts.Observer != nil {
					t.opts.Observer.FleetCall(o.kind.String(), err)
				}
				if err != nil {
					t.log.Warn("fleet call failed; will retry", "unit", o.owner, "op", o.kind.String(), "fleetUnit", o.name, "err", err)
					continue
				}
				t.log.Info("fleet", "unit", o.owner, "op", o.kind.String(), "fleetUnit", o.name)
				t.events.addCall(o, why[o.owner])
			}
		}()
	}
	for _, o := range ops {
		select {
		case work <- o:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	if g.err != nil && ctx.Err() == nil {
		t.log.Warn("fleet calls not made: leadership could not be confirmed", "err", g.err)
	}
	return g.err
}

func (t *term) call(o op) error {
	switch o.kind {
	case opCreate:
		return t.api.CreateUnit(o.unit)
	case opLaunch:
		return t.api.SetUnitTargetState(o.name, targetLaunched)
	case opStop:
		return t.api.SetUnitTargetState(o.name, targetLoaded)
	case opDestroy:
		return t.api.DestroyUnit(o.name)
	}
	return fmt.Errorf("unknown op %d", o.kind)
}

// writeStatuses writes the statuses that changed (fenced). A refused
// write means leadership is lost: ErrNotLeader ends the term.
func (t *term) writeStatuses(ctx context.Context, statuses []namedStatus) error {
	for _, ns := range statuses {
		prev := t.statuses[ns.name]
		switch {
		case ns.status == nil && prev != nil:
			if err := t.store.DeleteStatus(ctx, ns.name, t.fence); err != nil {
				return err
			}
			delete(t.statuses, ns.name)
		case ns.status != nil && !sameStatus(prev, ns.status):
			if err := t.store.PutStatus(ctx, ns.status, t.fence); err != nil {
				return err
			}
			if prev == nil || prev.Phase != ns.status.Phase || prev.Message != ns.status.Message {
				t.log.Info("status", "unit", ns.name, "phase", ns.status.Phase, "running", ns.status.Running, "desired", ns.status.Desired, "message", ns.status.Message)
			}
			t.statuses[ns.name] = ns.status
		}
	}
	return nil
}

// sameStatus compares all but the time stamp.
func sameStatus(a, b *store.Status) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.Time, y.Time = time.Time{}, time.Time{}
	return reflect.DeepEqual(x, y)
}
