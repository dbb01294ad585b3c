package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// Instance is a replica that serves, at <prefix>/instances/<unit>/<instance>:
// running on its machine with its unit file (and, with a health check,
// past it). The scheduler's leader writes it, on its session's lease, so
// that it vanishes when no leader keeps it, and removes it before the
// replica is stopped.
type Instance struct {
	Unit      string            `json:"unit"`
	Instance  string            `json:"instance"`  // the fleet unit's name without .service, @machine for a Global=true unit, <unit>-<ordinal> for a stateful unit's member
	FleetUnit string            `json:"fleetUnit"` // k2:web:3cbb8d9a:1481d3:0.service
	MachineID string            `json:"machineID"`
	MachineIP string            `json:"machineIP"`
	Metadata  map[string]string `json:"metadata,omitempty"` // the machine's fleet metadata
	State     string            `json:"state"`              // systemd's, as fleet reports it: active/running
	Since     time.Time         `json:"since"`              // first seen serving
	SpecHash  string            `json:"specHash"`
	Ports     []deploy.Port     `json:"ports,omitempty"`
	// Member is a stateful unit's member ordinal; its Instance is then
	// <unit>-<ordinal>, the same through every update.
	Member *int `json:"member,omitempty"`
}

// Key is "<unit>/<instance>", the instance's key under <prefix>/instances/.
func (i *Instance) Key() string { return i.Unit + "/" + i.Instance }

func (s *Store) instancesDir() string { return s.prefix + "/instances/" }

// ListInstances returns every instance by Key.
func (s *Store) ListInstances(ctx context.Context) (map[string]*Instance, error) {
	return s.ListInstancesAt(ctx, 0)
}

// ListInstancesAt returns every instance by Key as of etcd revision rev
// (0: the latest), so that a reader can take the registry at the
// revision it read the units at.
func (s *Store) ListInstancesAt(ctx context.Context, rev int64) (map[string]*Instance, error) {
	return listRecords[Instance](ctx, s, "instance", s.instancesDir(), clientv3.WithRev(rev))
}

// UnitInstances returns a unit's instances, in key order.
func (s *Store) UnitInstances(ctx context.Context, unit string) ([]*Instance, error) {
	r, err := s.c.Get(ctx, s.instancesDir()+unit+"/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("etcd: listing instances of %s: %w", unit, err)
	}
	out := make([]*Instance, 0, len(r.Kvs))
	for _, kv := range r.Kvs {
		in, err := decodeRecord[Instance]("instance", kv.Key, kv.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

// ApplyInstances deletes instances (by Key) and puts others, fenced, the
// puts on the fence's lease; deletes go first. A change of up to maxTxnOps
// keys is one transaction.
func (s *Store) ApplyInstances(ctx context.Context, puts []*Instance, deletes []string, f Fence) error {
	var ops []clientv3.Op
	for _, k := range deletes {
		ops = append(ops, clientv3.OpDelete(s.instancesDir()+k))
	}
	var lease []clientv3.OpOption
	if f.Lease != clientv3.NoLease {
		lease = append(lease, clientv3.WithLease(f.Lease))
	}
	for _, in := range puts {
		if strings.Contains(in.Instance, "/") || in.Unit == "" {
			return fmt.Errorf("instance %q of unit %q: not a key", in.Instance, in.Unit)
		}
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("instance %s: %w", in.Key(), err)
		}
		ops = append(ops, clientv3.OpPut(s.instancesDir()+in.Key(), string(b), lease...))
	}
	return s.commitBatches(ctx, f, "instances", ops)
}
