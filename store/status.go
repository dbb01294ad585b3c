package store

import (
	"context"
	"encoding/json"
	"fmt"
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
	PhaseSuspended   = "suspended"   // kaylee suspend: the scheduler leaves its fleet units as they are
	// PhaseLeftAlone: no unit of this name is stored (or the one whose
	// JSON has this name is stored under another key and refused), but
	// monder/kaylee's fleet units of it are in fleet: the scheduler never
	// touches them (Desired is 0, Units lists them, Message says why).
	// Not a stored unit: the record goes with those fleet units, or
	// becomes the stored unit's status once one of this name adopts them.
	PhaseLeftAlone = "left-alone"
)

// Status is the scheduler's view of one unit, at <prefix>/status/<name>.
type Status struct {
	Name     string `json:"name"`
	Phase    string `json:"phase"`
	SpecHash string `json:"specHash,omitempty"`
	// Engine is the engine the scheduler runs the unit with when its spec
	// names none and it is not rkt: the scheduler's default engine, or the
	// one a rollback restored (SpecHash is of the spec with it).
	Engine string `json:"engine,omitempty"`
	// Deployed is the spec hash whose rollout last completed. A failure of
	// a replica of a deployed spec is repaired, not a failed rollout.
	Deployed string `json:"deployed,omitempty"`
	Desired  int    `json:"desired"`
	Running  int    `json:"running"`
	// Serving counts the replicas that serve, of any version: during a
	// rollout, the new spec's running replicas (Running) and the old ones
	// still launched and running.
	Serving int `json:"serving"`
	// Ready counts the current spec's replicas that have run for minReady.
	Ready   int    `json:"ready,omitempty"`
	Message string `json:"message,omitempty"`
	// HeldBy is, for PhaseLeftAlone, the key of the refused value whose
	// JSON's name is this status's name ("" when nothing of it is stored).
	HeldBy string       `json:"heldBy,omitempty"`
	Units  []UnitStatus `json:"units"`
	// Since is when the unit entered Phase for SpecHash (the rollout
	// timeout counts from it); Time is the last change of the record.
	Since time.Time `json:"since"`
	Time  time.Time `json:"time"`
	// Progressed is when a replica of SpecHash last became ready during
	// its rollout: the progress deadline counts from it (or from Since).
	Progressed time.Time `json:"progressed,omitzero"`
	// DependsOn is the unit's dependsOn as the scheduler last planned it,
	// kept while it is deleted: a unit removed with its dependencies is
	// destroyed before them. WaitingFor names the dependencies its
	// rollout waits for (Message says why), "" when it waits for none.
	DependsOn  []string `json:"dependsOn,omitempty"`
	WaitingFor string   `json:"waitingFor,omitempty"`
	// Evidence is, for a failed rollout, what the failing replica's
	// machine saw when it stopped (see Evidence), when its publisher runs.
	Evidence *Evidence `json:"evidence,omitempty"`
}

// UnitStatus is one fleet unit of a Kaylee unit, on one machine.
type UnitStatus struct {
	Name        string `json:"name"`
	MachineID   string `json:"machineID,omitempty"`
	MachineIP   string `json:"machineIP,omitempty"`
	ActiveState string `json:"activeState,omitempty"`
	SubState    string `json:"subState,omitempty"`
}

// ServingReplicas is the replicas that serve, of any version: a status written
// before the scheduler counted them has the running ones.
func (st *Status) ServingReplicas() int {
	if st.Serving == 0 {
		return st.Running
	}
	return st.Serving
}

func (s *Store) statusDir() string { return s.prefix + "/status/" }

// PutStatus writes a unit's status (fenced).
func (s *Store) PutStatus(ctx context.Context, st *Status, f Fence) error {
	return s.putRecord(ctx, "status", s.statusDir()+st.Name, st, f)
}

// ApplyStatuses writes statuses and deletes those of the units named in
// deletes, fenced, up to maxTxnOps keys in one transaction: a pass that
// changes the statuses of hundreds of units makes a few round trips, not
// one each. On an error the batches before it are written.
func (s *Store) ApplyStatuses(ctx context.Context, puts []*Status, deletes []string, f Fence) error {
	ops := make([]clientv3.Op, 0, len(puts)+len(deletes))
	for _, name := range deletes {
		ops = append(ops, clientv3.OpDelete(s.statusDir()+name))
	}
	for _, st := range puts {
		b, err := json.Marshal(st)
		if err != nil {
			return fmt.Errorf("status of %s: %w", st.Name, err)
		}
		ops = append(ops, clientv3.OpPut(s.statusDir()+st.Name, string(b)))
	}
	return s.commitBatches(ctx, f, "statuses", ops)
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
	return getRecord[Status](ctx, s, "status", s.statusDir()+name)
}

// ListStatuses returns every status record by unit name.
func (s *Store) ListStatuses(ctx context.Context) (map[string]*Status, error) {
	return listRecords[Status](ctx, s, "status", s.statusDir())
}
