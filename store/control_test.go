package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
)

func TestSuspendResume(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if _, err := s.Suspend(ctx, "web", "me"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("suspending an unknown unit: %v", err)
	}
	if _, err := s.PutUnit(ctx, spec("web", 2), Fence{}); err != nil {
		t.Fatal(err)
	}
	if fresh, err := s.Suspend(ctx, "web", "me@host"); err != nil || !fresh {
		t.Fatalf("suspend: %v %v", fresh, err)
	}
	if fresh, _ := s.Suspend(ctx, "web", "other"); fresh {
		t.Fatal("a second suspend replaced the first")
	}
	sus, err := s.Suspensions(ctx)
	if err != nil || sus["web"] == nil || sus["web"].By != "me@host" || time.Since(sus["web"].Time) > time.Minute {
		t.Fatalf("suspensions: %+v %v", sus, err)
	}
	if suspended, pinned, err := s.Resume(ctx, "web", "test"); err != nil || !suspended || pinned {
		t.Fatalf("resume: %v %v %v", suspended, pinned, err)
	}
	if sus, _ := s.Suspensions(ctx); len(sus) != 0 {
		t.Fatalf("still suspended: %+v", sus)
	}
}

func TestRollbackPicksAndPins(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	put := func(replicas int) []byte {
		t.Helper()
		sp := spec("web", replicas)
		if _, err := s.PutUnit(ctx, sp, Fence{}); err != nil {
			t.Fatal(err)
		}
		return sp.CanonicalJSON()
	}
	entry := func(rev int64, raw []byte, deployed bool) {
		t.Helper()
		e := &HistoryEntry{Unit: "web", Revision: rev, SpecHash: fmt.Sprintf("%08d", rev), Spec: raw, Outcome: OutcomeFailed}
		if deployed {
			e.Outcome, e.Deployed = OutcomeDeployed, time.Now()
		}
		if err := s.PutHistory(ctx, e, nil, Fence{}); err != nil {
			t.Fatal(err)
		}
	}
	r1 := put(1)
	if _, err := s.Rollback(ctx, "web", "", "me"); !errors.Is(err, ErrNoRevision) || !strings.Contains(err.Error(), "no history yet") {
		t.Fatalf("rollback without history: %v", err)
	}
	entry(1, r1, true)
	r2 := put(2)
	entry(2, r2, true)
	r3 := put(3)
	entry(3, r3, false) // its rollout failed: 2 still serves

	// Default: the newest deployed revision that is not what is stored.
	got, err := s.Rollback(ctx, "web", "", "me")
	if err != nil || got.Revision != 2 {
		t.Fatalf("default rollback: %+v %v", got, err)
	}
	u, _ := s.GetUnit(ctx, "web")
	if string(u.Raw) != string(r2) {
		t.Fatalf("stored after rollback: %s", u.Raw)
	}
	pins, _ := s.RollbackPins(ctx)
	if p := pins["web"]; p == nil || p.Revision != 2 || p.From != 3 || p.Replaced != ContentHash(r3) || p.By != "me" {
		t.Fatalf("pin: %+v", pins["web"])
	}
	// By spec hash and by number; what is stored is refused.
	if got, err := s.Rollback(ctx, "web", "00000001", "me"); err != nil || got.Revision != 1 {
		t.Fatalf("rollback by spec hash: %+v %v", got, err)
	}
	if _, err := s.Rollback(ctx, "web", "1", "me"); err == nil || !strings.Contains(err.Error(), "revision 1 is what is stored now") {
		t.Fatalf("rollback to the stored revision: %v", err)
	}
	if _, err := s.Rollback(ctx, "web", "7", "me"); !errors.Is(err, ErrNoRevision) || !strings.Contains(err.Error(), "revisions 1 to 3") {
		t.Fatalf("rollback to an unknown revision: %v", err)
	}
	// Writing the unit (kaylee run, sync) ends the rollback.
	put(4)
	if pins, _ := s.RollbackPins(ctx); len(pins) != 0 {
		t.Fatalf("pin left after a new spec was stored: %+v", pins)
	}
}

// ApplyUnits keeps each unit's writes (the unit, its rollback pin) in one
// transaction across batches.
func TestApplyUnitsBatchesByUnit(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	var specs []*deploy.Spec
	for i := range 120 {
		specs = append(specs, spec(fmt.Sprintf("u%03d", i), 1))
	}
	if err := s.ApplyUnits(ctx, specs, nil, Fence{}); err != nil {
		t.Fatal(err)
	}
	units, _, err := s.ListUnits(ctx)
	if err != nil || len(units) != 120 {
		t.Fatalf("%d units stored: %v", len(units), err)
	}
	var names []string
	for _, sp := range specs[:70] {
		names = append(names, sp.Name)
	}
	if err := s.ApplyUnits(ctx, nil, names, Fence{}); err != nil {
		t.Fatal(err)
	}
	if units, _, _ := s.ListUnits(ctx); len(units) != 50 {
		t.Fatalf("%d units left after deleting 70 of 120", len(units))
	}
}

// A scale (same spec hash, another replicas count) is a revision of its
// own; rollback goes to the version before it, and a spec hash asked for
// names the newest of its specs that is not the stored one.
func TestPickRollbackAfterScale(t *testing.T) {
	at := time.Date(2026, 12, 2, 18, 0, 0, 0, time.UTC)
	spec := func(image string, n int) []byte {
		return []byte(fmt.Sprintf(`{"name":"web","replicas":%d,"apps":[{"image":%q}]}`, n, image))
	}
	entries := []*HistoryEntry{
		{Revision: 1, SpecHash: "11111111", Spec: spec("web:1", 2), Deployed: at},
		{Revision: 2, SpecHash: "22222222", Spec: spec("web:2", 2), Deployed: at},
		{Revision: 3, SpecHash: "22222222", Spec: spec("web:2", 3), Deployed: at, Change: "replicas 2 → 3"},
	}
	stored := spec("web:2", 3)
	tests := []struct {
		to   string
		want int64
		err  string
	}{
		{"", 1, ""},         // the version before, not the count before
		{"22222222", 2, ""}, // the hash of the stored spec: its spec before the scale
		{"2", 2, ""},
		{"11111111", 1, ""},
		{"3", 0, "revision 3 is what is stored now"},
	}
	for _, tt := range tests {
		got, err := pickRollback(entries, stored, tt.to)
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("rollback to %q: %v, want an error containing %q", tt.to, err, tt.err)
			}
		case err != nil:
			t.Errorf("rollback to %q: %v", tt.to, err)
		case got.Revision != tt.want:
			t.Errorf("rollback to %q picks revision %d, want %d", tt.to, got.Revision, tt.want)
		}
	}
}

// Issue 25: after a switch of the cluster's default engine, the same
// stored JSON ran with another engine before: that revision is another
// version, the one rollback goes to, and the one stored now is refused.
func TestPickRollbackAfterDefaultEngineSwitch(t *testing.T) {
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	raw := []byte(`{"name":"web","replicas":2,"apps":[{"image":"web:1"}]}`)
	entries := []*HistoryEntry{
		{Revision: 1, SpecHash: "11111111", Spec: raw, Deployed: at},
		{Revision: 2, SpecHash: "22222222", Spec: raw, Engine: "docker", Deployed: at},
	}
	for _, tt := range []struct {
		to   string
		want int64
		err  string
	}{
		{"", 1, ""},
		{"1", 1, ""},
		{"11111111", 1, ""},
		{"2", 0, "revision 2 is what is stored now"},
	} {
		got, err := pickRollback(entries, raw, tt.to)
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("rollback to %q: %v, want an error containing %q", tt.to, err, tt.err)
			}
		case err != nil:
			t.Errorf("rollback to %q: %v", tt.to, err)
		case got.Revision != tt.want || got.ranWith() != "rkt":
			t.Errorf("rollback to %q picks revision %d (engine %s), want %d (rkt)", tt.to, got.Revision, got.ranWith(), tt.want)
		}
	}
}

// Issue 25: a rollback to a revision that ran with another engine than
// the scheduler's default now pins that engine; one that ran with the
// default pins none (it follows the default). The stored JSON is the
// revision's, byte for byte.
func TestRollbackPinsTheEngineItRanWith(t *testing.T) {
	for _, tt := range []struct {
		name, now string // the scheduler's default engine ("" : none published)
		ran       string // the revision's entry Engine
		want      string // the pin's Engine
	}{
		{"rkt before a switch to docker", "docker", "", "rkt"},
		{"docker before a switch back to rkt", "rkt", "docker", "docker"},
		{"docker, the default still", "docker", "docker", ""},
		{"rkt, no settings published", "", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			ctx := context.Background()
			sp := spec("web", 2)
			if _, err := s.PutUnit(ctx, sp, Fence{}); err != nil {
				t.Fatal(err)
			}
			raw := sp.CanonicalJSON()
			other := "podman"
			for i, e := range []*HistoryEntry{
				{Unit: "web", Revision: 1, SpecHash: "11111111", Spec: raw, Engine: tt.ran, Outcome: OutcomeDeployed, Deployed: time.Now()},
				{Unit: "web", Revision: 2, SpecHash: "22222222", Spec: raw, Engine: other, Outcome: OutcomeDeployed, Deployed: time.Now()},
			} {
				if err := s.PutHistory(ctx, e, nil, Fence{}); err != nil {
					t.Fatal(i, err)
				}
			}
			if tt.now != "" {
				if err := s.PutSchedulerSettings(ctx, &SchedulerSettings{DefaultEngine: tt.now}, Fence{}); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.Rollback(ctx, "web", "", "me")
			if err != nil || got.Revision != 1 {
				t.Fatalf("rollback: %+v %v", got, err)
			}
			pins, err := s.RollbackPins(ctx)
			if err != nil || pins["web"] == nil || pins["web"].Engine != tt.want {
				t.Fatalf("pin %+v (%v), want engine %q", pins["web"], err, tt.want)
			}
			if u, _ := s.GetUnit(ctx, "web"); string(u.Raw) != string(raw) {
				t.Fatalf("stored after rollback: %s, want %s", u.Raw, raw)
			}
			if p := pins["web"]; p.Restored != ContentHash(raw) {
				t.Errorf("pin's Restored %q, want the stored JSON's hash %s", p.Restored, ContentHash(raw))
			}
		})
	}
}
