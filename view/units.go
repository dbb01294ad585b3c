package view

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
)

// NoSchedulerYet is the message of a unit no scheduler has reported on.
const NoSchedulerYet = "no status yet: is a kaylee server (or agent) running against this etcd?"

// PendingStatus is the status of a stored unit no scheduler has seen yet.
func PendingStatus(name string) *store.Status {
	return &store.Status{Name: name, Phase: store.PhasePending, Message: NoSchedulerYet, Units: []store.UnitStatus{}}
}

// StatusOf returns a unit's status record, or a pending one for a stored
// unit that has none yet; store.ErrNotFound when there is neither.
func StatusOf(ctx context.Context, r Reader, name string) (*store.Status, error) {
	st, err := r.GetStatus(ctx, name)
	if err == nil {
		return st, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if _, err := r.GetUnit(ctx, name); err != nil {
		return nil, err
	}
	return PendingStatus(name), nil
}

// AllStatuses has one status per stored unit (pending when the scheduler
// has not reported on it yet), one per unit still being deleted and one
// per name whose fleet units monder/kaylee created and that is not stored
// (store.PhaseLeftAlone), by name.
func AllStatuses(ctx context.Context, r Reader) ([]*store.Status, error) {
	units, _, err := r.ListUnits(ctx)
	if err != nil {
		return nil, err
	}
	sts, err := r.ListStatuses(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*store.Status, 0, len(sts))
	for _, u := range units {
		st := sts[u.Name]
		if st == nil {
			st = PendingStatus(u.Name)
		}
		delete(sts, u.Name)
		out = append(out, st)
	}
	for _, st := range sts {
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Unit is a unit's status with where it comes from (the git source
// owning it, the revision that source last applied, and the errors of the
// unit's file at that pass: the unit then runs its last good version) and
// what people set on it (a suspension, a rollback).
type Unit struct {
	*store.Status
	Source    string   `json:"source,omitempty"`
	File      string   `json:"file,omitempty"`
	Revision  string   `json:"revision,omitempty"` // full commit hash
	GitErrors []string `json:"gitErrors,omitempty"`
	// State is the phase as people are shown it: the scheduler's, except
	// "suspended" while a suspension holds the unit (whatever its last
	// status says) and "rolled back" while a rollback holds it and it runs.
	State string `json:"state"`
	// StateNote says what holds the unit and until when, or "".
	StateNote  string             `json:"stateNote,omitempty"`
	Suspended  *store.Suspension  `json:"suspended,omitempty"`
	RolledBack *store.RollbackPin `json:"rolledBack,omitempty"`
}

// StateRolledBack is the state of a unit that runs a revision kaylee
// rollback restored.
const StateRolledBack = "rolled back"

// ShortRevision is the first 7 characters of the git revision, or "".
func (v Unit) ShortRevision() string { return short(v.Revision) }

// RunsRevision is the short git revision of what the unit runs, as far as
// it is known: the source's revision, or for a rolled-back unit the one
// its rollback restored ("" when not known).
func (v Unit) RunsRevision() string {
	if v.runsPinned() {
		return short(v.RolledBack.GitRevision)
	}
	return v.ShortRevision()
}

// runsPinned says the spec a rollback restored is the one deployed: not
// before the scheduler has acted on the rollback, nor when it failed.
func (v Unit) runsPinned() bool {
	return v.RolledBack != nil && v.Status != nil && v.Deployed == v.RolledBack.SpecHash
}

// GitMark is the unit's source as tables show it: "-" for units of kaylee
// run, a "!" after the source when the unit's file fails in git.
func (v Unit) GitMark() string {
	switch {
	case v.Source == "":
		return "-"
	case len(v.GitErrors) > 0:
		return v.Source + "!"
	}
	return v.Source
}

// Controls are what people set on units, by unit name: suspensions
// (kaylee suspend) and rollbacks (kaylee rollback).
type Controls struct {
	Suspended  map[string]*store.Suspension
	RolledBack map[string]*store.RollbackPin
}

// ReadControls reads every suspension and rollback pin.
func ReadControls(ctx context.Context, r Reader) (Controls, error) {
	sus, err := r.Suspensions(ctx)
	if err != nil {
		return Controls{}, err
	}
	pins, err := r.RollbackPins(ctx)
	if err != nil {
		return Controls{}, err
	}
	return Controls{Suspended: sus, RolledBack: pins}, nil
}

// Join joins statuses with the sync records of the sources owning them
// and with what people set on them.
func Join(sts []*store.Status, records map[string]*store.SyncRecord, c Controls) []Unit {
	owners := Owners(records)
	out := make([]Unit, len(sts))
	for i, st := range sts {
		v := Unit{Status: st, State: st.Phase, Suspended: c.Suspended[st.Name], RolledBack: c.RolledBack[st.Name]}
		if o, ok := owners[st.Name]; ok {
			v.Source, v.File, v.Revision = o.Source, o.File, o.Record.Revision
			for _, e := range o.Record.Errors {
				if e.File == o.File {
					v.GitErrors = append(v.GitErrors, e.String())
				}
			}
		}
		v.describeControls()
		out[i] = v
	}
	return out
}

// describeControls sets State and StateNote from the unit's suspension
// and rollback.
func (v *Unit) describeControls() {
	var notes []string
	if p := v.RolledBack; p != nil {
		if v.Phase == store.PhaseRunning && v.runsPinned() {
			v.State = StateRolledBack
		}
		what := fmt.Sprintf("spec %s", p.SpecHash)
		if p.GitRevision != "" {
			what = fmt.Sprintf("git %s, spec %s", short(p.GitRevision), p.SpecHash)
		}
		n := fmt.Sprintf("rolled back to revision %d (%s)%s", p.Revision, what, byWhom(p.By))
		if v.Source != "" {
			n += fmt.Sprintf(": git's %s is not applied until %s changes in git, or kaylee resume %s", v.ShortRevision(), v.File, v.Name)
		} else {
			n += fmt.Sprintf(": until another spec is stored, or kaylee resume %s", v.Name)
		}
		notes = append(notes, n)
	}
	if sus := v.Suspended; sus != nil {
		v.State = store.PhaseSuspended
		if v.Phase != store.PhaseSuspended {
			// The scheduler's message says it once it has taken it up.
			notes = append(notes, fmt.Sprintf("suspended%s at %s; no scheduler has taken it up yet (its last status follows)",
				byWhom(sus.By), sus.Time.UTC().Format(time.RFC3339)))
		}
	}
	v.StateNote = strings.Join(notes, "; ")
}

func byWhom(by string) string {
	if by == "" {
		return ""
	}
	return " by " + by
}

// Units is every unit's view (AllStatuses joined with the sync records
// and the controls).
func Units(ctx context.Context, r Reader) ([]Unit, error) {
	all, err := AllStatuses(ctx, r)
	if err != nil {
		return nil, err
	}
	return join(ctx, r, all)
}

func join(ctx context.Context, r Reader, sts []*store.Status) ([]Unit, error) {
	records, err := r.ListSyncRecords(ctx)
	if err != nil {
		return nil, err
	}
	c, err := ReadControls(ctx, r)
	if err != nil {
		return nil, err
	}
	return Join(sts, records, c), nil
}

// UnitOf is one unit's view; store.ErrNotFound when the unit is neither
// stored nor being deleted.
func UnitOf(ctx context.Context, r Reader, name string) (Unit, error) {
	st, err := StatusOf(ctx, r, name)
	if err != nil {
		return Unit{}, err
	}
	v, err := join(ctx, r, []*store.Status{st})
	if err != nil {
		return Unit{}, err
	}
	return v[0], nil
}
