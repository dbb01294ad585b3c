package fleetreg

import (
	"context"
	"encoding/json"
	"errors"
	"path"
	"sync"

	etcd "github.com/coreos/etcd/client"
	"github.com/coreos/fleet/job"
	"github.com/coreos/fleet/machine"
	"github.com/coreos/fleet/schema"
	"github.com/coreos/fleet/unit"
)

// Units is what fleet's own registry client answers (every unit, by name,
// with its unit file, target state, machine and job state), in fewer
// reads. fleet's client reads the units' records twice, every unit file
// and every state, and parses every unit file on every call: with 1,000
// units × 3 replicas that was most of the scheduler's pass on a cluster
// where nothing changes. Unit files are stored by their hash
// (<prefix>/unit/<hash>) and never change under it, so the ones parsed
// are kept (those no unit uses any more are dropped) and only a new hash
// is read, on its own.
func (a *API) Units() ([]*schema.Unit, error) {
	ctx := context.Background()
	jobs, err := a.keys.Get(ctx, path.Join(a.prefix, "job"), &etcd.GetOptions{Sort: true, Recursive: true})
	if notFound(err) {
		return []*schema.Unit{}, nil
	}
	if err != nil {
		return nil, err
	}
	states, err := a.keys.Get(ctx, path.Join(a.prefix, "states"), &etcd.GetOptions{Recursive: true})
	if err != nil && !notFound(err) {
		return nil, err
	}
	stateOf := map[string]*etcd.Node{} // <name>/<machine> → its state
	if err == nil {
		for _, dir := range states.Node.Nodes {
			for _, n := range dir.Nodes {
				stateOf[path.Base(dir.Key)+"/"+path.Base(n.Key)] = n
			}
		}
	}
	type record struct {
		name            string // its object's
		file            unit.Hash
		target, machine string
		heartbeat       string
	}
	var records []record
	scheduled := map[string]*job.ScheduledUnit{} // by record key
	for _, dir := range jobs.Node.Nodes {
		key := path.Base(dir.Key)
		machineID, heartbeat := valueIn(dir, "target"), valueIn(dir, "job-state")
		st := jobState(heartbeat, machineID, stateOf[key+"/"+machineID])
		scheduled[key] = &job.ScheduledUnit{Name: key, TargetMachineID: machineID, State: &st}
		obj := valueNode(dir, "object")
		if obj == nil {
			continue
		}
		var jm struct {
			Name     string
			UnitHash unit.Hash
		}
		if err := json.Unmarshal([]byte(obj.Value), &jm); err != nil {
			continue // fleet's client leaves it out (and logs it)
		}
		records = append(records, record{name: jm.Name, file: jm.UnitHash, target: valueIn(dir, "target-state")})
	}
	hashes := make([]unit.Hash, len(records))
	for i, r := range records {
		hashes[i] = r.file
	}
	files, err := a.files.get(ctx, a, hashes)
	if err != nil {
		return nil, err
	}
	out := make([]*schema.Unit, 0, len(records))
	for _, r := range records {
		uf := files[r.file]
		if uf == nil {
			continue // no unit file under its hash: fleet's client leaves it out
		}
		ju := &job.Unit{Name: r.name, Unit: *uf}
		if r.target != "" {
			ts, err := job.ParseJobState(r.target)
			if err != nil {
				continue
			}
			ju.TargetState = ts
		}
		out = append(out, schema.MapUnitToSchemaUnit(ju, scheduled[r.name]))
	}
	return out, nil
}

// jobState is fleet's job state of a unit scheduled to machineID: loaded
// once its agent published a state there, launched when it also
// heartbeats it, else inactive.
func jobState(heartbeat, machineID string, state *etcd.Node) job.JobState {
	if machineID == "" || state == nil {
		return job.JobStateInactive
	}
	var usm struct {
		LoadState    string                `json:"loadState"`
		ActiveState  string                `json:"activeState"`
		SubState     string                `json:"subState"`
		MachineState *machine.MachineState `json:"machineState"`
		UnitHash     string                `json:"unitHash"`
	}
	if err := json.Unmarshal([]byte(state.Value), &usm); err != nil {
		return job.JobStateInactive // fleet's client reads no state from it
	}
	if heartbeat != machineID {
		return job.JobStateLoaded
	}
	return job.JobStateLaunched
}

func valueNode(dir *etcd.Node, name string) *etcd.Node {
	key := path.Join(dir.Key, name)
	for _, n := range dir.Nodes {
		if n.Key == key {
			return n
		}
	}
	return nil
}

func valueIn(dir *etcd.Node, name string) string {
	if n := valueNode(dir, name); n != nil {
		return n.Value
	}
	return ""
}

func notFound(err error) bool {
	var e etcd.Error
	return errors.As(err, &e) && e.Code == etcd.ErrorCodeKeyNotFound
}

// unitFiles are the unit files parsed, by hash.
type unitFiles struct {
	mu    sync.Mutex
	files map[unit.Hash]*unit.UnitFile
}

// manyNew: with more new hashes than this, every unit file is read in one
// request rather than each on its own.
const manyNew = 32

// get returns the unit files of hashes (nil for a hash with none),
// reading those it does not hold, and keeps only those.
func (f *unitFiles) get(ctx context.Context, a *API, hashes []unit.Hash) (map[unit.Hash]*unit.UnitFile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	want := make(map[unit.Hash]*unit.UnitFile, len(hashes))
	var missing []unit.Hash
	for _, h := range hashes {
		if _, seen := want[h]; seen {
			continue
		}
		want[h] = f.files[h]
		if want[h] == nil {
			missing = append(missing, h)
		}
	}
	if len(missing) > manyNew {
		r, err := a.keys.Get(ctx, path.Join(a.prefix, "unit"), &etcd.GetOptions{Recursive: true, Quorum: true})
		if err != nil && !notFound(err) {
			return nil, err
		}
		if err == nil {
			for _, n := range r.Node.Nodes {
				h, err := unit.HashFromHexString(path.Base(n.Key))
				if uf, ok := want[h]; err == nil && ok && uf == nil {
					want[h] = parseUnitFile(n.Value)
				}
			}
		}
	} else {
		for _, h := range missing {
			r, err := a.keys.Get(ctx, path.Join(a.prefix, "unit", h.String()), nil)
			if notFound(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			want[h] = parseUnitFile(r.Node.Value)
		}
	}
	f.files = make(map[unit.Hash]*unit.UnitFile, len(want))
	for h, uf := range want {
		if uf != nil {
			f.files[h] = uf
		}
	}
	return want, nil
}

// parseUnitFile parses a unit file record; nil when it does not parse
// (fleet's client leaves its units out).
func parseUnitFile(value string) *unit.UnitFile {
	var um struct{ Raw string }
	if err := json.Unmarshal([]byte(value), &um); err != nil {
		return nil
	}
	uf, err := unit.NewUnitFile(um.Raw)
	if err != nil {
		return nil
	}
	return uf
}
