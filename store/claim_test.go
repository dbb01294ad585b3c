package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// A write with Fence.ClaimsAt goes through only while no sync record was
// written after that revision, and says which condition failed.
func TestClaimsAt(t *testing.T) {
	ctx := context.Background()
	rec := func(source string, units ...string) *SyncRecord {
		r := &SyncRecord{Source: source, Inventory: map[string]string{}}
		for _, u := range units {
			r.Inventory[u] = u + ".yaml"
		}
		return r
	}
	for _, tt := range []struct {
		name      string
		meanwhile func(s *Store) error // after the read, before the write
		deposed   bool
		want      error
	}{
		{name: "nothing written", meanwhile: func(*Store) error { return nil }},
		{name: "a unit written", meanwhile: func(s *Store) error { _, err := s.PutUnit(ctx, spec("other", 1), Fence{}); return err }},
		{name: "another source's record", want: ErrClaimRace,
			meanwhile: func(s *Store) error { return s.PutSyncRecord(ctx, rec("b", "web"), Fence{}) }},
		{name: "its own record", want: ErrClaimRace,
			meanwhile: func(s *Store) error { return s.PutSyncRecord(ctx, rec("a"), Fence{}) }},
		{name: "deposed", deposed: true, want: ErrNotLeader, meanwhile: func(s *Store) error {
			return s.PutSyncRecord(ctx, rec("b", "web"), Fence{})
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			if err := s.PutSyncRecord(ctx, rec("a"), Fence{}); err != nil {
				t.Fatal(err)
			}
			l, err := s.NewLeader(ctx, SchedulerElection, "agent-a", time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Campaign(ctx); err != nil {
				t.Fatal(err)
			}
			f := l.Fence()
			_, rev, err := s.ListUnits(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.meanwhile(s); err != nil {
				t.Fatal(err)
			}
			if tt.deposed {
				if err := l.Resign(ctx); err != nil {
					t.Fatal(err)
				}
			}
			f.ClaimsAt = rev
			err = s.ApplyUnitsWithRecord(ctx, []*deploy.Spec{spec("web", 1)}, nil, rec("a", "web"), f)
			if !errors.Is(err, tt.want) || (err != nil) != (tt.want != nil) {
				t.Fatalf("write: %v, want %v", err, tt.want)
			}
			_, gerr := s.GetUnit(ctx, "web")
			if written := gerr == nil; written != (tt.want == nil) {
				t.Errorf("web written: %v (%v), want %v", written, gerr, tt.want == nil)
			}
		})
	}
}
