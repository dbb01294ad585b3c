package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestRolloutOf(t *testing.T) {
	tests := []struct {
		name string
		st   *Status
		want Rollout
	}{
		{"no status yet", nil, Rollout{Line: "web: waiting for the scheduler"}},
		{"status of the previous spec", &Status{Phase: PhaseRunning, SpecHash: "old", Running: 3, Desired: 3},
			Rollout{Line: "web: waiting for the scheduler"}},
		{"progressing", &Status{Phase: PhaseProgressing, SpecHash: "new", Running: 1, Desired: 3, Message: "rolling"},
			Rollout{Line: "web: progressing, 1/3 running: rolling"}},
		{"running", &Status{Phase: PhaseRunning, SpecHash: "new", Running: 3, Desired: 3, Message: "ok"},
			Rollout{Done: true, Line: "web: running, 3/3 running: ok"}},
		{"failed", &Status{Phase: PhaseFailed, SpecHash: "new", Running: 0, Desired: 3, Message: "crash loop"},
			Rollout{Done: true, Failed: true, Line: "web: failed, 0/3 running: crash loop"}},
		{"suspended is not done", &Status{Phase: PhaseSuspended, SpecHash: "new", Desired: 3},
			Rollout{Line: "web: suspended, 0/3 running: "}},
		// Issue 21, item 2: replicas 2 → 3 keeps the spec hash.
		{"status of the same spec with the old count of replicas", &Status{Phase: PhaseRunning, SpecHash: "new", Running: 2, Desired: 2},
			Rollout{Line: "web: waiting for the scheduler"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RolloutOf("web", tt.st, Want{Hash: "new", Replicas: 3}); got != tt.want {
				t.Errorf("RolloutOf = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestWithGit(t *testing.T) {
	records := map[string]*SyncRecord{
		"team-a": {Source: "team-a", Revision: "0123456789abcdef", Inventory: map[string]string{"web": "web.yaml", "db": "db.yaml"},
			Errors: []SyncError{{File: "db.yaml", Line: 3, Message: "replicas: not a number"}, {File: "other.yaml", Message: "bad"}}},
	}
	views := Views([]*Status{{Name: "web"}, {Name: "db"}, {Name: "adhoc"}}, records, Controls{})
	type row struct{ Mark, Rev, File string }
	var got []row
	for _, v := range views {
		got = append(got, row{v.GitMark(), v.ShortRevision(), v.File})
	}
	want := []row{{"team-a", "0123456", "web.yaml"}, {"team-a!", "0123456", "db.yaml"}, {"-", "", ""}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("views = %+v, want %+v", got, want)
	}
	if g := views[1].GitErrors; len(g) != 1 || g[0] != "db.yaml:3: replicas: not a number" {
		t.Errorf("db's git errors = %q, want only its own file's", g)
	}
}

func TestAllStatusesSynthesisesPending(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	for _, n := range []string{"b", "a"} {
		if _, err := s.PutUnit(ctx, spec(n, 1), Fence{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutStatus(ctx, &Status{Name: "a", Phase: PhaseRunning}, Fence{}); err != nil {
		t.Fatal(err)
	}
	// A unit removed from the store but still being deleted keeps its status.
	if err := s.PutStatus(ctx, &Status{Name: "gone", Phase: PhaseDeleting}, Fence{}); err != nil {
		t.Fatal(err)
	}
	all, err := s.AllStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, st := range all {
		got = append(got, st.Name+"="+st.Phase)
	}
	if want := []string{"a=running", "b=pending", "gone=deleting"}; !reflect.DeepEqual(got, want) {
		t.Errorf("statuses = %v, want %v", got, want)
	}
	if all[1].Message != NoSchedulerYet {
		t.Errorf("pending message = %q", all[1].Message)
	}
	if _, err := s.UnitStatus(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("UnitStatus(nope) = %v, want ErrNotFound", err)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://kaylee:s3cret@git.example.com/ops/units.git": "https://***@git.example.com/ops/units.git",
		"https://ghp_AAAA@git.example.com/ops/units.git":      "https://***@git.example.com/ops/units.git",
		"git@github.com:org/units.git":                        "git@github.com:org/units.git",
		"ssh://git@github.com/org/units.git":                  "ssh://git@github.com/org/units.git",
		"file:///srv/units":                                   "file:///srv/units",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// What people set on a unit shows in its view: the state and the note
// that tables put before the scheduler's message.
func TestViewsShowControls(t *testing.T) {
	at := time.Date(2026, 12, 2, 17, 0, 0, 0, time.UTC)
	records := map[string]*SyncRecord{"team-a": {Source: "team-a", Revision: "9c2d11f0000", Inventory: map[string]string{"web": "units/web.yaml"}}}
	pin := &RollbackPin{Unit: "web", Revision: 1, SpecHash: "3cbb8d9a", GitRevision: "4b1e0a2ffff", By: "ops@laptop"}
	sus := &Suspension{Unit: "web", Time: at, By: "ops@laptop"}
	tests := []struct {
		name      string
		phase     string
		source    bool
		c         Controls
		wantState string
		wantNote  string
		deployed  string // the spec hash the status says runs
	}{
		{"nothing set", PhaseRunning, true, Controls{}, PhaseRunning, "", ""},
		{"rolled back and running", PhaseRunning, true, Controls{RolledBack: map[string]*RollbackPin{"web": pin}}, StateRolledBack,
			"rolled back to revision 1 (git 4b1e0a2, spec 3cbb8d9a) by ops@laptop: git's 9c2d11f is not applied until units/web.yaml changes in git, or kaylee resume web", "3cbb8d9a"},
		{"rollback stored, not acted on yet: the spec it replaced still runs", PhaseRunning, true, Controls{RolledBack: map[string]*RollbackPin{"web": pin}}, PhaseRunning,
			"rolled back to revision 1 (git 4b1e0a2, spec 3cbb8d9a) by ops@laptop: git's 9c2d11f is not applied until units/web.yaml changes in git, or kaylee resume web", "77aa0000"},
		{"rolling back", PhaseProgressing, true, Controls{RolledBack: map[string]*RollbackPin{"web": pin}}, PhaseProgressing,
			"rolled back to revision 1 (git 4b1e0a2, spec 3cbb8d9a) by ops@laptop: git's 9c2d11f is not applied until units/web.yaml changes in git, or kaylee resume web", ""},
		{"rolled back, no git source", PhaseRunning, false, Controls{RolledBack: map[string]*RollbackPin{"web": {Revision: 2, SpecHash: "8ff9ef70"}}}, StateRolledBack,
			"rolled back to revision 2 (spec 8ff9ef70): until another spec is stored, or kaylee resume web", "8ff9ef70"},
		{"suspended, the scheduler has it", PhaseSuspended, true, Controls{Suspended: map[string]*Suspension{"web": sus}}, PhaseSuspended, "", ""},
		{"rolled back, then suspended: it runs the rolled-back revision", PhaseSuspended, true,
			Controls{Suspended: map[string]*Suspension{"web": sus}, RolledBack: map[string]*RollbackPin{"web": pin}}, PhaseSuspended,
			"rolled back to revision 1 (git 4b1e0a2, spec 3cbb8d9a) by ops@laptop: git's 9c2d11f is not applied until units/web.yaml changes in git, or kaylee resume web", "3cbb8d9a"},
		{"suspended, not taken up yet", PhaseRunning, true, Controls{Suspended: map[string]*Suspension{"web": sus}}, PhaseSuspended,
			"suspended by ops@laptop at 2026-12-02T17:00:00Z; no scheduler has taken it up yet (its last status follows)", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := records
			if !tt.source {
				recs = nil
			}
			v := Views([]*Status{{Name: "web", Phase: tt.phase, SpecHash: tt.deployed, Deployed: tt.deployed}}, recs, tt.c)[0]
			if v.State != tt.wantState || v.StateNote != tt.wantNote {
				t.Errorf("state %q, note %q\nwant %q, %q", v.State, v.StateNote, tt.wantState, tt.wantNote)
			}
			if rev := v.RunsRevision(); (rev == "4b1e0a2") != (tt.deployed == pin.SpecHash) {
				t.Errorf("runs revision %q while its state is %q", rev, v.State)
			}
		})
	}
}
