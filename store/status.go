package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Phases of a unit's status.
const (
	PhasePending     = "pending"     // accepted, nothing of it runs yet
	PhaseProgressing = "progressing" // a rollout (or a repair) is under way
	PhaseRunning     = "running"     // every desired replica runs the current spec
	PhaseFailed      = "failed"      // the rollout of SpecHash failed; see Message
	PhaseDeleting    = "deleting"    // removed from the store; fleet units are being destroyed
)

// Status is the scheduler's view of one unit, at <prefix>/status/<name>.
type Status struct {
	Name     string `json:"name"`
	Phase    string `json:"phase"`
	SpecHash string `json:"specHash,omitempty"`
	// Deployed is the spec hash whose rollout last completed. A failure of
	// a replica of a deployed spec is repaired, not a failed rollout.
	Deployed string       `json:"deployed,omitempty"`
	Desired  int          `json:"desired"`
	Running  int          `json:"running"`
	Message  string       `json:"message,omitempty"`
	Units    []UnitStatus `json:"units"`
	// Since is when the unit entered Phase for SpecHash (the rollout
	// timeout counts from it); Time is the last change of the record.
	Since time.Time `json:"since"`
	Time  time.Time `json:"time"`
}

// UnitStatus is one fleet unit of a Kaylee unit, on one machine.
type UnitStatus struct {
	Name        string `json:"name"`
	MachineID   string `json:"machineID,omitempty"`
	MachineIP   string `json:"machineIP,omitempty"`
	ActiveState string `json:"activeState,omitempty"`
	SubState    string `json:"subState,omitempty"`
}

func (s *Store) statusDir() string { return s.prefix + "/status/" }

// PutStatus writes a unit's status (fenced).
func (s *Store) PutStatus(ctx context.Context, st *Status, f Fence) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("status of %s: %w", st.Name, err)
	}
	if _, err := s.commit(ctx, f, clientv3.OpPut(s.statusDir()+st.Name, string(b))); err != nil {
		return fmt.Errorf("writing status of %s: %w", st.Name, err)
	}
	return nil
}

// DeleteStatus removes a unit's status (fenced).
func (s *Store) DeleteStatus(ctx context.Context, name string, f Fence) error {
	if _, err := s.commit(ctx, f, clientv3.OpDelete(s.statusDir()+name)); err != nil {
		return fmt.Errorf("deleting status of %s: %w", name, err)
	}
	return nil
}

// GetStatus returns one unit's status, or ErrNotFound.
func (s *Store) GetStatus(ctx context.Context, name string) (*Status, error) {
	r, err := s.c.Get(ctx, s.statusDir()+name)
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	if len(r.Kvs) == 0 {
		return nil, fmt.Errorf("status of %q: %w", name, ErrNotFound)
	}
	return decodeStatus(r.Kvs[0].Key, r.Kvs[0].Value)
}

// ListStatuses returns every status record by unit name.
func (s *Store) ListStatuses(ctx context.Context) (map[string]*Status, error) {
	r, err := s.c.Get(ctx, s.statusDir(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd: listing status: %w", err)
	}
	out := make(map[string]*Status, len(r.Kvs))
	for _, kv := range r.Kvs {
		st, err := decodeStatus(kv.Key, kv.Value)
		if err != nil {
			return nil, err
		}
		out[strings.TrimPrefix(string(kv.Key), s.statusDir())] = st
	}
	return out, nil
}

func decodeStatus(key, value []byte) (*Status, error) {
	var st Status
	if err := json.Unmarshal(value, &st); err != nil {
		return nil, fmt.Errorf("%s: not a status record: %w", key, err)
	}
	return &st, nil
}
