package console

import (
	"context"
	"sort"
	"time"

	"github.com/coreos/fleet/machine"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/view"
)

// MachineLister lists fleet's machines; fleet's client.API is one.
type MachineLister interface {
	Machines() ([]machine.MachineState, error)
}

// Machine is one fleet machine with the replicas the scheduler placed on it.
type Machine struct {
	ID       string            `json:"id"`
	IP       string            `json:"ip,omitempty"`
	Metadata map[string]string `json:"metadata"`
	Replicas []Replica         `json:"replicas"`
	// Known: fleet lists it (false for a machine only statuses name: it
	// left fleet, or fleet could not be asked).
	Known bool `json:"known"`
}

// Replica is a fleet unit of a Kaylee unit, on a machine.
type Replica struct {
	Unit      string `json:"unit"`
	FleetUnit string `json:"fleetUnit"`
	State     string `json:"state"` // active/running, …; "" when fleet has no state yet
}

// State is everything the dashboard shows, as of Time.
type State struct {
	Time      time.Time     `json:"time"`
	Units     []view.Unit   `json:"units"`
	Machines  []Machine     `json:"machines"`
	Routes    []Route       `json:"routes"` // the units' domains, as kaylee router routes them
	Sources   []view.Source `json:"sources"`
	Scheduler string        `json:"scheduler,omitempty"` // the scheduler's leader
	Problems  []string      `json:"problems,omitempty"`  // what could not be read
}

// machines joins fleet's machines with the replicas the statuses place on
// them. A nil lister, or one that fails, leaves only the machines the
// statuses name (with their IPs).
func machines(ml MachineLister, units []view.Unit) ([]Machine, error) {
	byID := map[string]*Machine{}
	var err error
	if ml != nil {
		var ms []machine.MachineState
		if ms, err = ml.Machines(); err == nil {
			for _, m := range ms {
				md := m.Metadata
				if md == nil {
					md = map[string]string{}
				}
				byID[m.ID] = &Machine{ID: m.ID, IP: m.PublicIP, Metadata: md, Replicas: []Replica{}, Known: true}
			}
		}
	}
	for _, u := range units {
		for _, fu := range u.Units {
			if fu.MachineID == "" {
				continue
			}
			m := byID[fu.MachineID]
			if m == nil {
				m = &Machine{ID: fu.MachineID, IP: fu.MachineIP, Metadata: map[string]string{}, Replicas: []Replica{}}
				byID[fu.MachineID] = m
			}
			state := ""
			if fu.ActiveState != "" {
				state = fu.ActiveState + "/" + fu.SubState
			}
			m.Replicas = append(m.Replicas, Replica{Unit: u.Name, FleetUnit: fu.Name, State: state})
		}
	}
	out := make([]Machine, 0, len(byID))
	for _, m := range byID {
		sort.Slice(m.Replicas, func(i, j int) bool { return m.Replicas[i].FleetUnit < m.Replicas[j].FleetUnit })
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].IP != out[j].IP {
			return out[i].IP < out[j].IP
		}
		return out[i].ID < out[j].ID
	})
	return out, err
}

// state reads everything the dashboard shows. Units come first: without
// them there is nothing to show; the rest degrades to a problem noted.
func (s *Server) state(ctx context.Context) (*State, error) {
	units, err := view.Units(ctx, s.cfg.Reader)
	if err != nil {
		return nil, err
	}
	st := &State{Time: time.Now(), Units: units}
	if st.Machines, err = machines(s.cfg.Machines, units); err != nil {
		st.Problems = append(st.Problems, "fleet: listing machines: "+err.Error())
	}
	if st.Routes, err = s.routesOf(ctx); err != nil {
		st.Problems = append(st.Problems, "routes: "+err.Error())
		st.Routes = []Route{}
	}
	if st.Sources, err = view.Sources(ctx, s.cfg.Reader); err != nil {
		st.Problems = append(st.Problems, "sources: "+err.Error())
		st.Sources = []view.Source{}
	}
	if st.Scheduler, err = s.cfg.Reader.LeaderID(ctx, store.SchedulerElection); err != nil {
		st.Problems = append(st.Problems, "scheduler leader: "+err.Error())
	}
	return st, nil
}
