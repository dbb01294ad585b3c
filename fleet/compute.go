package fleet

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/fleet/machine"
	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// passPlanner computes a pass's plan from its snapshot. It makes no store
// or fleet call; what it keeps from pass to pass is its memory of what
// fleet showed (readiness, restarts, target states sent: see memory) and
// caches of renderings.
type passPlanner struct {
	opts     Options
	mem      *memory
	rendered map[string]*desiredUnits
	// previous: renderings of the spec each unit last rolled out, while
	// another one is desired (see renderPrevious).
	previous map[string]*desiredUnits
	// previousWarned: unit → the spec hash whose previous rendering
	// failed, warned of once.
	previousWarned map[string]string
	// adopting: the stored units whose monder/kaylee fleet units the
	// last pass saw (see adoption); leftAlone: the names not stored whose
	// monder/kaylee fleet units were reported, each once.
	adopting  map[string]bool
	leftAlone map[string]bool
	now       time.Time // the pass's time
	// hashes: the unit file hashes of the fleet units read (unithash.go).
	hashes *unitHashes
}

func newPassPlanner(opts Options) *passPlanner {
	return &passPlanner{opts: opts, mem: newMemory(), rendered: map[string]*desiredUnits{},
		previous: map[string]*desiredUnits{}, previousWarned: map[string]string{},
		adopting: map[string]bool{}, leftAlone: map[string]bool{}, hashes: newUnitHashes()}
}

// planResult is everything a pass does, decided before it does any of it.
type planResult struct {
	ops      []op          // fleet calls
	statuses []namedStatus // every unit's status, nil to delete, by name
	// instances: the instance registry's writes (see serving).
	instances instanceDiff
	// history: the history entries to write or drop (see historyChanges).
	history []unitHistory
	// wakeAt: look again then, even if nothing changes (a replica becomes
	// ready); zero for no such time.
	wakeAt time.Time
	// fingerprint of the fleet unit states planned from (see statesChanged).
	fingerprint string
	// inputs: what each unit was planned from.
	inputs map[string]*unitInput
	// droppedMachines: machine data no unit file can hold, left out of
	// placement; warnings: anything else worth a warning.
	droppedMachines []string
	warnings        []planWarning
	// events: what the pass decided that its fleet calls do not tell
	// (a member that moves).
	events []store.Event
	// drainStarted: the serving fleet units whose drain (their stop held,
	// see drain.go) begins with this pass's registry write.
	drainStarted []string
	// evidence: the failed rollouts whose evidence attachEvidence reads.
	evidence []evidenceWant
}

type namedStatus struct {
	name   string
	status *store.Status // nil: delete
}

// instanceDiff is a change of the instance registry.
type instanceDiff struct {
	puts    []*store.Instance
	deletes []string
}

// unitHistory is a change of one unit's history: drop all of it (its
// status went), or write changes.
type unitHistory struct {
	name    string
	drop    bool
	changes []historyChange
}

// planWarning is a warning the plan asks apply to log.
type planWarning struct {
	msg  string
	args []any
}

// settled: a phase the scheduler has nothing to do in until something
// changes.
func settled(phase string) bool {
	switch phase {
	case store.PhaseRunning, store.PhaseFailed, store.PhaseSuspended, store.PhaseLeftAlone:
		return true
	}
	return false
}

// busy: some unit is still on its way: look again at the next poll.
func (p *planResult) busy() bool {
	if len(p.ops) > 0 {
		return true
	}
	for _, st := range p.statuses {
		if st.status == nil || !settled(st.status.Phase) {
			return true
		}
	}
	return false
}

// why gives each unit's status message: the reason told with its fleet
// calls.
func (p *planResult) why() map[string]string {
	why := make(map[string]string, len(p.statuses))
	for _, st := range p.statuses {
		if st.status != nil {
			why[st.name] = st.status.Message
		}
	}
	return why
}

// phases counts units by phase.
func (p *planResult) phases() map[string]int {
	phases := map[string]int{}
	for _, st := range p.statuses {
		if st.status != nil {
			phases[st.status.Phase]++
		}
	}
	return phases
}

// plan turns a snapshot into the pass's plan. It makes no call.
func (pp *passPlanner) plan(snap *snapshot, now time.Time) *planResult {
	res := &planResult{fingerprint: fingerprint(pp.opts.UnitPrefix, snap.states)}
	p := &planner{opts: pp.opts, mem: pp.mem, now: now, machines: make(map[string]string, len(snap.machines))}
	var fleetMachines []deploy.Machine
	fleetMachines, res.droppedMachines = cleanMachines(snap.machines, p.machines)
	stored := make(map[string]bool, len(snap.units))
	for _, u := range snap.units {
		stored[u.Name] = true
	}
	states, heldUntil := holdStates(pp.opts.UnitPrefix, snap.fleetUnits, snap.states, snap.removed, p.machines, pp.mem, now)
	if !heldUntil.IsZero() {
		p.wakeAt(heldUntil) // a held state stops standing: look again
	}
	actual := observeWith(pp.opts.UnitPrefix, snap.fleetUnits, states, p.machines, stored, pp.hashes.of)
	probes := observeProbes(pp.opts.UnitPrefix, snap.fleetUnits, states, p.machines, pp.hashes.of)
	pp.hashes.sweep()
	p.conflicts = newConflictView(pp.opts.UnitPrefix, snap.fleetUnits, states, p.machines)
	pp.now = now
	pp.mem.seeMachines(fleetMachines, p.machines, actual, now)
	res.inputs = pp.unitInputs(snap, fleetMachines, actual, &res.warnings)
	for name, ps := range probes {
		in := res.inputs[name]
		if in == nil {
			in = &unitInput{name: name, prev: snap.statuses[name]}
			res.inputs[name] = in
		}
		in.probes = ps
	}
	for id, ip := range p.machines {
		pp.mem.ips[id] = ip
	}
	res.ops, res.statuses = planUnits(p, res.inputs)
	res.wakeAt, res.events, res.evidence = p.next, p.events, p.evidence
	left, held := leftAlone(pp.opts.UnitPrefix, snap)
	pp.adoption(left, held, actual, res)
	res.statuses = p.originalStatuses(snap, left, held, res.statuses)
	present := make(map[string]bool)
	for _, as := range actual {
		for _, a := range as {
			present[a.name()] = true
		}
	}
	for _, ps := range probes {
		for _, a := range ps {
			present[a.name()] = true
		}
	}
	pp.mem.forget(present, now, 2*pp.opts.RetryFailed)
	pp.mem.forgetDrains(p.drain)
	res.instances = planInstances(snap, res.inputs, res.ops, p.heldNames(), now)
	if p.drain != nil {
		res.drainStarted = p.drain.started
	}
	res.history = planHistory(now, pp.opts.HistoryLimit, snap.history, res.inputs, res.statuses, snap.sources)
	return res
}

// cleanMachines holds what fleet reports of its machines to the rules of
// what git gives (IDs and metadata are rendered into unit files), and
// fills ips (machine ID → public IP). It returns the machines to place on
// and what it left out.
func cleanMachines(machines []machine.MachineState, ips map[string]string) ([]deploy.Machine, []string) {
	out := make([]deploy.Machine, 0, len(machines))
	var dropped []string
	for _, m := range machines {
		ips[m.ID] = m.PublicIP
		clean, d, ok := deploy.CleanMachine(deploy.Machine{ID: m.ID, Metadata: m.Metadata})
		for _, x := range d {
			dropped = append(dropped, fmt.Sprintf("machine %.12q: %s", m.ID, x))
		}
		if ok {
			out = append(out, clean)
		}
	}
	return out, dropped
}

// unitInputs gathers, by Kaylee unit, what a pass knows of it: every unit
// in the store, in fleet or with a status. It renders the desired specs
// (and the previous ones) and forgets the renderings of units gone.
func (pp *passPlanner) unitInputs(snap *snapshot, machines []deploy.Machine, actual map[string][]*actualUnit, warnings *[]planWarning) map[string]*unitInput {
	inputs := make(map[string]*unitInput, len(snap.units)+len(actual))
	get := func(name string) *unitInput {
		in := inputs[name]
		if in == nil {
			in = &unitInput{name: name, prev: snap.statuses[name]}
			inputs[name] = in
		}
		return in
	}
	for _, u := range snap.units {
		in := get(u.Name)
		in.specErr, in.raw, in.restart, in.warnings = u.Err, u.Raw, snap.restarts[u.Name], u.Warnings
		if u.Err == nil {
			engine := pp.engineOf(u, snap)
			in.spec, in.engine = u.Spec.WithDefaultEngine(engine), givenEngine(&u.Spec, engine)
			in.desired, in.specErr = pp.render(u, engine, in.restart, machines, actual[u.Name])
			if in.specErr != nil && in.engine != "" {
				in.specErr = fmt.Errorf("%w (it names no engine: the scheduler runs it with its default engine, %s; name an engine in its file, or change what %s refuses)", in.specErr, in.engine, in.engine)
			}
		}
	}
	for name, as := range actual {
		get(name).actual = as
	}
	for name := range snap.statuses {
		get(name)
	}
	for name, s := range snap.suspended {
		if in := inputs[name]; in != nil {
			in.suspended = s
		}
	}
	for _, in := range inputs {
		if in.desired != nil {
			in.previous = pp.renderPrevious(in, snap.history[in.name], machines, warnings)
		}
	}
	pp.forgetRenderings(inputs)
	return inputs
}

// forgetRenderings drops the cached renderings of units no longer there.
func (pp *passPlanner) forgetRenderings(inputs map[string]*unitInput) {
	for name := range pp.rendered {
		if inputs[name] == nil || inputs[name].spec == nil {
			delete(pp.rendered, name)
		}
	}
	for name := range pp.previous {
		if inputs[name] == nil || inputs[name].previous == nil {
			delete(pp.previous, name)
		}
	}
	for name := range pp.previousWarned {
		if inputs[name] == nil {
			delete(pp.previousWarned, name)
		}
	}
	for name := range pp.mem.moves {
		if inputs[name] == nil || inputs[name].spec == nil {
			delete(pp.mem.moves, name)
		}
	}
}

// planUnits plans every unit, in name order, each rollout held while its
// dependencies are not done (dependencyGates).
func planUnits(p *planner, inputs map[string]*unitInput) ([]op, []namedStatus) {
	dependencyGates(inputs)
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
	return ops, statuses
}

// planInstances is the registry's change: what the pass leaves serving
// (held: the fleet units whose stop it holds) against what the term
// wrote last.
func planInstances(snap *snapshot, inputs map[string]*unitInput, ops []op, held map[string]bool, now time.Time) instanceDiff {
	byID := make(map[string]machine.MachineState, len(snap.machines))
	for _, m := range snap.machines {
		byID[m.ID] = m
	}
	puts, deletes := snap.registry.diff(serving(inputs, ops, held, byID, snap.registry.since, now))
	return instanceDiff{puts: puts, deletes: deletes}
}

// planHistory is the history's change: the entries of each unit whose
// status opens or closes one (see historyChanges), and the histories of
// units whose status goes or is left-alone (no spec of the name stored).
func planHistory(now time.Time, limit int, hist map[string][]*store.HistoryEntry, inputs map[string]*unitInput, statuses []namedStatus, src historySources) []unitHistory {
	var out []unitHistory
	for _, ns := range statuses {
		if ns.status == nil || ns.status.Phase == store.PhaseLeftAlone {
			// Nothing of the name is stored (a left-alone name has only
			// monder/kaylee's units): its history goes.
			if _, ok := hist[ns.name]; ok {
				out = append(out, unitHistory{name: ns.name, drop: true})
			}
			continue
		}
		if cs := historyChanges(now, limit, hist, inputs[ns.name], ns.status, src); len(cs) > 0 {
			out = append(out, unitHistory{name: ns.name, changes: cs})
		}
	}
	return out
}

// writesHistory: the plan writes a history entry (which takes the
// history's sources).
func (p *planResult) writesHistory() bool {
	for _, h := range p.history {
		if len(h.changes) > 0 {
			return true
		}
	}
	return false
}

// observe groups fleet's units and states by Kaylee unit, ignoring every
// unit without the prefix. The fleet units monder/kaylee created for a
// stored unit are that unit's too (its previous version, see original.go);
// those of names not stored are ignored: never touched. States fleet still holds for a machine that is
// gone (they live until their TTL), and, for a unit scheduled to one
// machine, states from another (where fleet moved it from), are left out:
// they are not replicas.
func observe(prefix string, fleetUnits []*schema.Unit, states []*schema.UnitState, machines map[string]string, stored map[string]bool) map[string][]*actualUnit {
	return observeWith(prefix, fleetUnits, states, machines, stored, unitHash)
}

// observeWith is observe, with the unit file hash of a fleet unit's
// options given by hashOf (unitHash, or a pass planner's cache of it).
func observeWith(prefix string, fleetUnits []*schema.Unit, states []*schema.UnitState, machines map[string]string, stored map[string]bool,
	hashOf func([]*schema.UnitOption) string) map[string][]*actualUnit {
	byName := map[string]*actualUnit{}
	out := map[string][]*actualUnit{}
	get := func(name string) *actualUnit {
		if a, ok := byName[name]; ok {
			return a
		}
		id, ok := deploy.ParseUnitName(prefix, name)
		orig := false
		if !ok {
			o, isOrig := deploy.ParseOriginalUnitName(prefix, name)
			if !isOrig || !stored[o.Name] {
				return nil
			}
			id, orig = deploy.UnitName(o), true
		}
		a := &actualUnit{id: id, original: orig}
		a.fleetName = a.id.String()
		byName[name] = a
		out[id.Name] = append(out[id.Name], a)
		return a
	}
	for _, u := range fleetUnits {
		if a := get(u.Name); a != nil {
			a.unit = u
			a.hash = hashOf(u.Options)
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

// observeProbes groups the fleet units of primary probes (see
// deploy.ProbeName) and their states by Kaylee unit, as observe does
// members.
func observeProbes(prefix string, fleetUnits []*schema.Unit, states []*schema.UnitState, machines map[string]string,
	hashOf func([]*schema.UnitOption) string) map[string]unitSet {
	byName := map[string]*actualUnit{}
	out := map[string]unitSet{}
	get := func(name string) *actualUnit {
		if a, ok := byName[name]; ok {
			return a
		}
		id, ok := deploy.ParseProbeName(prefix, name)
		if !ok {
			return nil
		}
		a := &actualUnit{probe: &id}
		a.fleetName = id.String()
		byName[name] = a
		out[id.Name] = append(out[id.Name], a)
		return a
	}
	for _, u := range fleetUnits {
		if a := get(u.Name); a != nil {
			a.unit, a.hash = u, hashOf(u.Options)
		}
	}
	for _, s := range states {
		if _, live := machines[s.MachineID]; !live {
			continue
		}
		if a := get(s.Name); a != nil {
			a.states = append(a.states, s)
		}
	}
	for _, as := range out {
		sort.Slice(as, func(i, j int) bool { return as[i].name() < as[j].name() })
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

// engineOf is the engine a stored unit runs with if it names none: the
// one a rollback pin restored while the stored spec is still the one it
// restored (a rollback brings back the engine its revision ran with,
// until kaylee resume or a new spec), else the cluster's default.
func (pp *passPlanner) engineOf(u *store.Unit, snap *snapshot) string {
	if pin := snap.pins[u.Name]; pin != nil && pin.Engine != "" && restores(snap.history[u.Name], pin, u.Raw) {
		return pin.Engine
	}
	return pp.opts.DefaultEngine
}

// givenEngine is the engine a history entry records for a spec run with
// engine (see store.HistoryEntry.Engine): "" when the spec names its own
// or it runs with rkt.
func givenEngine(s *deploy.Spec, engine string) string {
	if s.Engine != "" || engine == deploy.EngineRkt {
		return ""
	}
	return engine
}

// renderPrevious renders the spec a unit last rolled out (its status's
// Deployed hash), read back from its history, while another spec is
// desired: if that rollout fails, the planner brings the previous version
// back to full strength with it (restorePrevious). It is nil when the
// unit never rolled out, is rolling global or stateful (a failed rollout
// launches its parked units again), or the history no longer has that
// spec.
func (pp *passPlanner) renderPrevious(in *unitInput, entries []*store.HistoryEntry, machines []deploy.Machine, warnings *[]planWarning) *desiredUnits {
	if in.prev == nil || in.prev.Deployed == "" || in.prev.Deployed == in.desired.hash || in.spec.Rolling() || in.spec.Stateful {
		return nil
	}
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.SpecHash != in.prev.Deployed {
			continue
		}
		d, err := pp.renderEntry(in, e, machines)
		if err != nil {
			if pp.previousWarned[in.name] == e.SpecHash {
				return nil
			}
			pp.previousWarned[in.name] = e.SpecHash
			*warnings = append(*warnings, planWarning{"the previous version of a unit cannot be rendered again from its history: a failed rollout will not bring it back to full strength",
				[]any{"unit", in.name, "specHash", e.SpecHash, "revision", e.Revision, "err", err}})
			return nil
		}
		return d
	}
	return nil
}

// renderEntry renders the spec of a history entry, cached in pp.previous.
func (pp *passPlanner) renderEntry(in *unitInput, e *store.HistoryEntry, machines []deploy.Machine) (*desiredUnits, error) {
	doc, err := deploy.DecodeJSON(fmt.Sprintf("history of %s, revision %d", in.name, e.Revision), e.Spec)
	if err != nil {
		return nil, fmt.Errorf("decoding revision %d: %w", e.Revision, err)
	}
	u := &store.Unit{Name: in.name, Raw: e.Spec, Spec: doc.Spec}
	// e.Engine: the engine it ran with if not rkt or its own, whatever
	// the default is now.
	d, err := pp.renderInto(pp.previous, u, e.Engine, e.Restart, machines, in.actual)
	if err != nil {
		return nil, fmt.Errorf("rendering revision %d: %w", e.Revision, err)
	}
	if d.hash != e.SpecHash {
		// Another Kaylee hashed it: its fleet units have other names.
		delete(pp.previous, in.name)
		return nil, fmt.Errorf("revision %d hashes to %s now, not %s", e.Revision, d.hash, e.SpecHash)
	}
	return d, nil
}

// render renders a stored unit with engine if it names none (see
// deploy.Spec.WithDefaultEngine), cached by its value, effective engine
// and restart counter (and, for a rolling global unit, the machines it is
// rendered for).
func (pp *passPlanner) render(u *store.Unit, engine string, restart int64, machines []deploy.Machine, actual unitSet) (*desiredUnits, error) {
	return pp.renderInto(pp.rendered, u, engine, restart, machines, actual)
}

// renderInto is render with its cache, one rendering per unit name.
func (pp *passPlanner) renderInto(cache map[string]*desiredUnits, u *store.Unit, engine string, restart int64, machines []deploy.Machine, actual unitSet) (*desiredUnits, error) {
	spec := u.Spec.WithDefaultEngine(engine)
	key := strconv.FormatInt(restart, 10) + ":" + spec.EngineName() + ":" + string(u.Raw)
	opts := deploy.RenderOptions{UnitPrefix: pp.opts.UnitPrefix, Restart: restart}
	if spec.Rolling() {
		opts.Machines = machines
		key += "\x00" + machinesKey(machines)
	}
	var pl memberPlacement
	switch {
	case spec.Stateful:
		// The placement is all that varies a member's rendering: the key
		// holds it, not the machines (a machine that joins or leaves
		// moves no placed member).
		pl = placeMembers(spec, spec.Hash(restart), machines, actual, pp.lossOf(u.Name, spec))
		opts.Members, opts.Zones = pl.members, pl.zones
		key += pl.key()
	case spec.Spread != nil:
		opts.Zones = spreadZones(spec, spec.Hash(restart), machines, actual)
		key += "\x00zones=" + strings.Join(opts.Zones, ",")
	}
	if d := cache[u.Name]; d != nil && d.key == key {
		return d, nil
	}
	units, err := deploy.Render(spec, opts)
	if err != nil {
		return nil, err
	}
	d := &desiredUnits{key: key, hash: spec.Hash(restart), units: units, hashes: make(map[string]string, len(units)),
		earlier: make(map[string]string, len(units)), members: opts.Members, zones: pl.zones, stuck: pl.stuck}
	for _, du := range units {
		d.hashes[du.Name] = unitHash(du.Options)
		d.earlier[du.Name] = unitHash(deploy.WithoutEvidence(du.Options))
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

// lossOf is what placement knows of lost machines for unit name with
// spec s: for onMachineLoss move, the machines gone for
// MachineLossGrace (the memory's goneSince) and the members' moves.
func (pp *passPlanner) lossOf(name string, s *deploy.Spec) memberLoss {
	if !s.Stateful || s.MachineLoss() != deploy.MachineLossMove {
		return memberLoss{}
	}
	loss := memberLoss{leave: map[string]map[string]string{}, to: map[int]string{}}
	for id, since := range pp.mem.goneSince {
		if pp.now.Sub(since) >= pp.opts.MachineLossGrace {
			loss.leave[id] = pp.mem.meta[id]
		}
	}
	for i, mv := range pp.mem.moves[name] {
		loss.to[i] = mv.to
	}
	return loss
}
