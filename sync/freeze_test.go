package sync

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// Thursday 3 December 2026, and the weekend after it in Berlin.
var (
	thursday = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	saturday = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	monday   = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	weekend  = deploy.FreezeWindow{Schedule: "0 18 * * FRI", Duration: "62h", TimeZone: "Europe/Berlin", Reason: "weekend"}
)

func webUnit(image string, extra string) string {
	return "name: web\napps:\n- image: " + image + "\n" + extra
}

// loopAt is a loop of the test's source whose passes happen at now.
func (e *env) loopAt(now *time.Time, o Options) *Loop {
	o.Source = "units"
	o.Now = func() time.Time { return *now }
	return &Loop{Fetcher: e.src, Store: e.store, Options: o, ID: "test"}
}

// events lists the events of the log as "kind unit/source: message".
func (e *env) events(kinds ...string) []store.Event {
	e.t.Helper()
	evs, _, err := e.store.ListEvents(context.Background(), "", 0)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []store.Event
	for _, ev := range evs {
		for _, k := range kinds {
			if ev.Kind == k {
				out = append(out, ev)
			}
		}
	}
	return out
}

func (e *env) record() *store.SyncRecord {
	e.t.Helper()
	r, err := e.store.GetSyncRecord(context.Background(), "units")
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// TestFreezeWindowHoldsARevision: a commit made during a window of the
// source is fetched, recorded and told, not applied; after the window
// the next pass applies it.
func TestFreezeWindowHoldsARevision(t *testing.T) {
	e := newEnv(t)
	now := thursday
	l := e.loopAt(&now, Options{Freeze: []deploy.FreezeWindow{weekend}})
	v1 := e.commit(map[string]string{"web.yaml": webUnit("web:1", "")})
	if rep := l.Pass(context.Background(), store.Fence{}); rep.Err != nil || rep.Outcome() != store.AttemptSynced {
		t.Fatalf("thursday: %v %s", rep.Err, rep.Outcome())
	}
	v2 := e.commit(map[string]string{"web.yaml": webUnit("web:2", "")})
	now = saturday
	rep := l.Pass(context.Background(), store.Fence{})
	if rep.Err != nil || rep.Outcome() != store.AttemptFrozen {
		t.Fatalf("saturday: %v %s", rep.Err, rep.Outcome())
	}
	if got := e.stored()["web"]; !strings.Contains(got, "web:1") {
		t.Fatalf("a frozen revision was applied: %s", got)
	}
	rec := e.record()
	if !rec.Time.Equal(thursday) || rec.Created != 1 {
		t.Fatalf("the record's time and counts are those of the revision applied: %v, %d created", rec.Time, rec.Created)
	}
	if rec.Revision != v1 || rec.Frozen == nil || rec.Frozen.Revision != v2 ||
		rec.Frozen.Reason != "window 0 18 * * FRI for 62h (Europe/Berlin): weekend" || !rec.Frozen.Until.Equal(time.Date(2026, 12, 7, 7, 0, 0, 0, time.UTC)) {
		t.Fatalf("record: revision %s, frozen %+v", rec.Revision, rec.Frozen)
	}
	if got := rep.Result.Summary(); !strings.Contains(got, "0 created, 0 updated, 0 pruned, 0 unchanged, 1 held by a freeze") {
		t.Fatalf("summary %q", got)
	}
	frozen := e.events(store.EventFrozen)
	if len(frozen) != 1 || frozen[0].Revision != v2 || frozen[0].Source != "units" || frozen[0].Pass == nil || frozen[0].Pass.Result != store.AttemptFrozen ||
		!strings.Contains(frozen[0].Message, "recorded, not applied: window 0 18 * * FRI for 62h (Europe/Berlin): weekend, until 2026-12-07T07:00:00Z (1 to update)") {
		t.Fatalf("frozen events: %+v", frozen)
	}
	// Another pass in the window tells nothing new.
	if rep := l.Pass(context.Background(), store.Fence{}); rep.Outcome() != store.AttemptFrozen {
		t.Fatalf("second saturday pass: %s", rep.Outcome())
	}
	if n := len(e.events(store.EventFrozen)); n != 1 {
		t.Fatalf("%d frozen events after a second pass", n)
	}
	now = monday
	if rep := l.Pass(context.Background(), store.Fence{}); rep.Err != nil || rep.Outcome() != store.AttemptSynced || rep.Result.Count(Update) != 1 {
		t.Fatalf("monday: %v %s", rep.Err, rep.Outcome())
	}
	if got := e.stored()["web"]; !strings.Contains(got, "web:2") {
		t.Fatalf("not applied after the window: %s", got)
	}
	if rec := e.record(); rec.Revision != v2 || rec.Frozen != nil {
		t.Fatalf("record after: %s %+v", rec.Revision, rec.Frozen)
	}
	if n := len(e.events(store.EventSyncOK)); n != 0 {
		t.Fatalf("a freeze ending is no recovery: %d sync-ok", n)
	}
}

// TestManualFreezeAndOverride: kaylee freeze SOURCE holds; an override
// (kaylee sync --now --force) applies once, told with who; unfreeze
// lets the next pass apply.
func TestManualFreezeAndOverride(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	now := time.Now()
	l := e.loopAt(&now, Options{})
	e.commit(map[string]string{"web.yaml": webUnit("web:1", "")})
	if rep := l.Pass(ctx, store.Fence{}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	if err := e.store.PutFreeze(ctx, &store.ManualFreeze{Kind: store.FreezeSource, Name: "units", Reason: "release 4.2", By: "ann@laptop", Time: now}); err != nil {
		t.Fatal(err)
	}
	v2 := e.commit(map[string]string{"web.yaml": webUnit("web:2", "")})
	rep := l.Pass(ctx, store.Fence{})
	if rep.Outcome() != store.AttemptFrozen || rep.Result.Frozen.Reason != "kaylee freeze by ann@laptop: release 4.2" {
		t.Fatalf("manual freeze: %s %+v", rep.Outcome(), rep.Result.Frozen)
	}
	if !strings.Contains(e.stored()["web"], "web:1") {
		t.Fatal("applied through a manual freeze")
	}
	// Forced: kaylee sync --now --force writes an override.
	if err := e.store.PutFreezeOverride(ctx, "units", "bob@desk"); err != nil {
		t.Fatal(err)
	}
	// A one-off pass (kaylee sync --once in CI, kaylee plan) neither uses
	// nor takes the override waiting for the loop.
	if rep := e.loopAt(&now, Options{OneOff: true}).Pass(ctx, store.Fence{}); rep.Outcome() != store.AttemptFrozen {
		t.Fatalf("a one-off pass used the loop's override: %s", rep.Outcome())
	}
	if left, _ := e.store.FreezeOverrides(ctx); len(left) != 1 {
		t.Fatalf("a one-off pass took the loop's override: %+v", left)
	}
	rep = l.Pass(ctx, store.Fence{})
	if rep.Err != nil || rep.Outcome() != store.AttemptSynced || !strings.Contains(e.stored()["web"], "web:2") {
		t.Fatalf("override: %v %s %s", rep.Err, rep.Outcome(), e.stored()["web"])
	}
	ov := e.events(store.EventFreezeOverridden)
	if len(ov) != 1 || ov[0].By != "bob@desk" || ov[0].Revision != v2 ||
		!strings.Contains(ov[0].Message, "bob@desk forced") || !strings.Contains(ov[0].Message, "1 updated") ||
		!strings.Contains(ov[0].Message, "source units: kaylee freeze by ann@laptop: release 4.2") {
		t.Fatalf("override events: %+v", ov)
	}
	if left, _ := e.store.FreezeOverrides(ctx); len(left) != 0 {
		t.Fatalf("the override was not taken: %+v", left)
	}
	// The override was once: the next commit is held again.
	e.commit(map[string]string{"web.yaml": webUnit("web:3", "")})
	if rep := l.Pass(ctx, store.Fence{}); rep.Outcome() != store.AttemptFrozen {
		t.Fatalf("after the override: %s", rep.Outcome())
	}
	if ok, err := e.store.DeleteFreeze(ctx, store.FreezeSource, "units", "ann@laptop"); !ok || err != nil {
		t.Fatalf("unfreeze: %v %v", ok, err)
	}
	if rep := l.Pass(ctx, store.Fence{}); rep.Outcome() != store.AttemptSynced || !strings.Contains(e.stored()["web"], "web:3") {
		t.Fatalf("after unfreeze: %s", rep.Outcome())
	}
	// OverrideFreeze (kaylee sync --once --force) does the same at once.
	if err := e.store.PutFreeze(ctx, &store.ManualFreeze{Kind: store.FreezeSource, Name: "units", Time: now}); err != nil {
		t.Fatal(err)
	}
	e.commit(map[string]string{"web.yaml": webUnit("web:4", "")})
	forced := e.loopAt(&now, Options{OverrideFreeze: "cy@ci"})
	if rep := forced.Pass(ctx, store.Fence{}); rep.Outcome() != store.AttemptSynced || rep.Result.OverriddenBy != "cy@ci" {
		t.Fatalf("--force: %s %+v", rep.Outcome(), rep.Result)
	}
	if ov := e.events(store.EventFreezeOverridden); len(ov) != 2 || ov[1].By != "cy@ci" {
		t.Fatalf("override events: %+v", ov)
	}
	// An override asked for when nothing is held is taken by the pass it
	// asked for: it does not let a later commit through.
	if err := e.store.PutFreezeOverride(ctx, "units", "bob@desk"); err != nil {
		t.Fatal(err)
	}
	if rep := l.Pass(ctx, store.Fence{}); rep.Err != nil || rep.Outcome() != store.AttemptSynced {
		t.Fatalf("a pass with nothing to hold: %v %s", rep.Err, rep.Outcome())
	}
	if left, _ := e.store.FreezeOverrides(ctx); len(left) != 0 {
		t.Fatalf("the override was not taken: %+v", left)
	}
	e.commit(map[string]string{"web.yaml": webUnit("web:5", "")})
	if rep := l.Pass(ctx, store.Fence{}); rep.Outcome() != store.AttemptFrozen || !strings.Contains(e.stored()["web"], "web:4") {
		t.Fatalf("a stale override went through: %s %s", rep.Outcome(), e.stored()["web"])
	}
}

// TestUnitFreezeHoldsOnlyThatUnit: a unit's own window (as stored: a
// commit cannot lift it) and kaylee freeze NAME hold only that unit.
func TestUnitFreezeHoldsOnlyThatUnit(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	now := thursday
	l := e.loopAt(&now, Options{})
	frozenWeb := webUnit("web:1", "freeze:\n- {schedule: \"0 18 * * FRI\", duration: 62h, timeZone: Europe/Berlin, reason: weekend}\n")
	e.commit(map[string]string{"web.yaml": frozenWeb, "api.yaml": "name: api\napps: [{image: api:1}]\n"})
	if rep := l.Pass(ctx, store.Fence{}); rep.Err != nil || rep.Result.Count(Create) != 2 {
		t.Fatalf("thursday: %v", rep.Err)
	}
	// The commit changes web and lifts its freeze: the stored windows hold.
	e.commit(map[string]string{"web.yaml": webUnit("web:2", ""), "api.yaml": "name: api\napps: [{image: api:2}]\n"})
	now = saturday
	rep := l.Pass(ctx, store.Fence{})
	if rep.Err != nil || rep.Outcome() != store.AttemptSynced {
		t.Fatalf("saturday: %v %s", rep.Err, rep.Outcome())
	}
	st := e.stored()
	if !strings.Contains(st["web"], "web:1") || !strings.Contains(st["api"], "api:2") {
		t.Fatalf("stored: %v", st)
	}
	rec := e.record()
	if f := rec.FrozenUnits["web"]; f == nil || f.Reason != "window 0 18 * * FRI for 62h (Europe/Berlin): weekend" || rec.Frozen != nil {
		t.Fatalf("record: %+v %+v", rec.FrozenUnits, rec.Frozen)
	}
	if fz := e.events(store.EventFrozen); len(fz) != 1 || fz[0].Unit != "web" ||
		!strings.Contains(fz[0].Message, "update held by the freeze of unit web (window 0 18 * * FRI for 62h (Europe/Berlin): weekend, until 2026-12-07T07:00:00Z)") {
		t.Fatalf("frozen events: %+v", fz)
	}
	l.Pass(ctx, store.Fence{})
	if n := len(e.events(store.EventFrozen)); n != 1 {
		t.Fatalf("%d frozen events after a second pass", n)
	}
	now = monday
	if rep := l.Pass(ctx, store.Fence{}); rep.Result.Count(Update) != 1 || !strings.Contains(e.stored()["web"], "web:2") {
		t.Fatalf("monday: %+v", rep.Result.Changes)
	}
	// kaylee freeze api: only api is held.
	if err := e.store.PutFreeze(ctx, &store.ManualFreeze{Kind: store.FreezeUnit, Name: "api", Until: monday.Add(time.Hour), Time: monday}); err != nil {
		t.Fatal(err)
	}
	e.commit(map[string]string{"web.yaml": webUnit("web:3", ""), "api.yaml": "name: api\napps: [{image: api:3}]\n"})
	l.Pass(ctx, store.Fence{})
	if st := e.stored(); !strings.Contains(st["web"], "web:3") || !strings.Contains(st["api"], "api:2") {
		t.Fatalf("stored: %v", st)
	}
	// The manual freeze ends at its until.
	now = monday.Add(2 * time.Hour)
	l.Pass(ctx, store.Fence{})
	if st := e.stored(); !strings.Contains(st["api"], "api:3") {
		t.Fatalf("after until: %v", st)
	}
}

// TestLoopAppliesWhenTheFreezeEnds: a loop whose interval is long makes a
// pass when the freeze that held its last one ends.
func TestLoopAppliesWhenTheFreezeEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newEnv(t)
	e.commit(map[string]string{"web.yaml": webUnit("web:1", "")})
	if err := e.store.PutFreeze(ctx, &store.ManualFreeze{Kind: store.FreezeSource, Name: "units", Until: time.Now().Add(2 * time.Second), Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	l := &Loop{Fetcher: e.src, Store: e.store, Options: Options{Source: "units"}, Interval: time.Hour, ID: "test"}
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, store.Fence{}) }()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(e.stored()["web"], "web:1") {
		if time.Now().After(deadline) {
			t.Fatalf("not applied 15s after a 2s freeze (interval 1h); record: %+v", e.record())
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	<-done
}

// A unit whose dependsOn names a unit a freeze holds is held too: it
// would otherwise roll out against its dependency's old version.
func TestUnitFreezeHoldsItsDependants(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	now := thursday
	l := e.loopAt(&now, Options{})
	e.commit(map[string]string{"db.yaml": "name: db\napps: [{image: db:1}]\n", "web.yaml": webUnit("web:1", "dependsOn: [db]\n"), "api.yaml": "name: api\napps: [{image: api:1}]\n"})
	if rep := l.Pass(ctx, store.Fence{}); rep.Err != nil || rep.Result.Count(Create) != 3 {
		t.Fatalf("first pass: %v %+v", rep.Err, rep.Result)
	}
	if err := e.store.PutFreeze(ctx, &store.ManualFreeze{Kind: store.FreezeUnit, Name: "db", Reason: "migration", Time: now}); err != nil {
		t.Fatal(err)
	}
	e.commit(map[string]string{"db.yaml": "name: db\napps: [{image: db:2}]\n", "web.yaml": webUnit("web:2", "dependsOn: [db]\n"), "api.yaml": "name: api\napps: [{image: api:2}]\n"})
	rep := l.Pass(ctx, store.Fence{})
	if rep.Err != nil {
		t.Fatal(rep.Err)
	}
	if st := e.stored(); !strings.Contains(st["db"], "db:1") || !strings.Contains(st["web"], "web:1") || !strings.Contains(st["api"], "api:2") {
		t.Fatalf("stored: %v (want db and web held, api applied)", st)
	}
	var note string
	for _, c := range rep.Result.Changes {
		if c.Name == "web" {
			note = c.Note
		}
	}
	if !strings.Contains(note, "update held by the freeze of unit web (its dependency db is held by a freeze: kaylee freeze") {
		t.Fatalf("web's change: %q", note)
	}
	if ok, err := e.store.DeleteFreeze(ctx, store.FreezeUnit, "db", "ann@laptop"); !ok || err != nil {
		t.Fatalf("unfreeze: %v %v", ok, err)
	}
	l.Pass(ctx, store.Fence{})
	if st := e.stored(); !strings.Contains(st["db"], "db:2") || !strings.Contains(st["web"], "web:2") {
		t.Fatalf("after unfreeze: %v", st)
	}
}

// The safety rules judge a revision before a freeze holds it: one that
// would leave the source empty is refused during the freeze too (so
// kaylee plan says so now), not recorded as frozen and refused later.
func TestFrozenRevisionStillMeetsTheSafetyRules(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	now := thursday
	l := e.loopAt(&now, Options{MaxPrune: 0.5})
	e.commit(map[string]string{"web.yaml": webUnit("web:1", ""), "api.yaml": "name: api\napps: [{image: api:1}]\n"})
	if rep := l.Pass(ctx, store.Fence{}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	if err := e.store.PutFreeze(ctx, &store.ManualFreeze{Kind: store.FreezeSource, Name: "units", Reason: "release", Time: now}); err != nil {
		t.Fatal(err)
	}
	e.repo.Git("rm", "-q", "units/web.yaml", "units/api.yaml")
	e.commit(map[string]string{"notes.txt": "no units\n"})
	rep := l.Pass(ctx, store.Fence{})
	if rep.Outcome() != store.AttemptRefused || rep.Err == nil || !strings.Contains(rep.Err.Error(), "leave it empty") {
		t.Fatalf("a frozen revision that empties the source: %s %v", rep.Outcome(), rep.Err)
	}
	if st := e.stored(); len(st) != 2 {
		t.Fatalf("stored: %v", st)
	}
}
