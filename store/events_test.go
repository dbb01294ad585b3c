package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func kinds(evs []Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Kind + ":" + e.Unit + e.Source
	}
	return out
}

func TestEventLog(t *testing.T) {
	s, e := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.AppendEvents(ctx, Fence{},
		Event{Kind: EventSynced, Source: "team-a", Revision: "abc"},
		Event{Kind: EventStored, Unit: "web", Source: "team-a"},
		Event{Kind: EventCreated, Unit: "db", FleetUnit: "k2:db:1:2:0.service"},
	); err != nil {
		t.Fatal(err)
	}
	all, rev, err := s.ListEvents(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := kinds(all), []string{"synced:team-a", "stored:webteam-a", "created:db"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("events = %v, want %v (in the order written)", got, want)
	}
	for _, ev := range all {
		if ev.ID == "" || ev.Time.IsZero() {
			t.Errorf("event without ID or time: %+v", ev)
		}
	}
	if got, _, _ := s.ListEvents(ctx, "team-a", 0); len(got) != 2 {
		t.Errorf("events about team-a: %v, want the synced and stored ones", kinds(got))
	}
	if got, _, _ := s.ListEvents(ctx, "", 1); !reflect.DeepEqual(kinds(got), []string{"created:db"}) {
		t.Errorf("last event: %v", kinds(got))
	}

	// Each event lives on a lease of at least EventTTL.
	r, err := e.Client(t).Get(ctx, s.eventsDir()+all[0].ID)
	if err != nil || len(r.Kvs) != 1 {
		t.Fatalf("event key: %v %v", r, err)
	}
	ttl, err := e.Client(t).TimeToLive(ctx, clientv3.LeaseID(r.Kvs[0].Lease))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(ttl.TTL)*time.Second < EventTTL {
		t.Errorf("event lease TTL %ds, want at least %s", ttl.TTL, EventTTL)
	}

	// A watcher sees the events written after the revision listed, about
	// the name it asked for.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	ch := s.WatchEvents(wctx, "web", rev)
	if err := s.AppendEvents(ctx, Fence{}, Event{Kind: EventStopped, Unit: "db"}, Event{Kind: EventRolloutStarted, Unit: "web"}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-ch:
		if ev.Kind != EventRolloutStarted || ev.Unit != "web" {
			t.Errorf("watched %+v, want web's rollout-started only", ev)
		}
	case <-ctx.Done():
		t.Fatal("no event watched")
	}
}

func TestEventLogIsCapped(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	var evs []Event
	for i := range 130 {
		evs = append(evs, Event{Kind: EventCreated, Unit: fmt.Sprintf("u%03d", i)})
	}
	if err := s.AppendEvents(ctx, Fence{}, evs...); err != nil {
		t.Fatal(err)
	}
	if err := s.TrimEvents(ctx, 100); err != nil {
		t.Fatal(err)
	}
	all, _, err := s.ListEvents(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 100 || all[0].Unit != "u030" || all[99].Unit != "u129" {
		t.Fatalf("after trimming to 100: %d events, first %q, last %q; want the newest 100 (u030…u129)", len(all), all[0].Unit, all[len(all)-1].Unit)
	}
}

func TestDeposedLeaderWritesNoEvent(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := s.NewLeader(ctx, SchedulerElection, "agent-a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Campaign(ctx); err != nil {
		t.Fatal(err)
	}
	fence := a.Fence()
	if err := a.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendEvents(ctx, fence, Event{Kind: EventCreated, Unit: "x"}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("deposed leader's event: %v, want ErrNotLeader", err)
	}
	if all, _, _ := s.ListEvents(ctx, "", 0); len(all) != 0 {
		t.Fatalf("events %v written by a deposed leader", kinds(all))
	}
}

// Appending trims the log by itself: past MaxEvents, the oldest go.
func TestAppendEventsTrims(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	for b := range (MaxEvents + 100) / trimEvery {
		evs := make([]Event, trimEvery)
		for i := range evs {
			evs[i] = Event{Kind: EventCreated, Unit: fmt.Sprintf("u%05d", b*trimEvery+i)}
		}
		if err := s.AppendEvents(ctx, Fence{}, evs...); err != nil {
			t.Fatal(err)
		}
	}
	all, _, err := s.ListEvents(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != MaxEvents || all[0].Unit != "u00100" {
		t.Fatalf("%d events after %d appended, the oldest %q; want the newest %d (from u00100)", len(all), MaxEvents+100, all[0].Unit, MaxEvents)
	}
	last, _, _ := s.ListEvents(ctx, "", 3)
	if got := kinds(last); len(got) != 3 || last[2].Unit != fmt.Sprintf("u%05d", MaxEvents+99) {
		t.Errorf("the newest 3: %v, want the last 3 written, oldest first", last)
	}
}

// Repository credentials never reach the event log, the sync records or
// the attempts: they are masked as they are written, and an event an
// older version wrote with them is masked as it is read.
func TestRecordsHoldNoCredentials(t *testing.T) {
	s, e := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const raw = "http://kaylee:s3cretPW@git.example.com/units.git"
	const shown = "http://***@git.example.com/units.git"
	if err := s.PutSyncRecord(ctx, &SyncRecord{Source: "a", URL: raw, Revision: "abc"}, Fence{}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSyncAttempt(ctx, &SyncAttempt{Source: "a", Result: AttemptFailed, Message: "listing refs of " + raw + ": EOF"}, Fence{}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendEvents(ctx, Fence{}, Event{Kind: EventSyncFailed, Source: "a", Message: "failed: " + raw}); err != nil {
		t.Fatal(err)
	}
	old := `{"id":"0-old","kind":"sync-failed","source":"a","message":"failed: ` + raw + `"}`
	if _, err := e.Client(t).Put(ctx, DefaultPrefix+"/events/0-old", old); err != nil {
		t.Fatal(err)
	}
	r, err := e.Client(t).Get(ctx, DefaultPrefix+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range r.Kvs {
		if string(kv.Key) != DefaultPrefix+"/events/0-old" && strings.Contains(string(kv.Value), "s3cretPW") {
			t.Errorf("%s holds the password: %s", kv.Key, kv.Value)
		}
	}
	if rec, err := s.GetSyncRecord(ctx, "a"); err != nil || rec.URL != shown {
		t.Errorf("record URL = %v %v, want %s", rec, err, shown)
	}
	evs, _, err := s.ListEvents(ctx, "", 0)
	if err != nil || len(evs) != 2 {
		t.Fatalf("events: %v %v", evs, err)
	}
	for _, ev := range evs {
		if ev.Message != "failed: "+shown {
			t.Errorf("event %s: %q, want the URL masked", ev.ID, ev.Message)
		}
	}
}

// A follower of the log reads the events after a revision in the batches
// they were appended in, watches the next ones, and keeps its cursor under
// its leadership's fence.
func TestEventBatchesAndCursor(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start, found, err := s.Cursor(ctx, "notify")
	if err != nil || found || start <= 0 {
		t.Fatalf("no cursor yet: %d %v %v, want the store's revision, not found", start, found, err)
	}
	if err := s.AppendEvents(ctx, Fence{}, Event{Kind: EventCreated, Unit: "a"}, Event{Kind: EventCreated, Unit: "b"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendEvents(ctx, Fence{}, Event{Kind: EventRolledBack, Unit: "c", Message: "https://user:pw@git.example/x"}); err != nil {
		t.Fatal(err)
	}
	batches, rev, err := s.EventsSince(ctx, start)
	if err != nil || len(batches) != 2 || rev != batches[1].Rev {
		t.Fatalf("events since %d: %+v (read at %d) %v, want 2 batches", start, batches, rev, err)
	}
	if got := kinds(batches[0].Events); len(got) != 2 || batches[0].Events[0].Unit != "a" || batches[0].Events[1].Unit != "b" {
		t.Errorf("first batch %+v, want a then b", batches[0].Events)
	}
	if strings.Contains(batches[1].Events[0].Message, "pw") {
		t.Errorf("a password in the event read: %q", batches[1].Events[0].Message)
	}
	if later, _, _ := s.EventsSince(ctx, batches[0].Rev); len(later) != 1 || later[0].Events[0].Unit != "c" {
		t.Errorf("events since the first batch: %+v, want c's", later)
	}
	ch := s.WatchEventBatches(ctx, rev)
	if err := s.AppendEvents(ctx, Fence{}, Event{Kind: EventCreated, Unit: "d"}, Event{Kind: EventCreated, Unit: "e"}); err != nil {
		t.Fatal(err)
	}
	if b := <-ch; len(b.Events) != 2 || b.Events[0].Unit != "d" || b.Rev <= rev {
		t.Errorf("watched batch %+v, want d and e after %d", b, rev)
	}

	l, err := s.NewLeader(ctx, NotifyElection, "a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Campaign(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCursor(ctx, "notify", rev, l.Fence()); err != nil {
		t.Fatal(err)
	}
	if got, found, err := s.Cursor(ctx, "notify"); got != rev || !found || err != nil {
		t.Errorf("cursor %d %v %v, want %d", got, found, err, rev)
	}
	fence := l.Fence()
	if err := l.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCursor(ctx, "notify", rev+1, fence); !errors.Is(err, ErrNotLeader) {
		t.Errorf("a deposed leader's cursor: %v, want ErrNotLeader", err)
	}
}
