package fleet

import (
	"context"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/fleet/machine"

	"github.com/kaylee-gitops/kaylee/store"
)

// The instance registry (<prefix>/instances/<unit>/<instance>; a stateful
// unit's members as <unit>-<ordinal>) lists the replicas that serve, for
// load balancers, confd templates and the like.
// Each pass, after planning and before any fleet call, the leader writes
// the difference between what serves now and what it wrote last, in one
// fenced transaction on its session's lease: a replica this pass stops or
// destroys leaves the registry before fleet is told to stop it (and, with
// Options.DrainDelay, that long before: see drain.go), and when no leader
// keeps the entries (its session ends) they vanish.

// serving lists the instances a pass leaves serving: every replica of a
// unit, of the current version or an older one, that fleet reports
// active/running with its submitted unit file (a unit with a health check
// only reaches running once its check passed), with target launched, and
// that the pass does not stop or destroy, nor hold the stop of (held: it
// drains, see drain.go). since gives when an instance was first seen
// serving; new ones are since now.
func serving(inputs map[string]*unitInput, ops []op, held map[string]bool, machines map[string]machine.MachineState, since map[string]time.Time, now time.Time) map[string]*store.Instance {
	down := maps.Clone(held)
	if down == nil {
		down = map[string]bool{}
	}
	for _, o := range ops {
		if o.kind == opStop || o.kind == opDestroy {
			down[o.name] = true
		}
	}
	out := map[string]*store.Instance{}
	for name, in := range inputs {
		for _, a := range in.actual {
			if a.unit == nil || a.target() != targetLaunched || down[a.name()] {
				continue
			}
			global := isGlobal(a)
			for _, s := range a.states {
				if s.SystemdActiveState != "active" || s.SystemdSubState != "running" || s.Hash != a.hash {
					continue
				}
				m, ok := machines[s.MachineID]
				if !ok {
					continue
				}
				inst := &store.Instance{Unit: name, Instance: strings.TrimSuffix(a.name(), ".service"), FleetUnit: a.name(),
					MachineID: s.MachineID, MachineIP: m.PublicIP, Metadata: m.Metadata,
					State: s.SystemdActiveState + "/" + s.SystemdSubState, SpecHash: a.id.SpecHash}
				if global {
					inst.Instance += "@" + s.MachineID
				}
				if in.spec != nil {
					inst.Ports = in.spec.Ports
					if in.spec.Stateful {
						ordinal := a.id.Index
						inst.Instance, inst.Member = name+"-"+strconv.Itoa(ordinal), &ordinal
					}
				}
				inst.Since = now
				if t, ok := since[inst.Key()]; ok {
					inst.Since = t
				}
				out[inst.Key()] = inst
			}
		}
	}
	return out
}

// isGlobal: the fleet unit has X-Fleet Global=true.
func isGlobal(a *actualUnit) bool {
	for _, o := range a.unit.Options {
		if o.Section == "X-Fleet" && o.Name == "Global" && o.Value == "true" {
			return true
		}
	}
	return false
}

// registry is what this term wrote to the instance registry.
type registry struct {
	written map[string]*store.Instance // by key, as written by this term
	left    map[string]bool            // keys left by an earlier leader, not yet rewritten or deleted
	since   map[string]time.Time       // when each key was first seen serving
}

func (r *Reconciler) newRegistry(ctx context.Context) (*registry, error) {
	prev, err := r.store.ListInstances(ctx)
	if err != nil {
		return nil, err
	}
	reg := &registry{written: map[string]*store.Instance{}, left: map[string]bool{}, since: map[string]time.Time{}}
	for k, in := range prev {
		reg.left[k] = true // on the earlier leader's lease: rewrite on ours
		reg.since[k] = in.Since
	}
	return reg, nil
}

// diff returns the puts and deletes that make the registry want.
func (reg *registry) diff(want map[string]*store.Instance) (puts []*store.Instance, deletes []string) {
	for k, in := range want {
		if old, ok := reg.written[k]; ok && sameInstance(old, in) {
			continue
		}
		puts = append(puts, in)
	}
	for k := range reg.written {
		if _, ok := want[k]; !ok {
			deletes = append(deletes, k)
		}
	}
	for k := range reg.left {
		if _, ok := want[k]; !ok {
			deletes = append(deletes, k)
		}
	}
	sort.Slice(puts, func(i, j int) bool { return puts[i].Key() < puts[j].Key() })
	sort.Strings(deletes)
	return puts, deletes
}

// applied records a diff written.
func (reg *registry) applied(puts []*store.Instance, deletes []string) {
	for _, in := range puts {
		reg.written[in.Key()] = in
		reg.since[in.Key()] = in.Since
		delete(reg.left, in.Key())
	}
	for _, k := range deletes {
		delete(reg.written, k)
		delete(reg.left, k)
		delete(reg.since, k)
	}
}

func sameInstance(a, b *store.Instance) bool {
	return a.Unit == b.Unit && a.Instance == b.Instance && a.FleetUnit == b.FleetUnit && a.MachineID == b.MachineID &&
		a.MachineIP == b.MachineIP && a.State == b.State && a.Since.Equal(b.Since) && a.SpecHash == b.SpecHash &&
		maps.Equal(a.Metadata, b.Metadata) && slices.Equal(a.Ports, b.Ports)
}
