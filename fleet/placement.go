package fleet

import (
	"cmp"
	"fmt"
	"sort"
	"strings"

	"github.com/coreos/fleet/machine"
	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// Placement answers, before anything is written, where fleet could run a
// unit on the cluster as it is now (kaylee plan): the machines its fleet
// units may land on, or, when none may, the field of its file that keeps
// them off and why. It reads fleet as the scheduler does and follows
// fleet's own rules (see DESIGN.md, fleet facts): MachineMetadata values
// of one key are OR'd and keys AND'd, MachineID is exact, Conflicts match
// both ways with path.Match against every unit on a machine, a global unit
// runs on every machine that matches, and the replicas of one group of
// maxReplicasPerHost conflict with each other. A spread unit's zones and
// a stateful unit's members are placed with the scheduler's own functions
// (spreadZones, placeMembers), so the answer is the one a pass would give.

// Cluster is what placement reads of a live fleet cluster, as client.API
// lists it.
type Cluster struct {
	UnitPrefix string // Kaylee's fleet unit prefix; "" is deploy.DefaultUnitPrefix
	Machines   []machine.MachineState
	Units      []*schema.Unit
	States     []*schema.UnitState
}

// Placement is where a unit may run on a Cluster.
type Placement struct {
	Unit string
	// Machines are the IDs the unit's fleet units may run on (a stateful
	// unit's: its members' machines), sorted.
	Machines []string
	IPs      []string // public IP of each of Machines ("" unknown)
	Match    int      // live machines that match its machine constraints
	Live     int      // live machines
	// Blocked are the machines that match but run a unit it conflicts
	// with (either way).
	Blocked int
	// Notes say what is worth knowing though the unit can be placed.
	Notes []string
	// Err is why no placement exists, at the field that causes it; nil
	// when the unit can be placed.
	Err *deploy.FieldError
}

// RunsOn is "runs on: 3f2a9c1e (192.0.2.1), 5b7d0e44 (192.0.2.2) (2 of 3
// machines match)".
func (p *Placement) RunsOn() string {
	names := make([]string, len(p.Machines))
	for i, m := range p.Machines {
		names[i] = shortMachine(m, p.IPs[i])
	}
	blocked := ""
	if p.Blocked > 0 {
		blocked = fmt.Sprintf(", %d kept off by conflicts", p.Blocked)
	}
	return fmt.Sprintf("runs on: %s (%d of %d machines match%s)", strings.Join(names, ", "), p.Match, p.Live, blocked)
}

func shortMachine(id, ip string) string {
	if ip == "" {
		return fmt.Sprintf("%.8s", id)
	}
	return fmt.Sprintf("%.8s (%s)", id, ip)
}

// Place computes where the unit of document d may run on c. spec is its
// effective spec (deploy.Spec.WithDefaultEngine); nil is d's own. Pure:
// it makes no call.
func Place(d *deploy.Document, spec *deploy.Spec, c *Cluster) Placement {
	if spec == nil {
		spec = &d.Spec
	}
	pc := newPlaceContext(d, spec, c)
	p := Placement{Unit: spec.Name, Live: len(pc.machines)}
	avail, err := pc.available(&p)
	if err == nil {
		switch {
		case spec.Stateful:
			avail, err = pc.members(avail, &p)
		default:
			err = pc.capacity(avail, &p)
		}
	}
	if err != nil {
		p.Err = err
		return p
	}
	sort.Strings(avail)
	p.Machines = avail
	p.IPs = make([]string, len(avail))
	for i, m := range avail {
		p.IPs[i] = pc.ips[m]
	}
	return p
}

// placeContext is what Place works from: the unit, its fleet units as the
// scheduler renders them, and the cluster.
type placeContext struct {
	d        *deploy.Document
	s        *deploy.Spec
	prefix   string
	machines []deploy.Machine // live, cleaned as the scheduler cleans them, by ID
	ips      map[string]string
	view     *conflictView
	actual   unitSet     // the unit's own fleet units
	self     *placedUnit // its first fleet unit, for conflicts
	hash     string      // its spec hash (restart 0)
}

func newPlaceContext(d *deploy.Document, s *deploy.Spec, c *Cluster) *placeContext {
	pc := &placeContext{d: d, s: s, prefix: cmp.Or(c.UnitPrefix, deploy.DefaultUnitPrefix), ips: map[string]string{}}
	pc.machines, _ = cleanMachines(c.Machines, pc.ips)
	sort.Slice(pc.machines, func(i, j int) bool { return pc.machines[i].ID < pc.machines[j].ID })
	pc.view = newConflictView(pc.prefix, c.Units, c.States, pc.ips)
	pc.actual = observe(pc.prefix, c.Units, c.States, pc.ips, map[string]bool{s.Name: true})[s.Name]
	pc.hash = s.Hash(0)
	pc.self = &placedUnit{owner: s.Name}
	if units, err := deploy.Render(s, deploy.RenderOptions{UnitPrefix: pc.prefix, Machines: pc.machines}); err == nil && len(units) > 0 {
		pc.self.name = units[0].Name
		for _, o := range units[0].Options {
			if o.Section == "X-Fleet" && o.Name == "Conflicts" {
				pc.self.conflicts = append(pc.self.conflicts, strings.Fields(o.Value)...)
			}
		}
	} else {
		// Not renderable here (the engine refuses it: validation says
		// so): its name and conflicts as rendering would make them.
		pc.self.name = deploy.UnitName{Prefix: pc.prefix, Name: s.Name, SpecHash: pc.hash, Group: "000000"}.String()
		for _, x := range s.Conflicts {
			pc.self.conflicts = append(pc.self.conflicts, fmt.Sprintf("%s:%s:*.service", pc.prefix, x))
		}
	}
	return pc
}

// fail is the placement error at field (its line in the file).
func (pc *placeContext) fail(field, format string, args ...any) *deploy.FieldError {
	line := pc.d.Line
	if field != "" {
		line = pc.d.LineOf(field)
	}
	return &deploy.FieldError{File: pc.d.File, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// available is the live machines the unit's fleet units may land on: its
// machineId (when set), that match its machine metadata and that hold no
// fleet unit of another unit it conflicts with (either way). p.Match is
// set on the way.
func (pc *placeContext) available(p *Placement) ([]string, *deploy.FieldError) {
	s := pc.s
	if len(pc.machines) == 0 {
		return nil, pc.fail("", "fleet has no live machine: nothing can run anywhere; check that fleetd runs on the machines and reaches etcd")
	}
	var match []string
	for _, m := range pc.machines {
		if s.Matches(m) {
			match = append(match, m.ID)
		}
	}
	p.Match = len(match)
	if s.MachineID != "" {
		// Validation refuses machine with machineId.
		if _, ok := pc.machine(s.MachineID); !ok {
			return nil, pc.fail("machineId", "no live machine has ID %s (%s); give the ID of a machine fleet lists (fleetctl list-machines -full)", s.MachineID, pc.machineList())
		}
		match = []string{s.MachineID}
		p.Match = 1
	}
	if len(match) == 0 {
		return nil, pc.fail("machine", "no live machine has %s (%s); change machine, or give machines that metadata (fleetd's metadata setting)", constraint(s.Machine), pc.machineList())
	}
	var avail []string
	ours, theirs := map[string]bool{}, map[string]bool{}
	for _, m := range match {
		mine, other := pc.blockers(m)
		for _, b := range mine {
			ours[b] = true
		}
		for _, b := range other {
			theirs[b] = true
		}
		if len(mine)+len(other) == 0 {
			avail = append(avail, m)
		}
	}
	p.Blocked = len(match) - len(avail)
	if len(avail) > 0 || s.Stateful {
		// A stateful member is pinned to its machine: members() checks
		// each one's.
		if len(avail) < len(match) && s.Global {
			p.Notes = append(p.Notes, fmt.Sprintf("not on %d of the %d machines that match: a unit it conflicts with runs there", len(match)-len(avail), len(match)))
		}
		return avail, nil
	}
	where := "on every machine that matches"
	if s.MachineID != "" {
		where = "on machine " + shortMachine(s.MachineID, pc.ips[s.MachineID])
	}
	if len(ours) > 0 {
		return nil, pc.fail("conflicts", "%s runs %s, which its conflicts keep it away from; change conflicts, or make room on a machine", where, listNames(ours))
	}
	return nil, pc.fail("name", "%s runs %s, whose own Conflicts keep %s away (fleet matches Conflicts both ways); rename the unit, or change that unit's conflicts", where, listNames(theirs), pc.self.name)
}

// blockers are the fleet units of other units on machine m (loaded or
// scheduled there) that the unit conflicts with: mine, those its own
// conflicts name; other, those whose Conflicts name it.
func (pc *placeContext) blockers(m string) (mine, other []string) {
	for _, o := range pc.view.on[m] {
		if o.owner == pc.s.Name || !conflict(pc.self, o) {
			continue
		}
		if conflict(&placedUnit{name: pc.self.name, conflicts: pc.self.conflicts}, &placedUnit{name: o.name}) {
			mine = append(mine, o.name)
		} else {
			other = append(other, o.name)
		}
	}
	return mine, other
}

// capacity checks that the replicas fit the machines available: with
// maxReplicasPerHost M, the replicas of one group (every M-th) need a
// machine each, so replicas need ceil(replicas/M) machines; with spread,
// the zones each replica is given (as the scheduler gives them) must each
// hold theirs.
func (pc *placeContext) capacity(avail []string, p *Placement) *deploy.FieldError {
	s := pc.s
	per := s.MaxReplicasPerHost
	if !s.Replicated() || per <= 0 {
		pc.noteSpread(avail, p)
		return nil
	}
	n := s.Instances()
	if need := (n + per - 1) / per; need > len(avail) {
		return pc.fail("replicas", "%d replicas at most %d per machine (maxReplicasPerHost) need %d machines; %s; lower replicas, raise maxReplicasPerHost, or add machines",
			n, per, need, pc.availableSaid(avail, p))
	}
	if s.Spread == nil {
		return nil
	}
	zones := spreadZones(s, pc.hash, pc.machines, pc.actual)
	if zones[0] == "" {
		pc.noteSpread(avail, p)
		return nil
	}
	room, count := map[string]int{}, map[string]int{}
	for _, id := range avail {
		m, _ := pc.machine(id)
		room[m.Metadata[s.Spread.Key]]++
	}
	// The replicas of one group in one zone need a machine each there.
	groupIn := map[[2]string]int{}
	for i, z := range zones {
		count[z]++
		groupIn[[2]string{z, fmt.Sprint(i % per)}]++
	}
	for _, z := range sortedKeys(count) {
		worst := 0
		for k, c := range groupIn {
			if k[0] == z {
				worst = max(worst, c)
			}
		}
		if worst > room[z] {
			return pc.fail("spread", "the zones of %s cannot hold %d replicas within maxSkew %d: an even spread puts %d in %s=%s, which has room for %d (%s free to take them, maxReplicasPerHost %d) (%s); add machines to %s=%s, or lower replicas",
				s.Spread.Key, n, s.Spread.Skew(), count[z], s.Spread.Key, z, room[z]*per, plural(room[z], "machine"), per, zoneCounts(s.Spread.Key, count, room), s.Spread.Key, z)
		}
	}
	return nil
}

// noteSpread notes a spread key that no available machine has: fleet
// then places the replicas without it.
func (pc *placeContext) noteSpread(avail []string, p *Placement) {
	s := pc.s
	if s.Spread == nil {
		return
	}
	for _, id := range avail {
		if m, _ := pc.machine(id); m.Metadata[s.Spread.Key] != "" {
			return
		}
	}
	p.Notes = append(p.Notes, fmt.Sprintf("no machine that matches has %s: the replicas are placed without spread", s.Spread.Key))
}

// members places a stateful unit's members as the scheduler would (with
// no machine gone past the scheduler's machine-loss grace: kaylee plan does not know
// for how long a machine has been gone): a member pinned to a machine
// that left fleet waits for it, unless onMachineLoss is move.
func (pc *placeContext) members(avail []string, p *Placement) ([]string, *deploy.FieldError) {
	s := pc.s
	if per := s.MaxReplicasPerHost; per > 0 {
		if n := s.Members(); n > per*len(avail) {
			return nil, pc.fail("replicas", "%d members at most %d per machine (maxReplicasPerHost) need %d machines; %s; lower replicas, raise maxReplicasPerHost, or add machines",
				n, per, (n+per-1)/per, pc.availableSaid(avail, p))
		}
	}
	pl := placeMembers(s, pc.hash, pc.machines, pc.actual, memberLoss{})
	free := map[string]bool{}
	for _, m := range avail {
		free[m] = true
	}
	on := map[string]bool{}
	for i, m := range pl.members {
		switch lm, live := pc.machine(m); {
		case m == "":
			zone := ""
			if pl.zones != nil {
				zone = pl.zones[i]
			}
			field := "replicas"
			if zone != "" {
				field = "spread"
			}
			return nil, pc.fail(field, "member %d has no machine: %s", i, noMachine(s, pc.machines, zone))
		case !live && s.MachineLoss() == deploy.MachineLossMove:
			p.Notes = append(p.Notes, fmt.Sprintf("member %d's machine %.8s is gone: it moves to another machine once it has been gone for the scheduler's machine-loss grace", i, m))
		case !live:
			field := "stateful"
			if s.OnMachineLoss != "" {
				field = "onMachineLoss"
			}
			return nil, pc.fail(field, "member %d is pinned to machine %.8s, which is not in the cluster (%s): it waits for that machine, its data is there; bring the machine back, or set onMachineLoss: move to let the member start elsewhere",
				i, m, pc.machineList())
		case !s.Matches(lm):
			return nil, pc.fail("machine", "member %d is pinned to machine %s, which does not have %s (it has %s): fleet will not run it there", i, shortMachine(m, pc.ips[m]), constraint(s.Machine), metadataString(lm.Metadata))
		case !free[m]:
			mine, other := pc.blockers(m)
			field := "name"
			if len(mine) > 0 {
				field = "conflicts"
			}
			return nil, pc.fail(field, "member %d is pinned to machine %s, which runs %s: fleet keeps them apart", i, shortMachine(m, pc.ips[m]), strings.Join(append(mine, other...), ", "))
		default:
			on[m] = true
		}
	}
	return keys(on), nil
}

// machine finds a live machine by ID.
func (pc *placeContext) machine(id string) (deploy.Machine, bool) {
	i := sort.Search(len(pc.machines), func(i int) bool { return pc.machines[i].ID >= id })
	if i < len(pc.machines) && pc.machines[i].ID == id {
		return pc.machines[i], true
	}
	return deploy.Machine{}, false
}

// availableSaid is "2 machines match and are free of conflicts: 3f2a9c1e,
// 5b7d0e44".
func (pc *placeContext) availableSaid(avail []string, p *Placement) string {
	ids := make([]string, len(avail))
	for i, m := range avail {
		ids[i] = fmt.Sprintf("%.8s", m)
	}
	said := fmt.Sprintf("%d of %d live machines match", p.Match, p.Live)
	if len(avail) < p.Match {
		said += fmt.Sprintf(", %d of them free of units it conflicts with", len(avail))
	}
	if len(ids) > 0 {
		said += " (" + strings.Join(ids, ", ") + ")"
	}
	return said
}

// machineList is "3 live machines: 3f2a9c1e az=a,disk=hdd; 5b7d0e44 az=b;
// …", at most five of them.
func (pc *placeContext) machineList() string {
	const most = 5
	parts := make([]string, 0, most)
	for i, m := range pc.machines {
		if i == most {
			parts = append(parts, fmt.Sprintf("and %d more", len(pc.machines)-most))
			break
		}
		parts = append(parts, fmt.Sprintf("%.8s %s", m.ID, metadataString(m.Metadata)))
	}
	return fmt.Sprintf("%s: %s", plural(len(pc.machines), "live machine"), strings.Join(parts, "; "))
}

// metadataString is "az=a,disk=hdd", sorted, or "no metadata".
func metadataString(md map[string]string) string {
	if len(md) == 0 {
		return "no metadata"
	}
	kv := make([]string, 0, len(md))
	for _, k := range sortedKeys(md) {
		kv = append(kv, k+"="+md[k])
	}
	return strings.Join(kv, ",")
}

// constraint says what machine asks as fleet reads it: "disk=ssd",
// "az=a or az=b, and disk=ssd".
func constraint(machine []string) string {
	byKey := map[string][]string{}
	for _, kv := range machine {
		k, _, _ := strings.Cut(kv, "=")
		byKey[k] = append(byKey[k], kv)
	}
	var parts []string
	for _, k := range sortedKeys(byKey) {
		parts = append(parts, strings.Join(byKey[k], " or "))
	}
	if len(parts) == 0 {
		return "any metadata"
	}
	return strings.Join(parts, ", and ")
}

// zoneCounts is "az=a: 3 replicas, 3 machines; az=b: 3 replicas, 1 machine".
func zoneCounts(key string, count, room map[string]int) string {
	parts := make([]string, 0, len(count))
	for _, z := range sortedKeys(count) {
		parts = append(parts, fmt.Sprintf("%s=%s: %s, %s", key, z, plural(count[z], "replica"), plural(room[z], "machine")))
	}
	return strings.Join(parts, "; ")
}

func keys(m map[string]bool) []string { return sortedKeys(m) }
