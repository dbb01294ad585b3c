package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
)

// Notifications are derived from the event log: one process, the leader
// of store.NotifyElection, follows the events appended to it and tells
// the endpoints of those the table below names. It resumes from a cursor
// kept in etcd (the last store revision it is done with), so that a new
// leader tells what the old one had not told: nothing twice, nothing lost
// across a failover, as long as the events live (store.EventTTL).

// rule is how one kind of event is told.
type rule struct {
	kind   string // KindSync or KindRollout
	result string // Event.Result; "" for a sync pass: the pass's own result
	// when, if not nil, says whether the event is told; nil: always.
	when func(e *store.Event) bool
}

// rules maps the kinds of events told to their notification: telling a
// new kind is one row. Kinds not in it are not told. It is never written.
var rules = map[string]rule{
	// A pass that wrote units is told by its synced event, which says what
	// else the pass did (a rewind, file errors, a recovery): its other
	// events are told when it wrote nothing.
	store.EventSynced:     {kind: KindSync},
	store.EventRewound:    {kind: KindSync, when: wroteNothing},
	store.EventSyncOK:     {kind: KindSync, when: wroteNothing},
	store.EventSyncFailed: {kind: KindSync, when: func(e *store.Event) bool { return e.Pass == nil || !e.Pass.Changed() }},
	// Change freezes: a revision (or a unit's change) held, and a pass
	// forced through a freeze (its Reason names who).
	store.EventFrozen:           {kind: KindSync, result: store.AttemptFrozen},
	store.EventFreezeOverridden: {kind: KindSync, result: "freeze-overridden"},

	store.EventRolloutStarted:   {kind: KindRollout, result: "started"},
	store.EventRolloutSucceeded: {kind: KindRollout, result: "succeeded"},
	store.EventRolloutFailed:    {kind: KindRollout, result: "failed"},
	store.EventRolledBack:       {kind: KindRollout, result: "rolled-back"},
}

func wroteNothing(e *store.Event) bool { return !e.Pass.Changed() }

// FromEvent is the notification of an event of the log, and false when
// the event is not told. The notification's ID is the event's: a receiver
// that sees one ID twice may drop the second.
func FromEvent(e store.Event) (Event, bool) {
	r, ok := rules[e.Kind]
	if !ok || r.when != nil && !r.when(&e) {
		return Event{}, false
	}
	n := Event{Kind: r.kind, Time: e.Time, ID: e.ID, Source: e.Source, Revision: e.Revision, Result: r.result}
	switch r.kind {
	case KindSync:
		if p := e.Pass; p != nil {
			n.Ref, n.Summary, n.Reason, n.RewoundFrom = p.Ref, p.Summary, p.Reason, p.RewoundFrom
			n.Created, n.Updated, n.Pruned, n.Errors = p.Created, p.Updated, p.Pruned, p.Errors
			if n.Result == "" {
				n.Result = p.Result
			}
		}
		if n.Result == "" {
			// An event written without its pass (an older version):
			// its message is "RESULT: why", or says what it applied.
			n.Result, n.Reason = store.AttemptSynced, e.Message
			if e.Kind == store.EventSyncFailed {
				n.Result, n.Reason, _ = strings.Cut(e.Message, ": ")
			}
		}
		if e.Kind == store.EventFrozen || e.Kind == store.EventFreezeOverridden {
			n.Unit, n.Reason = e.Unit, e.Message
		}
	case KindRollout:
		n.Unit, n.SpecHash, n.Reason, n.Evidence = e.Unit, e.SpecHash, e.Message, e.Evidence
	}
	return n, true
}

// cursorName names the follower's cursor in the store.
const cursorName = "notify"

// Target is one endpoint and the kinds of notifications it takes.
type Target struct {
	Endpoint Endpoint
	// Wants reports whether the endpoint takes notifications of a kind
	// (KindSync, KindRollout); nil: all.
	Wants func(kind string) bool
}

// FollowOptions tune a Follower.
type FollowOptions struct {
	// ID names this process in the election.
	ID string
	// TTL is the leadership's lease: a leader that stops renewing it is
	// replaced after TTL. Default 10s.
	TTL time.Duration
	// FlushEvery is how often the cursor is written while events are
	// told; default 500ms. A leader that dies without stopping may have
	// told the events of its last FlushEvery again by the next leader
	// (with the same delivery ID).
	FlushEvery time.Duration
	// MaxPending bounds the notifications being sent at once (queued or
	// in flight, all endpoints together): while as many are, no more
	// events are read, so that a slow endpoint's queue does not overflow.
	// Default 128, which with batches of at most 100 events (see
	// store.AppendEvents) keeps within a Notifier's default queue of 256.
	MaxPending int
	// StopGrace is how long a leader that stops (its ctx ended while it
	// still leads) waits for the notifications it is sending before it
	// gives them up to the next leader; default 2s.
	StopGrace time.Duration
	// Notifier are the options of each endpoint's Notifier; its Log is
	// the follower's log too.
	Notifier Options
}

// Follower tells the endpoints of the events of the log, while its
// process leads store.NotifyElection.
type Follower struct {
	store   *store.Store
	targets []Target
	o       FollowOptions
	log     *slog.Logger
}

// NewFollower checks the targets' endpoints and the options.
func NewFollower(s *store.Store, targets []Target, o FollowOptions) (*Follower, error) {
	for _, t := range targets {
		if _, err := New([]Endpoint{t.Endpoint}, o.Notifier); err != nil {
			return nil, err
		}
	}
	if o.TTL <= 0 {
		o.TTL = 10 * time.Second
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = 500 * time.Millisecond
	}
	if o.StopGrace <= 0 {
		o.StopGrace = 2 * time.Second
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 128
	}
	log := o.Notifier.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Follower{store: s, targets: targets, o: o, log: log}, nil
}

// Run campaigns for the notifications' leadership and tells the events
// while it leads, until ctx ends. With no targets it returns at once
// without campaigning: a process with no endpoint never leads (it would
// move the cursor past events it told nobody).
func (f *Follower) Run(ctx context.Context) {
	if f == nil || len(f.targets) == 0 {
		return
	}
	// The store's revision as this process starts: the first leader ever
	// tells the events after it, those of the process's own first passes
	// included, however late its election comes.
	start, _, err := f.store.Cursor(ctx, cursorName)
	if err != nil {
		f.log.Warn("notifications: reading the store's revision at start", "err", err)
	}
	_ = f.store.Lead(ctx, store.NotifyElection, f.o.ID, f.o.TTL, f.log, func(ctx context.Context, fence store.Fence) error {
		return f.lead(ctx, fence, start)
	})
}

// lead tells events during one leadership, with Notifiers of its own: what
// they had not delivered when it ends is the next leader's to tell.
// start is the store's revision when the process started (0: unknown).
func (f *Follower) lead(ctx context.Context, fence store.Fence, start int64) error {
	// The notifiers outlive ctx by the grace of finish.
	nctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	t := &term{f: f, fence: fence, start: start, notifiers: make([]*Notifier, len(f.targets)), freed: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	for i, tg := range f.targets {
		n, err := New([]Endpoint{tg.Endpoint}, f.o.Notifier)
		if err != nil { // checked by NewFollower
			stop()
			wg.Wait()
			return err
		}
		t.notifiers[i] = n
		wg.Go(func() { n.Run(nctx) })
	}
	err := t.follow(ctx)
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.o.StopGrace+5*time.Second)
	defer cancel()
	t.finish(fctx)
	stop()
	wg.Wait()
	// What was delivered until the notifiers stopped is done: the cursor
	// says so, while this process still leads (it resigns after).
	if ferr := t.flush(fctx); ferr != nil && err == nil && ctx.Err() == nil {
		err = ferr
	}
	return err
}

// finish waits, up to StopGrace, for the notifications being sent to be
// done, when this process still leads: a shutdown leaves the next leader
// nothing begun to send again. A leadership lost ends at once: another
// process may be sending already.
func (t *term) finish(ctx context.Context) {
	if t.sending.Load() == 0 || t.f.o.StopGrace <= 0 {
		return
	}
	if _, err := t.f.store.Confirm(ctx, t.fence); err != nil {
		return
	}
	deadline := time.Now().Add(t.f.o.StopGrace)
	for t.sending.Load() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if n := t.sending.Load(); n > 0 {
		t.f.log.Warn("notifications: stopping with notifications not delivered: the next leader sends them", "notifications", n)
	}
}

// term is one leadership's state.
type term struct {
	f         *Follower
	fence     store.Fence
	notifiers []*Notifier
	pending   []*batch      // in revision order
	start     int64         // the store's revision when the process started; 0: unknown
	saved     int64         // the cursor as stored
	done      int64         // the last revision whose notifications are all done
	sending   atomic.Int64  // notifications sent and not done yet
	freed     chan struct{} // a notification is done: drain may send more
}

// batch is one batch of events being told.
type batch struct {
	rev  int64
	left atomic.Int64 // notifications not done yet
}

func (t *term) follow(ctx context.Context) error {
	s, log := t.f.store, t.f.log
	from, found, err := s.Cursor(ctx, cursorName)
	if err != nil {
		return err
	}
	if !found && t.start > 0 {
		from = min(from, t.start)
	}
	t.saved, t.done = from, from
	if !found {
		// The first leader ever starts from its process's start, not from
		// the whole log.
		log.Info("notifications: no cursor: telling the events since this process started", "revision", from)
		if err := s.PutCursor(ctx, cursorName, from, t.fence); err != nil {
			return err
		}
	} else {
		log.Info("notifications: telling the events after the cursor", "revision", from)
	}
	tick := time.NewTicker(t.f.o.FlushEvery)
	defer tick.Stop()
	for {
		// What the log holds after from, then what is appended after.
		backlog, rev, err := s.EventsSince(ctx, from)
		if err != nil {
			return err
		}
		backlog = append(backlog, store.EventBatch{Rev: rev}) // nothing more to tell up to rev
		wctx, cancel := context.WithCancel(ctx)
		ch := s.WatchEventBatches(wctx, rev)
		ended := t.drain(ctx, tick.C, &backlog, ch, &from)
		cancel()
		if ended != nil || ctx.Err() != nil {
			return ended
		}
		// The watch ended (compacted, or etcd lost its leader): read what
		// it missed, after a pause.
		log.Warn("notifications: the watch of the events ended: reading them again", "after", from)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// drain tells the backlog, then the batches of ch, flushing the cursor on
// each tick, until ctx ends (nil), ch closes (nil) or a flush fails. from
// follows the last batch told.
func (t *term) drain(ctx context.Context, tick <-chan time.Time, backlog *[]store.EventBatch, ch <-chan store.EventBatch, from *int64) error {
	for ctx.Err() == nil {
		ready := t.sending.Load() < int64(t.f.o.MaxPending)
		if ready && len(*backlog) > 0 {
			b := (*backlog)[0]
			*backlog = (*backlog)[1:]
			t.tell(b)
			*from = b.Rev
			continue
		}
		in := ch
		if !ready || len(*backlog) > 0 {
			in = nil // until the endpoints catch up
		}
		freed := t.freed
		if ready {
			freed = nil
		}
		select {
		case <-ctx.Done():
		case <-freed: // room again: go on with the backlog
		case <-tick:
			if err := t.flush(ctx); err != nil {
				return err
			}
		case b, ok := <-in:
			if !ok {
				return nil
			}
			t.tell(b)
			*from = b.Rev
		}
	}
	return nil
}

// tell sends the notifications of a batch to the endpoints that want them.
func (t *term) tell(eb store.EventBatch) {
	b := &batch{rev: eb.Rev}
	b.left.Store(1) // until all are sent
	for _, e := range eb.Events {
		n, ok := FromEvent(e)
		if !ok {
			continue
		}
		for i, tg := range t.f.targets {
			if tg.Wants != nil && !tg.Wants(n.Kind) {
				continue
			}
			b.left.Add(1)
			t.sending.Add(1)
			t.notifiers[i].SendThen(n, func() {
				t.sending.Add(-1)
				b.left.Add(-1)
				select {
				case t.freed <- struct{}{}:
				default:
				}
			})
		}
	}
	b.left.Add(-1)
	t.pending = append(t.pending, b)
}

// settle drops the batches done from the front of pending, moving done
// on, and returns how many are left.
func (t *term) settle() int {
	for len(t.pending) > 0 && t.pending[0].left.Load() == 0 {
		t.done = max(t.done, t.pending[0].rev)
		t.pending = t.pending[1:]
	}
	return len(t.pending)
}

// flush writes the cursor when it moved.
func (t *term) flush(ctx context.Context) error {
	t.settle()
	if t.done <= t.saved {
		return nil
	}
	if err := t.f.store.PutCursor(ctx, cursorName, t.done, t.fence); err != nil {
		if errors.Is(err, store.ErrNotLeader) {
			return fmt.Errorf("notifications: %w", err)
		}
		return err
	}
	t.saved = t.done
	return nil
}
