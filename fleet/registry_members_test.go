package fleet

import (
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coreos/fleet/machine"

	"github.com/kaylee-gitops/kaylee/store"
)

// A stateful unit's members are in the instance registry under stable
// names, <unit>-<ordinal>, whatever their fleet unit's name (it changes
// with every update), with their ordinal; a member being stopped leaves
// first.
func TestRegistryNamesMembers(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v1, v2 := stateful(2, 1, "docker://db:1"), stateful(2, 1, "docker://db:2")
	machines := []machine.MachineState{
		{ID: "m1", PublicIP: "10.0.0.2", Metadata: map[string]string{"role": "db"}},
		{ID: "m2", PublicIP: "10.0.0.3", Metadata: map[string]string{"role": "db"}},
	}
	tests := []struct {
		name string
		snap *snapshot
		want string // instances put: "name@machine#member"; deleted: "-key"
	}{{
		name: "both members running",
		snap: (&snapshot{units: []*store.Unit{{Name: "db", Spec: *v1, Raw: v1.CanonicalJSON()}}}).
			with(members(t, v1, "m1", "m2"), "launched", "active", "running"),
		want: "db-0@m1#0 db-1@m2#1",
	}, {
		name: "an update stops member 1 first: it leaves the registry, member 0 stays",
		snap: (&snapshot{units: []*store.Unit{{Name: "db", Spec: *v2, Raw: v2.CanonicalJSON()}},
			registry: &registry{written: map[string]*store.Instance{}, left: map[string]bool{"db/db-0": true, "db/db-1": true}, since: map[string]time.Time{}}}).
			with(members(t, v1, "m1", "m2"), "launched", "active", "running"),
		want: "-db/db-1 db-0@m1#0",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := tt.snap
			snap.machines = machines
			for _, u := range snap.fleetUnits { // on the machine each is pinned to
				u.MachineID = pinnedMachine(u)
			}
			for _, s := range snap.states {
				for _, u := range snap.fleetUnits {
					if u.Name == s.Name {
						s.MachineID = u.MachineID
					}
				}
			}
			if snap.registry == nil {
				snap.registry = &registry{}
			}
			pp := newPassPlanner(Options{}.withDefaults())
			for _, s := range snap.states {
				pp.mem.readySince[s.Name] = now.Add(-time.Minute)
			}
			plan := pp.plan(snap, now)
			var got []string
			for _, k := range plan.instances.deletes {
				got = append(got, "-"+k)
			}
			for _, in := range plan.instances.puts {
				member := "-"
				if in.Member != nil {
					member = strconv.Itoa(*in.Member)
				}
				got = append(got, in.Instance+"@"+in.MachineID+"#"+member)
			}
			sort.Strings(got)
			if s := strings.Join(got, " "); s != tt.want {
				t.Errorf("registry = %q, want %q", s, tt.want)
			}
		})
	}
}
