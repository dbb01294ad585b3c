package store

import (
	"context"
	"errors"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// SchedulerSettings is what the scheduler's leader makes of the stored
// units beyond their JSON, at <prefix>/scheduler. The leader writes it
// (fenced) at a pass that finds another value there (or none), so that a process that waits for a
// rollout (kaylee run --wait, rollback --wait, sync --once --wait)
// computes the spec hash the scheduler rolls out: a unit that names no
// engine hashes with the default engine. A leader with other settings
// rewrites it; the key is never deleted.
type SchedulerSettings struct {
	// DefaultEngine is the engine a unit that names none runs with
	// (rkt, docker or podman).
	DefaultEngine string    `json:"defaultEngine"`
	By            string    `json:"by,omitempty"` // the leader's ID
	Time          time.Time `json:"time"`
}

func (s *Store) schedulerKey() string { return s.prefix + "/scheduler" }

// PutSchedulerSettings writes the scheduler's settings (fenced).
func (s *Store) PutSchedulerSettings(ctx context.Context, st *SchedulerSettings, f Fence) error {
	return s.putRecord(ctx, "scheduler settings", s.schedulerKey(), st, f)
}

// GetSchedulerSettings returns the settings the scheduler's last leader
// published; with none (no scheduler ran since they were introduced) the
// seed's: rkt.
func (s *Store) GetSchedulerSettings(ctx context.Context) (*SchedulerSettings, error) {
	st, err := getRecord[SchedulerSettings](ctx, s, "scheduler settings", s.schedulerKey())
	if errors.Is(err, ErrNotFound) {
		return &SchedulerSettings{DefaultEngine: deploy.EngineRkt}, nil
	}
	return st, err
}
