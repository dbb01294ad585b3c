package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// NoSchedulerYet is the message of a unit no scheduler has reported on.
const NoSchedulerYet = "no status yet: is a kaylee server (or agent) running against this etcd?"

// PendingStatus is the status of a stored unit no scheduler has seen yet.
func PendingStatus(name string) *Status {
	return &Status{Name: name, Phase: PhasePending, Message: NoSchedulerYet, Units: []UnitStatus{}}
}

// UnitStatus returns a unit's status record, or a pending one for a stored
// unit that has none yet; ErrNotFound when there is neither.
func (s *Store) UnitStatus(ctx context.Context, name string) (*Status, error) {
	st, err := s.GetStatus(ctx, name)
	if err == nil {
		return st, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if _, err := s.GetUnit(ctx, name); err != nil {
		return nil, err
	}
	return PendingStatus(name), nil
}

// AllStatuses has one status per stored unit (pending when the scheduler
// has not reported on it yet) and one per unit still being deleted, by name.
func (s *Store) AllStatuses(ctx context.Context) ([]*Status, error) {
	units, _, err := s.ListUnits(ctx)
	if err != nil {
		return nil, err
	}
	sts, err := s.ListStatuses(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Status, 0, len(sts))
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

// UnitView is a unit's status with where it comes from (the git source
// owning it, the revision that source last applied, and the errors of the
// unit's file at that pass: the unit then runs its last good version) and
// what people set on it (a suspension, a rollback).
type UnitView struct {
	*Status
	Source    string   `json:"source,omitempty"`
	File      string   `json:"file,omitempty"`
	Revision  string   `json:"revision,omitempty"` // full commit hash
	GitErrors []string `json:"gitErrors,omitempty"`
	// State is the phase as people are shown it: the scheduler's, except
	// "suspended" while a suspension holds the unit (whatever its last
	// status says) and "rolled back" while a rollback holds it and it runs.
	State string `json:"state"`
	// StateNote says what holds the unit and until when, or "".
	StateNote  string       `json:"stateNote,omitempty"`
	Suspended  *Suspension  `json:"suspended,omitempty"`
	RolledBack *RollbackPin `json:"rolledBack,omitempty"`
}

// StateRolledBack is the state of a unit that runs a revision kaylee
// rollback restored.
const StateRolledBack = "rolled back"

func short(rev string) string {
	if len(rev) > 7 {
		return rev[:7]
	}
	return rev
}

// ShortRevision is the first 7 characters of the git revision, or "".
func (v UnitView) ShortRevision() string { return short(v.Revision) }

// RunsRevision is the short git revision of what the unit runs, as far as
// it is known: the source's revision, or for a rolled-back unit the one
// its rollback restored ("" when not known).
func (v UnitView) RunsRevision() string {
	if v.runsPinned() {
		return short(v.RolledBack.GitRevision)
	}
	return v.ShortRevision()
}

// runsPinned says the spec a rollback restored is the one deployed: not
// before the scheduler has acted on the rollback, nor when it failed.
func (v UnitView) runsPinned() bool {
	return v.RolledBack != nil && v.Status != nil && v.Deployed == v.RolledBack.SpecHash
}

// ServingReplicas is the replicas that serve, of any version: a status written
// before the scheduler counted them has the running ones.
func (st *Status) ServingReplicas() int {
	if st.Serving == 0 {
		return st.Running
	}
	return st.Serving
}

// GitMark is the unit's source as tables show it: "-" for units of kaylee
// run, a "!" after the source when the unit's file fails in git.
func (v UnitView) GitMark() string {
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
	Suspended  map[string]*Suspension
	RolledBack map[string]*RollbackPin
}

// Controls reads every suspension and rollback pin.
func (s *Store) Controls(ctx context.Context) (Controls, error) {
	sus, err := s.Suspensions(ctx)
	if err != nil {
		return Controls{}, err
	}
	pins, err := s.RollbackPins(ctx)
	if err != nil {
		return Controls{}, err
	}
	return Controls{Suspended: sus, RolledBack: pins}, nil
}

// Views joins statuses with the sync records of the sources owning them
// and with what people set on them.
func Views(sts []*Status, records map[string]*SyncRecord, c Controls) []UnitView {
	owners := Owners(records)
	out := make([]UnitView, len(sts))
	for i, st := range sts {
		v := UnitView{Status: st, State: st.Phase, Suspended: c.Suspended[st.Name], RolledBack: c.RolledBack[st.Name]}
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
func (v *UnitView) describeControls() {
	var notes []string
	if p := v.RolledBack; p != nil {
		if v.Phase == PhaseRunning && v.runsPinned() {
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
		v.State = PhaseSuspended
		if v.Phase != PhaseSuspended {
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

// UnitViews is every unit's view (AllStatuses joined with the sync
// records and the controls).
func (s *Store) UnitViews(ctx context.Context) ([]UnitView, error) {
	all, err := s.AllStatuses(ctx)
	if err != nil {
		return nil, err
	}
	return s.views(ctx, all)
}

func (s *Store) views(ctx context.Context, sts []*Status) ([]UnitView, error) {
	records, err := s.ListSyncRecords(ctx)
	if err != nil {
		return nil, err
	}
	c, err := s.Controls(ctx)
	if err != nil {
		return nil, err
	}
	return Views(sts, records, c), nil
}

// UnitViewOf is one unit's view; ErrNotFound when the unit is neither
// stored nor being deleted.
func (s *Store) UnitViewOf(ctx context.Context, name string) (UnitView, error) {
	st, err := s.UnitStatus(ctx, name)
	if err != nil {
		return UnitView{}, err
	}
	v, err := s.views(ctx, []*Status{st})
	if err != nil {
		return UnitView{}, err
	}
	return v[0], nil
}

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

// WantOf is the Want of a stored spec with its restart counter.
func WantOf(s *deploy.Spec, restart int64) Want {
	w := Want{Hash: s.Hash(restart)}
	if s.Replicated() {
		w.Replicas = s.Replicas
	}
	return w
}

// RolloutOf decides the rollout of want from a unit's status (nil when the
// scheduler has written none yet). A status of another spec hash, or of
// another count of replicas, is not about this rollout: the scheduler has
// not taken it up yet.
func RolloutOf(name string, st *Status, want Want) Rollout {
	if st == nil || st.SpecHash != want.Hash || want.Replicas > 0 && st.Desired != want.Replicas {
		return Rollout{Line: name + ": waiting for the scheduler"}
	}
	r := Rollout{Line: fmt.Sprintf("%s: %s, %d/%d running: %s", name, st.Phase, st.Running, st.Desired, st.Message)}
	switch st.Phase {
	case PhaseRunning:
		r.Done = true
	case PhaseFailed:
		r.Done, r.Failed = true, true
	}
	return r
}

// Wakeups tells a waiter when to read again: after each change of any key
// under the prefix (one pending wake-up stands for many), and at least
// every fallback whatever the watch does; a watch that fails is made anew,
// with a wake-up once it is back (what changed meanwhile is read then). It
// returns once the watch is in place (or after a second, when etcd is slow
// to answer: the fallback covers that), so that a read made after it
// misses no change. The channel closes when ctx ends.
func (s *Store) Wakeups(ctx context.Context, fallback time.Duration) <-chan struct{} {
	out := make(chan struct{}, 1)
	created := make(chan struct{})
	go s.wakeups(ctx, fallback, out, created)
	select {
	case <-created:
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
	return out
}

func (s *Store) wakeups(ctx context.Context, fallback time.Duration, out chan<- struct{}, created chan<- struct{}) {
	defer close(out)
	wake := func() {
		select {
		case out <- struct{}{}:
		default: // one pending wake-up says as much as many
		}
	}
	tick := time.NewTicker(fallback)
	defer tick.Stop()
	first := true
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		wc := s.c.Watch(clientv3.WithRequireLeader(wctx), s.prefix+"/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	watch:
		for {
			select {
			case <-ctx.Done():
				break watch
			case wr, ok := <-wc:
				switch {
				case !ok || wr.Err() != nil:
					break watch
				case wr.Created:
					if first {
						first = false
						close(created)
					} else {
						wake()
					}
				default:
					wake()
				}
			case <-tick.C:
				wake()
			}
		}
		cancel()
		// The watch failed (etcd away, or compacted): the fallback goes
		// on; watch again shortly.
		retry := time.NewTimer(time.Second)
	pause:
		for {
			select {
			case <-ctx.Done():
				retry.Stop()
				return
			case <-tick.C:
				wake()
			case <-retry.C:
				break pause
			}
		}
	}
}

// WatchChanges sends the store revision of each change of any key under
// the prefix until ctx ends; it closes when the watch fails (the caller
// reads again and watches anew).
func (s *Store) WatchChanges(ctx context.Context) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		defer close(out)
		for wr := range s.c.Watch(clientv3.WithRequireLeader(ctx), s.prefix+"/", clientv3.WithPrefix()) {
			if wr.Err() != nil {
				return
			}
			select {
			case out <- wr.Header.Revision:
			default: // one pending notice says as much as many
			}
		}
	}()
	return out
}
