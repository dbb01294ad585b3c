package view

import (
	"fmt"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// Rollout is where the rollout of one spec stands, as a rollout viewer
// decides it from the unit's status.
type Rollout struct {
	Done   bool   // finished: running, or failed
	Failed bool   // the rollout of the wanted spec failed
	Line   string // one line for a person: "web: progressing, 1/3 running: …"
}

// Want is what a rollout viewer waits for: a spec hash and, for a unit
// with replicas, their count (a change of replicas alone keeps the spec
// hash: replicas are added or removed).
type Want struct {
	Hash     string
	Replicas int // 0: any count
}

// WantOf is the Want of a stored spec with its restart counter, on a
// cluster whose scheduler runs a unit that names no engine with
// defaultEngine ("" is rkt; see store.SchedulerSettings): the hash is the
// one the scheduler computes (deploy.Spec.WithDefaultEngine).
func WantOf(s *deploy.Spec, restart int64, defaultEngine string) Want {
	w := Want{Hash: s.WithDefaultEngine(defaultEngine).Hash(restart)}
	if s.Replicated() {
		w.Replicas = s.Replicas
	}
	return w
}

// EngineLine says which engine a unit runs with on a cluster whose
// default engine is defaultEngine ("" is rkt): "web: engine docker (the
// cluster default)", "db: engine podman (its own)".
func EngineLine(s *deploy.Spec, defaultEngine string) string {
	if s.Engine != "" {
		return fmt.Sprintf("%s: engine %s (its own)", s.Name, s.Engine)
	}
	return fmt.Sprintf("%s: engine %s (the cluster default)", s.Name, s.WithDefaultEngine(defaultEngine).EngineName())
}

// RolloutOf decides the rollout of want from a unit's status (nil when the
// scheduler has written none yet). A status of another spec hash, or of
// another count of replicas, is not about this rollout: the scheduler has
// not taken it up yet.
func RolloutOf(name string, st *store.Status, want Want) Rollout {
	if st == nil || st.SpecHash != want.Hash || want.Replicas > 0 && st.Desired != want.Replicas {
		return Rollout{Line: name + ": waiting for the scheduler"}
	}
	r := Rollout{Line: fmt.Sprintf("%s: %s, %d/%d running: %s", name, st.Phase, st.Running, st.Desired, st.Message)}
	switch st.Phase {
	case store.PhaseRunning:
		r.Done = true
	case store.PhaseFailed:
		r.Done, r.Failed = true, true
	}
	return r
}
