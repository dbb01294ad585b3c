package fleet

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// maxReplicasPerHost while a replicated unit adopts monder/kaylee's fleet
// units (see plan_adopt.go). Kaylee's rendering holds it across Kaylee's
// own specs (a replica conflicts with its group's members of every spec,
// see plan_inplace.go), but nothing keeps the original's replicas and the
// new ones apart, and fleet's engine puts a unit on the least loaded
// machine it may run on, which may be one that runs the limit of old
// replicas already. So while the original's replicas are up:
//
//   - a new replica is created launched only when every machine fleet may
//     put it on (its MachineMetadata matches, no unit there conflicts with
//     it) has room under the limit, counting old and new replicas up or
//     starting; one created in the pass counts on each of those machines
//     until fleet has placed it. Among the replicas still to create, those
//     go first.
//   - any other is created loaded (target loaded: fleet schedules it, its
//     agent loads it, systemd does not start it), once no old fleet unit
//     is on its way out (so that fleet sees the room it leaves), and
//     launched once the machine fleet put it on has room. When it has
//     none, and nothing is on its way up or down, the highest old replica
//     there stops first: serving dips by one, as fleet left no other way
//     (the limit wins).
//
// A current replica stopped by hand is launched again under the same rule.
// Stateful and rolling global units are replaced slot by slot, stop then
// start, on their own machines: the rule is not theirs.
//
// An old fleet unit whose own Conflicts match every new replica (a unit
// rendered without replicas, by Kaylee or by monder/kaylee, conflicts
// with <prefix>:<name>:*.service) keeps them off its machine while it is
// there: it serves until as many new replicas as fit on the other
// machines are ready (no more are created meanwhile, or they would wait
// unscheduled), then it stops and the rest take its machine. When none
// fit elsewhere it stops first.

// perHostRule: the rule applies to this rollout (a replicated unit with
// maxReplicasPerHost whose old fleet units include the original's).
func (r *rollout) perHostRule() bool {
	return r.replicated && r.u.spec.MaxReplicasPerHost > 0 &&
		r.stale.count(func(a *actualUnit) bool { return a.original }) > 0
}

// hostRoom is what the per-host rule knows in a pass: the replicas up or
// starting on each machine, old and new.
type hostRoom struct {
	count map[string]int
	// unknown: a replica up or starting has no machine yet (fleet places
	// it any moment): nothing is created until it is known.
	unknown bool
}

// perHost is the pass's hostRoom, nil when the rule does not apply: the
// unit is not replicated, has no maxReplicasPerHost, or has no old
// replica up.
func (r *rollout) perHost() *hostRoom {
	if r.roomDone {
		return r.room
	}
	r.roomDone = true
	if !r.perHostRule() {
		return nil
	}
	kept := make(map[*actualUnit]bool, len(r.kept))
	for _, a := range r.kept {
		kept[a] = true
	}
	stale := make(map[*actualUnit]bool, len(r.stale))
	for _, a := range r.stale {
		stale[a] = true
	}
	old := false
	room := &hostRoom{count: map[string]int{}}
	for _, a := range r.u.actual {
		isOld := stale[a]
		up := a.active() || a.unit != nil && a.target() == targetLaunched && (!isOld || kept[a])
		if !up {
			continue
		}
		old = old || isOld
		ms := r.unitMachines(a)
		if len(ms) == 0 {
			room.unknown = true
		}
		for _, m := range ms {
			room.count[m]++
		}
	}
	if old {
		r.room = room
	}
	return r.room
}

// landing is the machines fleet may put new fleet unit du on: live, its
// MachineMetadata matches, and no fleet unit there conflicts with it
// (a new replica of its group, an old unit without replicas, the unit's
// conflicts).
//
// The answer is the same for the replicas of one group with the same
// MachineMetadata (they differ only in their index): it is computed once
// per pass for each.
func (r *rollout) landing(du *schema.Unit) []string {
	return r.landingOf(du, false)
}

// landingOf is landing; besidesNew: as if none of the new replicas were
// in fleet (where the group may run at all, see fitBesides).
func (r *rollout) landingOf(du *schema.Unit, besidesNew bool) []string {
	want := metadataOf(du)
	id, _ := deploy.ParseUnitName(r.opts.UnitPrefix, du.Name)
	key := fmt.Sprintf("%s\x00%v\x00%s", id.Group, besidesNew, strings.Join(want.Machine, "\x00"))
	if out, ok := r.landings[key]; ok {
		return out
	}
	self := &placedUnit{name: du.Name, conflicts: conflictsOf(du.Options)}
	var out []string
	for _, m := range r.conflicts.live {
		if !want.Matches(deploy.Machine{ID: m, Metadata: r.mem.meta[m]}) {
			continue
		}
		ok := true
		for _, o := range r.conflicts.on[m] {
			if _, isNew := r.d.hashes[o.name]; o.name == du.Name || besidesNew && isNew {
				continue
			}
			if conflict(self, o) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, m)
		}
	}
	if r.landings == nil {
		r.landings = map[string][]string{}
	}
	r.landings[key] = out
	return out
}

// hostGate says whether new fleet unit du may be created launched now:
// the rule does not apply, or fleet may put it on some machine and every
// one of them has room (landing is returned for counting du once
// created). With no machine to land on, du would wait unscheduled: it
// is held, as one that may land on a full machine.
func (r *rollout) hostGate(du *schema.Unit) (ok bool, landing []string) {
	room := r.perHost()
	if room == nil {
		return true, nil
	}
	if room.unknown {
		return false, nil
	}
	landing = r.landing(du)
	if len(landing) == 0 {
		return false, nil
	}
	for _, m := range landing {
		if room.count[m] >= r.u.spec.MaxReplicasPerHost {
			return false, nil
		}
	}
	return true, landing
}

// launchStaged launches the new replicas that are loaded (created so by
// place, or stopped by hand) on a machine with room, and lists in
// r.waiting those on a machine without. One fleet has not placed yet, or
// placed on a machine that has left fleet (fleet places it again), waits
// for it, and all wait while a launched replica is not placed.
func (r *rollout) launchStaged() {
	room := r.perHost()
	if room != nil && room.unknown {
		return // a replica fleet places any moment may land on any machine
	}
	for _, a := range r.current {
		if a.unit == nil || a.target() == targetLaunched || r.mem.replacing[a.name()] {
			continue
		}
		ms := r.unitMachines(a)
		if len(ms) == 0 {
			continue
		}
		if room != nil && room.count[ms[0]] >= r.u.spec.MaxReplicasPerHost {
			r.waiting = append(r.waiting, a)
			continue
		}
		delete(r.mem.stopping, a.name())
		r.ops = append(r.ops, op{kind: opLaunch, owner: r.u.name, name: a.name(), staged: true})
		r.starting++
		if room != nil {
			room.count[ms[0]]++
		}
	}
}

// leaving: an old fleet unit is on its way out (stopped in this pass, or
// not serving and still in fleet). Its machine is about to have room; a
// replica created loaded now would be placed by fleet while the unit
// still counts there, on a machine that may be full, where an old
// replica would then have to stop first. Waiting until it is gone lets
// fleet's least-loaded engine see the room.
func (r *rollout) leaving() bool {
	if r.removing {
		return true
	}
	kept := make(map[*actualUnit]bool, len(r.kept))
	for _, a := range r.kept {
		kept[a] = true
	}
	return r.stale.count(func(a *actualUnit) bool { return a.unit != nil && !kept[a] }) > 0
}

// landed counts a replica created in this pass on every machine it may
// land on.
func (r *rollout) landed(landing []string) {
	if r.room == nil {
		return
	}
	for _, m := range landing {
		r.room.count[m]++
	}
}

// conflictsOf is the Conflicts values of a unit file.
func conflictsOf(options []*schema.UnitOption) []string {
	var out []string
	for _, o := range options {
		if o.Section == "X-Fleet" && (o.Name == "Conflicts" || o.Name == "X-Conflicts") {
			out = append(out, strings.Fields(o.Value)...)
		}
	}
	return out
}

// unitMachines are the live machines a fleet unit is on: where it has a
// state, and where the engine scheduled it. A machine that has left fleet
// counts for nothing: its units' states are gone with it, and fleet
// places its units again.
func (r *rollout) unitMachines(a *actualUnit) []string {
	var ms []string
	seen := map[string]bool{}
	for _, s := range a.states {
		if _, live := r.machines[s.MachineID]; live && !seen[s.MachineID] {
			seen[s.MachineID] = true
			ms = append(ms, s.MachineID)
		}
	}
	if a.unit == nil || seen[a.unit.MachineID] {
		return ms
	}
	if _, live := r.machines[a.unit.MachineID]; live {
		ms = append(ms, a.unit.MachineID)
	}
	return ms
}

// makeRoom stops the highest old replica that serves on the machine of
// the first new replica waiting for room, unless a replica is on its way
// up or down (its effect on the machines is not known yet).
func (r *rollout) makeRoom() {
	if len(r.waiting) == 0 {
		return
	}
	w := r.waiting[0]
	m := r.unitMachines(w)[0]
	at := fmt.Sprintf("%s is loaded on %s, at maxReplicasPerHost (%d) counting old and new replicas", w.name(), r.machine(m), r.u.spec.MaxReplicasPerHost)
	settling := r.current.count(func(a *actualUnit) bool { return a.target() == targetLaunched && !r.planner.ready(a, r.pol.minReady) })
	stopping := r.stale.count(func(a *actualUnit) bool { return a.target() != targetLaunched && a.active() })
	if r.removing || r.inFlight || r.starting > 0 || settling > 0 || stopping > 0 {
		r.notes = append(r.notes, at+": it starts once an old replica there has stopped, after the replicas on their way up or down")
		return
	}
	var pick *actualUnit
	for _, a := range r.kept {
		for _, on := range r.unitMachines(a) {
			if on == m && (pick == nil || a.id.Index > pick.id.Index) {
				pick = a
			}
		}
	}
	if pick == nil {
		r.notes = append(r.notes, at+": it starts once that machine has room")
		return
	}
	r.ops = append(r.ops, r.destroy(r.u.name, pick)...)
	r.removing = true
	r.staleUp--
	r.notes = append(r.notes, fmt.Sprintf("%s: %s stops before it starts", at, pick.name()))
}

// machineList names machines for a status message, with their verb.
func (r *rollout) machineList(ids []string) string {
	if len(ids) == 1 {
		return r.machineNames(ids) + " is"
	}
	return r.machineNames(ids) + " are"
}

// machineNames names machines for a status message.
func (r *rollout) machineNames(ids []string) string {
	out := ""
	for i, id := range ids {
		if i > 0 {
			out += ", "
		}
		out += r.machine(id)
	}
	return out
}

// blocks: old fleet unit a's Conflicts match a new replica's name, so
// fleet keeps the new replicas off a's machine while a is there. An old
// replica's group conflict (it matches the new members of its group) is
// not that: it holds maxReplicasPerHost across versions, and
// replaceInPlace handles it.
func (r *rollout) blocks(a *actualUnit) bool {
	if a.unit == nil {
		return false
	}
	group := ""
	if id, ok := deploy.ParseUnitName(r.opts.UnitPrefix, a.name()); ok {
		group = deploy.GroupConflict(r.opts.UnitPrefix, r.u.name, id.Group)
	}
	for _, c := range conflictsOf(a.unit.Options) {
		if c == group {
			continue
		}
		for _, du := range r.d.units {
			if ok, _ := path.Match(c, du.Name); ok {
				return true
			}
		}
	}
	return false
}

// retireBlockers handles the old units that keep every new replica off
// their machine (see the top of this file): they serve until the new
// replicas that fit elsewhere are ready, then stop. While any of them is
// in fleet, r.fitElsewhere says how many new replicas place may have.
func (r *rollout) retireBlockers() {
	if !r.replicated {
		return
	}
	var blockers unitSet
	for _, a := range r.stale {
		if r.blocks(a) {
			blockers = append(blockers, a)
		}
	}
	if len(blockers) == 0 {
		return
	}
	r.fitElsewhere = r.fitBesides(blockers)
	serving := map[*actualUnit]bool{}
	for _, a := range blockers {
		serving[a] = true
	}
	kept := r.kept.filter(func(a *actualUnit) bool { return !serving[a] })
	if len(kept) == len(r.kept) {
		return // none serves: retire stops them
	}
	stopping := r.kept.filter(func(a *actualUnit) bool { return serving[a] })
	if r.ready < r.fitElsewhere {
		var on []string
		for _, a := range stopping {
			on = append(on, r.unitMachines(a)...)
		}
		sort.Strings(on)
		fit := "the " + plural(r.fitElsewhere, "new replica") + " that fit elsewhere are ready"
		if r.fitElsewhere == 1 {
			fit = "the 1 new replica that fits elsewhere is ready"
		}
		r.notes = append(r.notes, fmt.Sprintf("%s keeps every new replica off %s (its Conflicts): it stops once %s",
			listNames(stopping.names()), r.machineNames(on), fit))
		return
	}
	for _, a := range stopping {
		r.ops = append(r.ops, r.destroy(r.u.name, a)...)
		r.removing = true
		r.staleUp--
	}
	r.kept = kept
	what := plural(r.ready, "new replica") + " ready"
	if r.fitElsewhere == 0 {
		what = "no new replica fits elsewhere"
	}
	r.notes = append(r.notes, fmt.Sprintf("%s stops (%s): its Conflicts keep every new replica off its machine", listNames(stopping.names()), what))
}

// fitBesides is how many new replicas fleet can run at once on the
// machines that hold none of the blockers and where fleet may put them
// (MachineMetadata, no other unit there conflicts with them): at most one
// of each maxReplicasPerHost group on a machine, any number without it,
// never more than the desired count.
func (r *rollout) fitBesides(blockers unitSet) int {
	held := map[string]bool{}
	for _, a := range blockers {
		for _, m := range r.unitMachines(a) {
			held[m] = true
		}
	}
	groups := map[string]int{}
	first := map[string]*schema.Unit{} // one replica stands for its group
	for _, du := range r.d.units {
		id, _ := deploy.ParseUnitName(r.opts.UnitPrefix, du.Name)
		groups[id.Group]++
		if first[id.Group] == nil {
			first[id.Group] = du
		}
	}
	fit := 0
	for g, size := range groups {
		free := 0
		for _, m := range r.landingOf(first[g], true) {
			if !held[m] {
				free++
			}
		}
		if r.u.spec.MaxReplicasPerHost <= 0 {
			free *= size
		}
		fit += min(size, free)
	}
	return min(fit, r.n)
}
