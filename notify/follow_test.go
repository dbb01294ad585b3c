package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// The table: each kind of event told, as receivers got it before
// notifications came from the event log; the others not told.
func TestFromEvent(t *testing.T) {
	when := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	base := store.Event{ID: "ev-1", Time: when, Source: "team", Revision: "r2"}
	ev := func(kind string, pass *store.PassOutcome, with func(*store.Event)) store.Event {
		e := base
		e.Kind, e.Pass = kind, pass
		if with != nil {
			with(&e)
		}
		return e
	}
	rollout := func(e *store.Event) { e.Unit, e.SpecHash, e.Message = "web", "h2", "why" }
	wrote := &store.PassOutcome{Ref: "main", Result: store.AttemptSynced, Summary: "main@r2: 1 created", Created: 1, Updated: 2, Pruned: 3}
	fileErrs := &store.PassOutcome{Ref: "main", Result: store.AttemptFileErrors, Summary: "s", Reason: "1 file error", Updated: 1, Errors: []string{"x.yaml:2: bad"}}
	fileErrsOnly := &store.PassOutcome{Ref: "main", Result: store.AttemptFileErrors, Reason: "1 file error", Errors: []string{"x.yaml:2: bad"}}
	rewound := &store.PassOutcome{Ref: "main", Result: store.AttemptSynced, Summary: "s; rewound from", Reason: "rewound from", Updated: 1, RewoundFrom: "r1"}
	rewoundQuiet := &store.PassOutcome{Ref: "main", Result: store.AttemptSynced, Reason: "rewound from", RewoundFrom: "r1"}
	refused := &store.PassOutcome{Ref: "main", Result: store.AttemptRefused, Reason: "does not descend; nothing was written", RewoundFrom: "r1"}
	recovered := &store.PassOutcome{Ref: "main", Result: store.AttemptSynced}
	sync := Event{Kind: KindSync, Time: when, ID: "ev-1", Source: "team", Revision: "r2", Ref: "main"}
	with := func(e Event, f func(*Event)) *Event { f(&e); return &e }
	tests := []struct {
		name string
		in   store.Event
		want *Event // nil: not told
	}{
		{"a pass that wrote units", ev(store.EventSynced, wrote, nil), with(sync, func(e *Event) {
			e.Result, e.Summary, e.Created, e.Updated, e.Pruned = "synced", "main@r2: 1 created", 1, 2, 3
		})},
		{"a pass that wrote units with file errors", ev(store.EventSynced, fileErrs, nil), with(sync, func(e *Event) {
			e.Result, e.Summary, e.Reason, e.Updated, e.Errors = "file-errors", "s", "1 file error", 1, []string{"x.yaml:2: bad"}
		})},
		{"its file errors: told by its synced event", ev(store.EventSyncFailed, fileErrs, nil), nil},
		{"file errors in a pass that wrote nothing", ev(store.EventSyncFailed, fileErrsOnly, nil), with(sync, func(e *Event) {
			e.Result, e.Reason, e.Errors = "file-errors", "1 file error", []string{"x.yaml:2: bad"}
		})},
		{"a rewind allowed that wrote units", ev(store.EventSynced, rewound, nil), with(sync, func(e *Event) {
			e.Result, e.Summary, e.Reason, e.Updated, e.RewoundFrom = "synced", "s; rewound from", "rewound from", 1, "r1"
		})},
		{"its rewound event: told by its synced event", ev(store.EventRewound, rewound, nil), nil},
		{"a rewind allowed that wrote nothing", ev(store.EventRewound, rewoundQuiet, nil), with(sync, func(e *Event) {
			e.Result, e.Reason, e.RewoundFrom = "synced", "rewound from", "r1"
		})},
		{"a rewind refused", ev(store.EventSyncFailed, refused, nil), with(sync, func(e *Event) {
			e.Result, e.Reason, e.RewoundFrom = "refused", "does not descend; nothing was written", "r1"
		})},
		{"a recovery", ev(store.EventSyncOK, recovered, nil), with(sync, func(e *Event) { e.Result = "synced" })},
		{"a recovery that wrote units: told by its synced event", ev(store.EventSyncOK, wrote, nil), nil},
		{"a failure written by an older version", ev(store.EventSyncFailed, nil, func(e *store.Event) { e.Message = "failed: git: no route" }),
			&Event{Kind: KindSync, Time: when, ID: "ev-1", Source: "team", Revision: "r2", Result: "failed", Reason: "git: no route"}},
		{"a rollout started", ev(store.EventRolloutStarted, nil, rollout),
			&Event{Kind: KindRollout, Time: when, ID: "ev-1", Source: "team", Revision: "r2", Unit: "web", SpecHash: "h2", Result: "started", Reason: "why"}},
		{"a rollout succeeded", ev(store.EventRolloutSucceeded, nil, rollout),
			&Event{Kind: KindRollout, Time: when, ID: "ev-1", Source: "team", Revision: "r2", Unit: "web", SpecHash: "h2", Result: "succeeded", Reason: "why"}},
		{"a rollout failed", ev(store.EventRolloutFailed, nil, rollout),
			&Event{Kind: KindRollout, Time: when, ID: "ev-1", Source: "team", Revision: "r2", Unit: "web", SpecHash: "h2", Result: "failed", Reason: "why"}},
		{"a rollback", ev(store.EventRolledBack, nil, rollout),
			&Event{Kind: KindRollout, Time: when, ID: "ev-1", Source: "team", Revision: "r2", Unit: "web", SpecHash: "h2", Result: "rolled-back", Reason: "why"}},
		{"a unit stored", ev(store.EventStored, nil, rollout), nil},
		{"a fleet unit created", ev(store.EventCreated, nil, rollout), nil},
		{"a change that replaces no replica", ev(store.EventChanged, nil, rollout), nil},
		{"a rollback asked for", ev(store.EventRollbackRequested, nil, rollout), nil},
		{"a revision a freeze held", ev(store.EventFrozen, &store.PassOutcome{Ref: "main", Result: store.AttemptFrozen, Summary: "s"}, func(e *store.Event) { e.Message = "held: weekend" }),
			with(sync, func(e *Event) { e.Result, e.Summary, e.Reason = "frozen", "s", "held: weekend" })},
		{"a unit's change a freeze held", ev(store.EventFrozen, nil, func(e *store.Event) { e.Unit, e.Message = "web", "held" }),
			&Event{Kind: KindSync, Time: when, ID: "ev-1", Source: "team", Revision: "r2", Unit: "web", Result: "frozen", Reason: "held"}},
		{"a pass forced through a freeze", ev(store.EventFreezeOverridden, wrote, func(e *store.Event) { e.Message, e.By = "bob@desk forced", "bob@desk" }),
			with(sync, func(e *Event) {
				e.Result, e.Summary, e.Reason, e.Created, e.Updated, e.Pruned = "freeze-overridden", "main@r2: 1 created", "bob@desk forced", 1, 2, 3
			})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := FromEvent(tt.in)
			switch {
			case tt.want == nil && ok:
				t.Errorf("told as %+v, want not told", got)
			case tt.want != nil && !ok:
				t.Errorf("not told, want %+v", *tt.want)
			case tt.want != nil && !reflect.DeepEqual(got, *tt.want):
				t.Errorf("told as\n%+v\nwant\n%+v", got, *tt.want)
			}
		})
	}
}

// recorder is a real HTTP receiver that keeps what it got, in order.
type recorder struct {
	URL string
	mu  sync.Mutex
	got []Event
	ids map[string]int // delivery ID → times received
}

func newRecorder(t *testing.T) *recorder { return newSlowRecorder(t, 0) }

// newSlowRecorder answers each notification after delay.
func newSlowRecorder(t *testing.T, delay time.Duration) *recorder {
	r := &recorder{ids: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		defer time.Sleep(delay)
		body, _ := io.ReadAll(req.Body)
		var e Event
		if err := json.Unmarshal(body, &e); err != nil || req.Header.Get(DeliveryHeader) != e.ID {
			t.Errorf("bad notification: %v %s", err, body)
		}
		r.mu.Lock()
		r.got = append(r.got, e)
		r.ids[e.ID]++
		r.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// waitCount waits until the receiver got n notifications.
func (r *recorder) waitCount(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for r.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the receiver got %d notifications, want %d: %v", r.count(), n, r.reasons())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *recorder) reasons() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.got {
		out = append(out, e.Reason)
	}
	if len(out) > 20 {
		out = append([]string{"…"}, out[len(out)-20:]...)
	}
	return out
}

// follower runs one process's follower until the returned stop is called
// (its ctx cancelled, as when the process stops); stop returns once Run
// did.
func follower(t *testing.T, s *store.Store, id string, r *recorder) (stop func()) {
	t.Helper()
	f, err := NewFollower(s, []Target{{Endpoint: Endpoint{URL: r.URL}}}, FollowOptions{ID: id, TTL: 2 * time.Second,
		FlushEvery: 50 * time.Millisecond, Notifier: Options{Log: slog.New(slog.DiscardHandler), FirstBackoff: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitLeads waits until id leads the notifications and has its cursor.
func waitLeads(t *testing.T, s *store.Store, id string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		who, _ := s.LeaderID(context.Background(), store.NotifyElection)
		_, found, _ := s.Cursor(context.Background(), cursorName)
		if who == id && found {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not lead the notifications (leader %q, cursor found %v)", id, who, found)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitCursor waits until the cursor is at the last event appended.
func waitCursor(t *testing.T, s *store.Store) {
	t.Helper()
	batches, _, err := s.EventsSince(t.Context(), 0)
	if err != nil || len(batches) == 0 {
		t.Fatalf("events: %v %v", batches, err)
	}
	last := batches[len(batches)-1].Rev
	deadline := time.Now().Add(5 * time.Second)
	for {
		rev, _, err := s.Cursor(t.Context(), cursorName)
		if err == nil && rev >= last {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("the cursor is at %d (%v), want %d", rev, err, last)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rolloutEvent is a rollout event, its message numbered.
func rolloutEvent(kind string, i int) store.Event {
	return store.Event{Kind: kind, Unit: "web", SpecHash: fmt.Sprintf("h%d", i), Message: fmt.Sprint("event ", i)}
}

// The leader tells the events appended, in order; stopped, a second
// process takes over from the cursor: it tells the events appended while
// nobody led and after, none twice and none lost; a rollback is told; a
// quiet restart tells nothing.
func TestFollowerFailover(t *testing.T) {
	e := etcdtest.New(t)
	s := store.New(e.Client(t), "/kaylee-test")
	ctx := t.Context()
	rcv := newRecorder(t)
	appendN := func(from, to int) {
		t.Helper()
		for i := from; i <= to; i++ {
			kind := []string{store.EventRolloutStarted, store.EventRolloutSucceeded, store.EventRolloutFailed, store.EventRolledBack}[i%4]
			// Each with an event not told, in the same batch.
			if err := s.AppendEvents(ctx, store.Fence{}, rolloutEvent(kind, i), store.Event{Kind: store.EventCreated, Unit: "web"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Events appended before any follower ran are not told.
	appendN(100, 101)

	stopA := follower(t, s, "a", rcv)
	waitLeads(t, s, "a")
	appendN(1, 4)
	rcv.waitCount(t, 4)
	waitCursor(t, s) // a got the receiver's answers too: they are done
	stopA()
	appendN(5, 7) // while nobody leads
	follower(t, s, "b", rcv)
	waitLeads(t, s, "b")
	appendN(8, 9)
	rcv.waitCount(t, 9)
	time.Sleep(500 * time.Millisecond) // for duplicates to come, if any

	rcv.mu.Lock()
	var reasons []string
	for _, n := range rcv.got {
		reasons = append(reasons, n.Reason)
		if c := rcv.ids[n.ID]; c != 1 {
			t.Errorf("notification %s (%s) received %d times", n.ID, n.Reason, c)
			rcv.ids[n.ID] = 1 // said once
		}
	}
	var want []string
	for i := 1; i <= 9; i++ {
		want = append(want, fmt.Sprint("event ", i))
	}
	if !reflect.DeepEqual(reasons, want) {
		t.Errorf("notifications in order:\n%q\nwant\n%q", reasons, want)
	}
	var rolledBack bool
	for _, n := range rcv.got {
		rolledBack = rolledBack || n.Kind == KindRollout && n.Result == "rolled-back" && n.Unit == "web" && n.SpecHash == "h3"
	}
	rcv.mu.Unlock()
	if !rolledBack {
		t.Errorf("no notification of the rollback of web (event 3)")
	}
}

// A restart with no new event tells nothing.
func TestFollowerQuietRestart(t *testing.T) {
	e := etcdtest.New(t)
	s := store.New(e.Client(t), "/kaylee-test")
	rcv := newRecorder(t)
	stop := follower(t, s, "a", rcv)
	waitLeads(t, s, "a")
	if err := s.AppendEvents(t.Context(), store.Fence{}, rolloutEvent(store.EventRolloutStarted, 1)); err != nil {
		t.Fatal(err)
	}
	rcv.waitCount(t, 1)
	waitCursor(t, s)
	stop()
	follower(t, s, "b", rcv)
	waitLeads(t, s, "b")
	time.Sleep(time.Second)
	if n := rcv.count(); n != 1 {
		t.Errorf("after a quiet restart the receiver got %d notifications, want 1: %v", n, rcv.reasons())
	}
}

// A new leader with a backlog larger than an endpoint's queue tells it
// all, none dropped: it reads no more events while MaxPending are being
// sent.
func TestFollowerBacklogNotDropped(t *testing.T) {
	e := etcdtest.New(t)
	s := store.New(e.Client(t), "/kaylee-test")
	rcv := newRecorder(t)
	stop := follower(t, s, "a", rcv)
	waitLeads(t, s, "a")
	stop()
	const n = 300 // written in batches of 100, while nobody leads
	var evs []store.Event
	for i := 1; i <= n; i++ {
		evs = append(evs, rolloutEvent(store.EventRolloutStarted, i))
	}
	if err := s.AppendEvents(t.Context(), store.Fence{}, evs...); err != nil {
		t.Fatal(err)
	}
	follower(t, s, "b", rcv)
	rcv.waitCount(t, n)
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.ids) != n {
		t.Errorf("%d distinct notifications, want %d", len(rcv.ids), n)
	}
}

// A leader stopped (its process shutting down) while it sends finishes the
// notifications it had begun, within a grace period, before it gives up
// its leadership: the next leader sends none of them again.
func TestFollowerStopFinishesWhatItSends(t *testing.T) {
	e := etcdtest.New(t)
	s := store.New(e.Client(t), "/kaylee-test")
	rcv := newSlowRecorder(t, 300*time.Millisecond)
	stopA := follower(t, s, "a", rcv)
	waitLeads(t, s, "a")
	for i := 1; i <= 3; i++ {
		if err := s.AppendEvents(t.Context(), store.Fence{}, rolloutEvent(store.EventRolloutStarted, i)); err != nil {
			t.Fatal(err)
		}
	}
	rcv.waitCount(t, 1) // the first is being answered
	stopA()
	follower(t, s, "b", rcv)
	waitLeads(t, s, "b")
	rcv.waitCount(t, 3)
	time.Sleep(time.Second) // for duplicates to come, if any
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for id, c := range rcv.ids {
		if c != 1 {
			t.Errorf("notification %s received %d times", id, c)
		}
	}
	if len(rcv.got) != 3 {
		t.Errorf("the receiver got %d notifications, want 3", len(rcv.got))
	}
}

// The first leader ever, elected after its process started (another
// process, with no endpoint of its own, held the election), tells the
// events appended since its process started: an agent's first sync pass
// is told even when its election comes late. Events from before it
// started are not told.
func TestFollowerFirstLeaderTellsFromItsStart(t *testing.T) {
	e := etcdtest.New(t)
	s := store.New(e.Client(t), "/kaylee-test")
	rcv := newRecorder(t)
	if err := s.AppendEvents(t.Context(), store.Fence{}, rolloutEvent(store.EventRolloutStarted, 0)); err != nil {
		t.Fatal(err)
	}
	// Another process leads, and writes no cursor.
	hold, release := context.WithCancel(t.Context())
	held := make(chan struct{})
	holder := make(chan struct{})
	go func() {
		defer close(holder)
		_ = s.Lead(hold, store.NotifyElection, "holder", 2*time.Second, slog.New(slog.DiscardHandler), func(ctx context.Context, _ store.Fence) error {
			close(held)
			<-ctx.Done()
			return nil
		})
	}()
	<-held
	follower(t, s, "a", rcv)
	time.Sleep(200 * time.Millisecond) // a campaigns
	for i := 1; i <= 3; i++ {
		if err := s.AppendEvents(t.Context(), store.Fence{}, rolloutEvent(store.EventRolloutStarted, i)); err != nil {
			t.Fatal(err)
		}
	}
	release()
	<-holder
	waitLeads(t, s, "a")
	rcv.waitCount(t, 3)
	time.Sleep(300 * time.Millisecond) // for event 0 to come, if it does
	if got := rcv.reasons(); !reflect.DeepEqual(got, []string{"event 1", "event 2", "event 3"}) {
		t.Errorf("the first leader told %q, want the events since its process started", got)
	}
}
