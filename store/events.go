package store

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kaylee-gitops/kaylee/internal/redact"
)

// Kinds of events: what Kaylee did.
const (
	// The scheduler's fleet calls, one event per fleet unit.
	EventCreated   = "created"   // a fleet unit was submitted and launched
	EventLaunched  = "launched"  // a fleet unit stopped by hand was launched again (drift repaired)
	EventStopped   = "stopped"   // a fleet unit was stopped, before its destruction
	EventDestroyed = "destroyed" // a fleet unit was destroyed
	// EventMemberMoved: a stateful unit's member left its machine, gone
	// for longer than the grace (onMachineLoss move), for another one.
	EventMemberMoved = "member-moved"
	// Adoption of the fleet units of monder/kaylee, the program Kaylee
	// descends from: EventAdopted when the scheduler first sees those of
	// a stored unit (its previous version, replaced by a rollout),
	// EventAdoptionDone when the last of them is gone, and
	// EventOriginalLeftAlone for those of a name that is not stored, which
	// the scheduler never touches.
	EventAdopted           = "adopted"
	EventAdoptionDone      = "adoption-done"
	EventOriginalLeftAlone = "original-left-alone"
	// EventOriginalHeld for those of a name that is not stored but is the
	// JSON name of a value stored under another key (refused: the key is
	// the unit's name; monder/kaylee used the JSON's): left alone, never
	// removable, until that value is written under its name.
	EventOriginalHeld = "original-held"
	// Rollouts, from the unit's history.
	EventRolloutStarted   = "rollout-started"
	EventRolloutSucceeded = "rollout-succeeded"
	EventRolloutFailed    = "rollout-failed"
	EventRolledBack       = "rolled-back"
	// EventChanged: a new revision of a unit that rolls nothing out (its
	// spec hash is the same: replicas, update or ports changed); replicas
	// are added or removed, none is replaced.
	EventChanged = "changed"
	// Sync passes.
	EventSynced     = "synced"      // a source applied a new revision
	EventStored     = "stored"      // a source wrote a unit (created or changed in git)
	EventPruned     = "pruned"      // a source removed a unit deleted from git
	EventSyncFailed = "sync-failed" // a pass applied nothing (failed, refused, unverified, a rewind refused), or met file errors
	EventSyncOK     = "sync-ok"     // a source's passes apply cleanly again after failing
	EventRewound    = "rewound"     // a source applied a revision not descending from the one it had applied, as allowed
	// What people asked for (kaylee restart, suspend, resume, rollback, or
	// the same through the API).
	EventRestartRequested  = "restart-requested"
	EventSuspended         = "suspended"
	EventResumed           = "resumed"
	EventRollbackRequested = "rollback-requested"
	EventSyncRequested     = "sync-requested"
	// EventDefaultEngineChanged: a scheduler leads with another default
	// engine than the last leader's (no unit: the cluster's).
	EventDefaultEngineChanged = "default-engine-changed"
	// EventV2Units: the bridge of units written through etcd's v2 API
	// left v3 as it was (a v2 value that differs at first sight, a v2
	// delete of a unit rewritten through v3), or etcd has no v2 API. What
	// it copies, deletes and restarts is recorded as stored, pruned and
	// restart-requested, by "etcd-v2".
	EventV2Units = "v2-units"
)

// Event is one thing Kaylee did, and why, at <prefix>/events/<id>. Events
// are ordered by ID (time first).
type Event struct {
	ID        string    `json:"id"`
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"`
	Unit      string    `json:"unit,omitempty"`
	Source    string    `json:"source,omitempty"`
	FleetUnit string    `json:"fleetUnit,omitempty"`
	Revision  string    `json:"revision,omitempty"` // git revision
	SpecHash  string    `json:"specHash,omitempty"`
	Message   string    `json:"message,omitempty"` // why
	By        string    `json:"by,omitempty"`      // the process (candidate ID) that did it
	// Pass, on the events of a sync pass that tell its outcome (synced,
	// rewound, sync-failed, sync-ok), is what the pass did: what
	// notifications tell of it.
	Pass *PassOutcome `json:"pass,omitempty"`
	// Evidence, on a rollout-failed event, is what the failing replica's
	// machine saw (Status.Evidence).
	Evidence *Evidence `json:"evidence,omitempty"`
}

// PassOutcome is what one sync pass did, carried by its events.
type PassOutcome struct {
	Ref     string `json:"ref,omitempty"`
	Result  string `json:"result"`            // the attempt's result: AttemptSynced, AttemptFileErrors, ...
	Summary string `json:"summary,omitempty"` // one line for people, when a plan was made
	Reason  string `json:"reason,omitempty"`  // the attempt's message: why it applied nothing, or the rewind it applied
	// The units created, updated and pruned, and the unit file errors as
	// "FILE:LINE: message".
	Created int      `json:"created,omitempty"`
	Updated int      `json:"updated,omitempty"`
	Pruned  int      `json:"pruned,omitempty"`
	Errors  []string `json:"errors,omitempty"`
	// RewoundFrom is the revision the source had applied when the pass's
	// revision does not descend from it (refused, or applied as allowed).
	RewoundFrom string `json:"rewoundFrom,omitempty"`
}

// Changed reports whether the pass wrote units.
func (p *PassOutcome) Changed() bool { return p != nil && p.Created+p.Updated+p.Pruned > 0 }

// About: the event concerns the unit or source of that name.
func (e *Event) About(name string) bool {
	return name == "" || e.Unit == name || e.Source == name
}

// Bounds of the event log: each event lives EventTTL (on a lease shared by
// the events a process writes within an hour), and each process that
// writes events trims the oldest beyond MaxEvents every trimEvery events
// it writes (so the log may pass MaxEvents by a few writes' worth).
const (
	EventTTL  = 24 * time.Hour
	MaxEvents = 2000
	trimEvery = 50 // appends between two trims by one process
)

// eventLog is the event writer's state of one Store: its lease and ID
// sequence.
type eventLog struct {
	tag     string // random, tells processes apart within one nanosecond
	seq     atomic.Uint64
	appends atomic.Uint64
	lease   atomic.Pointer[eventLease]
}

type eventLease struct {
	id      clientv3.LeaseID
	granted time.Time
}

func newEventLog() *eventLog {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return &eventLog{tag: hex.EncodeToString(b)}
}

func (s *Store) eventsDir() string { return s.prefix + "/events/" }

// eventID orders events by time; the tag and a sequence keep the IDs of
// two writers (or two events of one nanosecond) apart.
func (s *Store) eventID(t time.Time) string {
	return fmt.Sprintf("%019d-%s-%06d", t.UnixNano(), s.events.tag, s.events.seq.Add(1)%1000000)
}

// leaseForEvents returns a lease of at least EventTTL for new events,
// granting a fresh one each hour.
func (s *Store) leaseForEvents(ctx context.Context, now time.Time) (clientv3.LeaseID, error) {
	if l := s.events.lease.Load(); l != nil && now.Sub(l.granted) < time.Hour {
		return l.id, nil
	}
	r, err := s.c.Grant(ctx, int64((EventTTL + time.Hour).Seconds()))
	if err != nil {
		return 0, fmt.Errorf("etcd: lease for events: %w", err)
	}
	s.events.lease.Store(&eventLease{id: r.ID, granted: now})
	return r.ID, nil
}

// AppendEvents writes events (fenced: a deposed leader writes none),
// filling in their ID and, when zero, their time.
func (s *Store) AppendEvents(ctx context.Context, f Fence, evs ...Event) error {
	if len(evs) == 0 {
		return nil
	}
	now := time.Now()
	lease, err := s.leaseForEvents(ctx, now)
	if err != nil {
		return err
	}
	ops := make([]clientv3.Op, 0, len(evs))
	for i := range evs {
		e := &evs[i]
		if e.Time.IsZero() {
			e.Time = now
		}
		e.ID = s.eventID(e.Time)
		e.Message = redact.Text(e.Message) // no repository credentials in the log
		if e.Pass != nil {
			p := *e.Pass
			p.Summary, p.Reason = redact.Text(p.Summary), redact.Text(p.Reason)
			p.Errors = slices.Clone(p.Errors)
			for i := range p.Errors {
				p.Errors[i] = redact.Text(p.Errors[i])
			}
			e.Pass = &p
		}
		e.Evidence = redactEvidence(e.Evidence)
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encoding event: %w", err)
		}
		ops = append(ops, clientv3.OpPut(s.eventsDir()+e.ID, string(b), clientv3.WithLease(lease)))
	}
	for len(ops) > 0 {
		n := min(len(ops), 100) // etcd's default limit is 128 operations per transaction
		if _, err := s.commit(ctx, f, ops[:n]...); err != nil {
			if strings.Contains(err.Error(), "requested lease not found") {
				s.events.lease.Store(nil) // revoked or expired: the next append grants another
			}
			return fmt.Errorf("writing events: %w", err)
		}
		ops = ops[n:]
	}
	k := uint64(len(evs))
	if n := s.events.appends.Add(k); n/trimEvery != (n-k)/trimEvery {
		// The events are written: a trim that fails now is done at a
		// later one.
		_ = s.TrimEvents(ctx, MaxEvents)
	}
	return nil
}

// note records what a person asked for. The change is made already: a
// failure to record it is not the change's failure.
func (s *Store) note(ctx context.Context, e Event) {
	_ = s.AppendEvents(ctx, Fence{}, e)
}

// TrimEvents deletes the oldest events beyond max.
func (s *Store) TrimEvents(ctx context.Context, max int) error {
	dir := s.eventsDir()
	r, err := s.c.Get(ctx, dir, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("etcd: counting events: %w", err)
	}
	extra := r.Count - int64(max)
	if extra <= 0 {
		return nil
	}
	r, err = s.c.Get(ctx, dir, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithLimit(extra))
	if err != nil || len(r.Kvs) == 0 {
		return err
	}
	last := string(r.Kvs[len(r.Kvs)-1].Key)
	if _, err := s.c.Delete(ctx, dir, clientv3.WithRange(last+"\x00")); err != nil {
		return fmt.Errorf("etcd: trimming events: %w", err)
	}
	return nil
}

// ListEvents returns the events about name ("" for all), oldest first, at
// most limit of them (the newest; 0 for all), and the store revision read.
func (s *Store) ListEvents(ctx context.Context, name string, limit int) ([]Event, int64, error) {
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}
	if name == "" && limit > 0 {
		// The newest limit events only: read no more.
		opts = []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(int64(limit))}
	}
	r, err := s.c.Get(ctx, s.eventsDir(), opts...)
	if err != nil {
		return nil, 0, fmt.Errorf("etcd: listing events: %w", err)
	}
	out := make([]Event, 0, len(r.Kvs))
	for _, kv := range r.Kvs {
		var e Event
		if json.Unmarshal(kv.Value, &e) != nil || !e.About(name) {
			continue
		}
		e.Message = redact.Text(e.Message) // written by an older version
		out = append(out, e)
	}
	if name == "" && limit > 0 {
		slices.Reverse(out)
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, r.Header.Revision, nil
}

// WatchEvents sends the events about name ("" for all) written after
// revision rev, until ctx ends or the watch fails (compaction): the
// channel then closes and the caller lists again.
func (s *Store) WatchEvents(ctx context.Context, name string, rev int64) <-chan Event {
	out := make(chan Event, 64)
	go func() {
		defer close(out)
		for b := range s.WatchEventBatches(ctx, rev) {
			for _, e := range b.Events {
				if !e.About(name) {
					continue
				}
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// EventBatch is the events one write appended, at one store revision.
type EventBatch struct {
	Rev    int64
	Events []Event // in the order written
}

// batchEvents groups key-values of events by their store revision, in
// revision order (a watch and a sorted read both give them so).
func batchEvents(kvs []*mvccpb.KeyValue) []EventBatch {
	var out []EventBatch
	for _, kv := range kvs {
		var e Event
		if json.Unmarshal(kv.Value, &e) != nil {
			continue
		}
		e.Message = redact.Text(e.Message)
		if n := len(out); n == 0 || out[n-1].Rev != kv.ModRevision {
			out = append(out, EventBatch{Rev: kv.ModRevision})
		}
		out[len(out)-1].Events = append(out[len(out)-1].Events, e)
	}
	return out
}

// EventsSince returns the events still in the log that were written after
// store revision rev, in batches in the order written, and the store
// revision read (to watch from).
func (s *Store) EventsSince(ctx context.Context, rev int64) ([]EventBatch, int64, error) {
	r, err := s.c.Get(ctx, s.eventsDir(), clientv3.WithPrefix(), clientv3.WithMinModRev(rev+1))
	if err != nil {
		return nil, 0, fmt.Errorf("etcd: reading the events since revision %d: %w", rev, err)
	}
	kvs := r.Kvs
	// A batch is written in one transaction (IDs ascending within it):
	// sort by revision, then by key.
	slices.SortStableFunc(kvs, func(a, b *mvccpb.KeyValue) int {
		if a.ModRevision != b.ModRevision {
			return cmp.Compare(a.ModRevision, b.ModRevision)
		}
		return strings.Compare(string(a.Key), string(b.Key))
	})
	return batchEvents(kvs), r.Header.Revision, nil
}

// WatchEventBatches sends the batches of events written after store
// revision rev, until ctx ends or the watch fails (compaction): the
// channel then closes, and the caller reads EventsSince its last batch.
func (s *Store) WatchEventBatches(ctx context.Context, rev int64) <-chan EventBatch {
	out := make(chan EventBatch, 16)
	go func() {
		defer close(out)
		wc := s.c.Watch(clientv3.WithRequireLeader(ctx), s.eventsDir(), clientv3.WithPrefix(), clientv3.WithRev(rev+1),
			clientv3.WithFilterDelete())
		for wr := range wc {
			if wr.Err() != nil {
				return
			}
			kvs := make([]*mvccpb.KeyValue, 0, len(wr.Events))
			for _, we := range wr.Events {
				kvs = append(kvs, we.Kv)
			}
			for _, b := range batchEvents(kvs) {
				select {
				case out <- b:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

func (s *Store) cursorKey(name string) string { return s.prefix + "/cursors/" + name }

// Cursor returns the store revision a follower of the event log named
// name last recorded (PutCursor), and found true; when it recorded none,
// the current store revision and found false.
func (s *Store) Cursor(ctx context.Context, name string) (rev int64, found bool, err error) {
	r, err := s.c.Get(ctx, s.cursorKey(name))
	if err != nil {
		return 0, false, fmt.Errorf("etcd: reading the cursor %s: %w", name, err)
	}
	if len(r.Kvs) == 0 {
		return r.Header.Revision, false, nil
	}
	rev, err = strconv.ParseInt(string(r.Kvs[0].Value), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("the cursor %s: %q is not a store revision: %w", name, r.Kvs[0].Value, err)
	}
	return rev, true, nil
}

// PutCursor records, fenced, that the follower named name is done with
// the events up to store revision rev.
func (s *Store) PutCursor(ctx context.Context, name string, rev int64, f Fence) error {
	if _, err := s.commit(ctx, f, clientv3.OpPut(s.cursorKey(name), strconv.FormatInt(rev, 10))); err != nil {
		return fmt.Errorf("writing the cursor %s: %w", name, err)
	}
	return nil
}
