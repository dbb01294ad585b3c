package fleet

import (
	"time"

	"github.com/coreos/fleet/agent"
	"github.com/coreos/fleet/job"
	"github.com/coreos/fleet/machine"
	"github.com/coreos/fleet/schema"
)

// fleet's engine places new units in its reconcile loop, one at a time:
// with thousands of fleet units its reconciliation takes longer than its
// leader lease, and a replica can wait minutes for a machine that is
// there. Before a replica with no machine fails its rollout as
// unschedulable, the planner asks fleet's own test (the engine's:
// agent.AgentState.AbleToRun, with machine ID, metadata, peers and
// conflicts) whether some live machine could take it now. If one could,
// fleet is slow, not refusing, and the progress deadline governs.

// fleetAgents is, per live machine, the fleet units the engine has
// scheduled there (as fleet's clusterState builds it), made once per pass
// when a replica first needs it.
type fleetAgents struct {
	byMachine map[string]*agent.AgentState
	units     map[string]*schema.Unit
}

func newFleetAgents(fleetUnits []*schema.Unit, live map[string]string, meta map[string]map[string]string) *fleetAgents {
	fa := &fleetAgents{byMachine: make(map[string]*agent.AgentState, len(live)), units: make(map[string]*schema.Unit, len(fleetUnits))}
	for id := range live {
		fa.byMachine[id] = agent.NewAgentState(&machine.MachineState{ID: id, Metadata: meta[id]})
	}
	for _, u := range fleetUnits {
		fa.units[u.Name] = u
		as := fa.byMachine[u.MachineID]
		if as == nil || u.DesiredState == string(job.JobStateInactive) {
			continue
		}
		as.Units[u.Name] = &job.Unit{Name: u.Name, Unit: *schema.MapSchemaUnitOptionsToUnitFile(u.Options), TargetState: job.JobState(u.DesiredState)}
	}
	return fa
}

// placeable says whether some live machine could take the fleet unit
// name now, by fleet's engine's own test.
func (fa *fleetAgents) placeable(name string) bool {
	u := fa.units[name]
	if u == nil {
		return false
	}
	j := job.NewJob(name, *schema.MapSchemaUnitOptionsToUnitFile(u.Options))
	for _, as := range fa.byMachine {
		if action, _ := as.AbleToRun(j); action == job.JobActionSchedule {
			return true
		}
	}
	return false
}

// fleetCouldPlace says whether fleet's engine could place the fleet unit
// name on a live machine now. A yes is remembered for Unschedulable, so
// that a backlog of thousands of replicas is not tested at every pass.
func (p *planner) fleetCouldPlace(name string) bool {
	if t, ok := p.mem.couldPlace[name]; ok && p.now.Sub(t) < p.opts.Unschedulable {
		return true
	}
	if p.agents == nil {
		if p.conflicts == nil {
			return false
		}
		p.agents = newFleetAgents(p.conflicts.fleetUnits, p.machines, p.mem.meta)
	}
	if !p.agents.placeable(name) {
		return false
	}
	p.mem.couldPlace[name] = p.now
	return true
}

// placedSince: the later of when a replica was first seen with no
// machine and when fleet's engine last placed a unit.
func (p *planner) placedSince(first time.Time) time.Time {
	return later(first, p.mem.placed)
}

// withoutConflicts is fleet's job of the fleet unit u with its Conflicts
// left out: what mayRunOn tests.
func withoutConflicts(u *schema.Unit) *job.Job {
	opts := make([]*schema.UnitOption, 0, len(u.Options))
	for _, o := range u.Options {
		if o.Section == "X-Fleet" && (o.Name == "Conflicts" || o.Name == "X-Conflicts") {
			continue
		}
		opts = append(opts, o)
	}
	return job.NewJob(u.Name, *schema.MapSchemaUnitOptionsToUnitFile(opts))
}

// mayRunOn says whether fleet's engine would place job j (made by
// withoutConflicts) on machine id were no unit in its way: fleet's own
// test (AbleToRun) against the machine alone, so that what counts is its
// machine ID and metadata.
func mayRunOn(j *job.Job, id string, meta map[string]string) bool {
	action, _ := agent.NewAgentState(&machine.MachineState{ID: id, Metadata: meta}).AbleToRun(j)
	return action == job.JobActionSchedule
}

// machineMeta is the metadata fleet last reported for machine id.
func (p *planner) machineMeta(id string) map[string]string {
	if p.mem == nil {
		return nil
	}
	return p.mem.meta[id]
}
