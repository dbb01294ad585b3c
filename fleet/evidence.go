package fleet

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
)

// Failure evidence: when a rollout fails, the status (and so the history
// entry, the event and the notification) carries what the failing
// replica's machine saw when it stopped, as `kaylee evidence` published
// it there (store.Evidence). The planner names the replica (pure); the
// step between plan and apply reads its evidence, one key range, only for
// the rollouts that failed.

// failedReplica is the replica a failed rollout names.
type failedReplica struct {
	fleetUnit string
	machine   string // "" when not known
}

// evidenceWant asks the apply step for a failed replica's evidence.
type evidenceWant struct {
	unit      string
	hash      string // the spec hash whose rollout failed
	fleetUnit string
	machine   string
	since     time.Time // when the rollout failed
	// started is when the rollout began: evidence older (a fleet unit
	// name reused by a revert to the same spec) is another rollout's.
	started time.Time
	env     []string // the spec's env values, hidden in the evidence
}

// evidenceWait is how long after a rollout failed its evidence is asked
// for: the publisher on the machine reads the file every second, and a
// failure can be seen before.
const evidenceWait = time.Minute

// evidenceSkew is how far a machine's clock may be behind the leader's:
// evidence written up to that long before a rollout began is still its.
const evidenceSkew = time.Minute

// failTail starts what a failed rollout's message says after its reason;
// the evidence's line goes before it.
const failTail = "; the new replicas are removed"

// askEvidence asks for the evidence of the replica the rollout failed on
// (f), or, with f nil, again for the one asked for when it failed, while
// evidenceWait has not passed.
func (r *rollout) askEvidence(f *failedReplica) {
	w := r.mem.evidence[r.u.name]
	if f != nil {
		w = &evidenceWant{unit: r.u.name, hash: r.d.hash, fleetUnit: f.fleetUnit, machine: f.machine, since: r.now, started: r.now, env: envValues(r.u)}
		if p := r.u.prev; p != nil && p.SpecHash == r.d.hash && !p.Since.IsZero() {
			w.started = p.Since
		}
		r.mem.evidence[r.u.name] = w
	}
	if w == nil || w.hash != r.d.hash || r.now.Sub(w.since) > evidenceWait {
		delete(r.mem.evidence, r.u.name)
		return
	}
	r.planner.evidence = append(r.planner.evidence, *w)
	if f == nil {
		r.wakeAt(r.now.Add(2 * time.Second))
	}
}

// envValues are the values of the unit's env.
func envValues(u *unitInput) []string {
	if u.spec == nil {
		return nil
	}
	vals := make([]string, 0, len(u.spec.Env))
	for _, e := range u.spec.Env {
		vals = append(vals, e.Value)
	}
	return vals
}

// attachEvidence reads the evidence the plan asks for and puts it in the
// failed statuses: their Evidence, and one line of it in their message.
// Evidence not published (yet) leaves the status as planned; an etcd
// error is logged: evidence is for people, and fails nothing.
func (t *term) attachEvidence(ctx context.Context, plan *planResult) {
	if len(plan.evidence) == 0 {
		return
	}
	byName := make(map[string]*store.Status, len(plan.statuses))
	for _, ns := range plan.statuses {
		byName[ns.name] = ns.status
	}
	for _, w := range plan.evidence {
		st := byName[w.unit]
		if st == nil || st.Phase != store.PhaseFailed || st.SpecHash != w.hash || st.Evidence != nil {
			continue
		}
		ev, err := t.store.GetEvidence(ctx, w.unit, w.fleetUnit, w.machine)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				t.log.Warn("reading the failed replica's evidence", "unit", w.unit, "fleetUnit", w.fleetUnit, "err", err)
			}
			continue
		}
		if ev.Time.Before(w.started.Add(-evidenceSkew)) {
			continue // another rollout's, under the same fleet unit name
		}
		ev.Scrub(w.env)
		st.Evidence = ev
		st.Message = withEvidence(st.Message, ev)
		delete(t.planner.mem.evidence, w.unit)
	}
}

// withEvidence puts the evidence's line into a failed rollout's message,
// after its reason, which then no longer sends people to the journal.
func withEvidence(msg string, ev *store.Evidence) string {
	line := ev.Summary()
	if line == "" {
		return msg
	}
	reason, tail := msg, ""
	if i := strings.Index(msg, failTail); i >= 0 {
		reason, tail = msg[:i], msg[i:]
	}
	reason = strings.Replace(reason, "; see its journal on that machine)", ")", 1)
	return reason + "; on the machine: " + line + tail
}
