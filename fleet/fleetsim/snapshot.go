package fleetsim

import (
	"sort"

	"github.com/coreos/fleet/schema"
)

// UnitStates is what the simulated systemd of every machine says of its
// loaded units, all read at one instant (every machine's systemd is held
// while it is read), in fleet's form, sorted by machine and name.
//
// fleet's own UnitStates lag this: each agent publishes what its systemd
// says once a second, machine by machine, so fleet can report a unit
// active/running for a moment after its machine stopped it, while a unit
// another machine started since is reported already. A test that bounds
// what runs at once (old and new replicas during a rollout) reads this.
func (c *Cluster) UnitStates() []*schema.UnitState {
	for _, m := range c.machines {
		m.systemd.mu.Lock()
	}
	var out []*schema.UnitState
	for _, m := range c.machines {
		for name, u := range m.systemd.units {
			out = append(out, &schema.UnitState{Name: name, Hash: u.hash, MachineID: m.state.ID,
				SystemdLoadState: "loaded", SystemdActiveState: u.active, SystemdSubState: u.sub})
		}
	}
	for _, m := range c.machines {
		m.systemd.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].MachineID != out[j].MachineID {
			return out[i].MachineID < out[j].MachineID
		}
		return out[i].Name < out[j].Name
	})
	return out
}
