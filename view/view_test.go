package view

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/view/viewtest"
)

func TestRolloutOf(t *testing.T) {
	tests := []struct {
		name string
		st   *store.Status
		want Rollout
	}{
		{"no status yet", nil, Rollout{Line: "web: waiting for the scheduler"}},
		{"status of the previous spec", &store.Status{Phase: store.PhaseRunning, SpecHash: "old", Running: 3, Desired: 3},
			Rollout{Line: "web: waiting for the scheduler"}},
		{"progressing", &store.Status{Phase: store.PhaseProgressing, SpecHash: "new", Running: 1, Desired: 3, Message: "rolling"},
			Rollout{Line: "web: progressing, 1/3 running: rolling"}},
		{"running", &store.Status{Phase: store.PhaseRunning, SpecHash: "new", Running: 3, Desired: 3, Message: "ok"},
			Rollout{Done: true, Line: "web: running, 3/3 running: ok"}},
		{"failed", &store.Status{Phase: store.PhaseFailed, SpecHash: "new", Running: 0, Desired: 3, Message: "crash loop"},
			Rollout{Done: true, Failed: true, Line: "web: failed, 0/3 running: crash loop"}},
		{"suspended is not done", &store.Status{Phase: store.PhaseSuspended, SpecHash: "new", Desired: 3},
			Rollout{Line: "web: suspended, 0/3 running: "}},
		// Issue 21, item 2: replicas 2 → 3 keeps the spec hash.
		{"status of the same spec with the old count of replicas", &store.Status{Phase: store.PhaseRunning, SpecHash: "new", Running: 2, Desired: 2},
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

func TestJoinWithGit(t *testing.T) {
	records := map[string]*store.SyncRecord{
		"team-a": {Source: "team-a", Revision: "0123456789abcdef", Inventory: map[string]string{"web": "web.yaml", "db": "db.yaml"},
			Errors: []store.SyncError{{File: "db.yaml", Line: 3, Message: "replicas: not a number"}, {File: "other.yaml", Message: "bad"}}},
	}
	views := Join([]*store.Status{{Name: "web"}, {Name: "db"}, {Name: "adhoc"}}, records, Controls{})
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

// Units reads everything through the Reader: from a reader literal in
// memory come the states, notes, marks and messages tables show.
func TestUnitsFromReader(t *testing.T) {
	at := time.Date(2026, 12, 2, 17, 0, 0, 0, time.UTC)
	r := &viewtest.Mem{
		Units: []string{"web", "db", "adhoc", "held", "old"},
		Statuses: map[string]*store.Status{
			"web":  {Name: "web", Phase: store.PhaseRunning, SpecHash: "aa", Deployed: "aa", Desired: 2, Running: 2, Message: "2 of 2 running"},
			"db":   {Name: "db", Phase: store.PhaseFailed, SpecHash: "bb", Message: "crash loop"},
			"held": {Name: "held", Phase: store.PhaseRunning, SpecHash: "cc", Deployed: "cc", Message: "1 of 1 running"},
			"old":  {Name: "old", Phase: store.PhaseRunning, SpecHash: "3cbb8d9a", Deployed: "3cbb8d9a", Message: "1 of 1 running"},
			"gone": {Name: "gone", Phase: store.PhaseDeleting, Message: "destroying 1 fleet unit"},
		},
		Records: map[string]*store.SyncRecord{"team-a": {Source: "team-a", Revision: "9c2d11f0000",
			Inventory: map[string]string{"web": "units/web.yaml", "db": "units/db.yaml", "old": "units/old.yaml"},
			Errors:    []store.SyncError{{File: "units/db.yaml", Line: 2, Message: "replicas: not a number"}}}},
		Suspended: map[string]*store.Suspension{"held": {Unit: "held", Time: at, By: "ops@laptop"}},
		Pins:      map[string]*store.RollbackPin{"old": {Unit: "old", Revision: 1, SpecHash: "3cbb8d9a", GitRevision: "4b1e0a2ffff", By: "ops@laptop"}},
	}
	type row struct {
		Name, State, Mark, Runs, Message, Note string
	}
	want := []row{
		{"adhoc", store.PhasePending, "-", "", NoSchedulerYet, ""},
		{"db", store.PhaseFailed, "team-a!", "9c2d11f", "crash loop", ""},
		{"gone", store.PhaseDeleting, "-", "", "destroying 1 fleet unit", ""},
		{"held", store.PhaseSuspended, "-", "", "1 of 1 running",
			"suspended by ops@laptop at 2026-12-02T17:00:00Z; no scheduler has taken it up yet (its last status follows)"},
		{"old", StateRolledBack, "team-a", "4b1e0a2", "1 of 1 running",
			"rolled back to revision 1 (git 4b1e0a2, spec 3cbb8d9a) by ops@laptop: git's 9c2d11f is not applied until units/old.yaml changes in git, or kaylee resume old"},
		{"web", store.PhaseRunning, "team-a", "9c2d11f", "2 of 2 running", ""},
	}
	ctx := context.Background()
	all, err := Units(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	var got []row
	for _, v := range all {
		got = append(got, row{v.Name, v.State, v.GitMark(), v.RunsRevision(), v.Message, v.StateNote})
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("units\n got %q\nwant %q", got, want)
	}
	for _, w := range want {
		t.Run(w.Name, func(t *testing.T) {
			v, err := UnitOf(ctx, r, w.Name)
			if err != nil {
				t.Fatal(err)
			}
			if g := (row{v.Name, v.State, v.GitMark(), v.RunsRevision(), v.Message, v.StateNote}); g != w {
				t.Errorf("UnitOf = %q, want %q", g, w)
			}
		})
	}
	if _, err := UnitOf(ctx, r, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UnitOf(nope) = %v, want ErrNotFound", err)
	}
	broken := errors.New("etcd: no leader")
	if _, err := Units(ctx, &viewtest.Mem{Err: broken}); !errors.Is(err, broken) {
		t.Errorf("Units of a failing reader = %v, want its error", err)
	}
}

// What people set on a unit shows in its view: the state and the note
// that tables put before the scheduler's message.
func TestJoinShowsControls(t *testing.T) {
	at := time.Date(2026, 12, 2, 17, 0, 0, 0, time.UTC)
	records := map[string]*store.SyncRecord{"team-a": {Source: "team-a", Revision: "9c2d11f0000", Inventory: map[string]string{"web": "units/web.yaml"}}}
	pin := &store.RollbackPin{Unit: "web", Revision: 1, SpecHash: "3cbb8d9a", GitRevision: "4b1e0a2ffff", By: "ops@laptop"}
	sus := &store.Suspension{Unit: "web", Time: at, By: "ops@laptop"}
	const pinNote = "rolled back to revision 1 (git 4b1e0a2, spec 3cbb8d9a) by ops@laptop: git's 9c2d11f is not applied until units/web.yaml changes in git, or kaylee resume web"
	tests := []struct {
		name      string
		phase     string
		source    bool
		c         Controls
		wantState string
		wantNote  string
		deployed  string // the spec hash the status says runs
	}{
		{"nothing set", store.PhaseRunning, true, Controls{}, store.PhaseRunning, "", ""},
		{"rolled back and running", store.PhaseRunning, true, Controls{RolledBack: map[string]*store.RollbackPin{"web": pin}}, StateRolledBack, pinNote, "3cbb8d9a"},
		{"rollback stored, not acted on yet: the spec it replaced still runs", store.PhaseRunning, true,
			Controls{RolledBack: map[string]*store.RollbackPin{"web": pin}}, store.PhaseRunning, pinNote, "77aa0000"},
		{"rolling back", store.PhaseProgressing, true, Controls{RolledBack: map[string]*store.RollbackPin{"web": pin}}, store.PhaseProgressing, pinNote, ""},
		{"rolled back, no git source", store.PhaseRunning, false, Controls{RolledBack: map[string]*store.RollbackPin{"web": {Revision: 2, SpecHash: "8ff9ef70"}}}, StateRolledBack,
			"rolled back to revision 2 (spec 8ff9ef70): until another spec is stored, or kaylee resume web", "8ff9ef70"},
		{"suspended, the scheduler has it", store.PhaseSuspended, true, Controls{Suspended: map[string]*store.Suspension{"web": sus}}, store.PhaseSuspended, "", ""},
		{"rolled back, then suspended: it runs the rolled-back revision", store.PhaseSuspended, true,
			Controls{Suspended: map[string]*store.Suspension{"web": sus}, RolledBack: map[string]*store.RollbackPin{"web": pin}}, store.PhaseSuspended, pinNote, "3cbb8d9a"},
		{"suspended, not taken up yet", store.PhaseRunning, true, Controls{Suspended: map[string]*store.Suspension{"web": sus}}, store.PhaseSuspended,
			"suspended by ops@laptop at 2026-12-02T17:00:00Z; no scheduler has taken it up yet (its last status follows)", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := records
			if !tt.source {
				recs = nil
			}
			v := Join([]*store.Status{{Name: "web", Phase: tt.phase, SpecHash: tt.deployed, Deployed: tt.deployed}}, recs, tt.c)[0]
			if v.State != tt.wantState || v.StateNote != tt.wantNote {
				t.Errorf("state %q, note %q\nwant %q, %q", v.State, v.StateNote, tt.wantState, tt.wantNote)
			}
			if rev := v.RunsRevision(); (rev == "4b1e0a2") != (tt.deployed == pin.SpecHash) {
				t.Errorf("runs revision %q while its state is %q", rev, v.State)
			}
		})
	}
}

// A change to a unit git owns is refused with a sentence that names the
// owner and says what to do instead; units of kaylee run are not refused.
func TestOwnedErrors(t *testing.T) {
	records := map[string]*store.SyncRecord{"team-a": {Source: "team-a",
		URL: "https://kaylee:s3cret@git.example.com/ops/units.git", Ref: "main", Revision: "3f2a9c1d00",
		Inventory: map[string]string{"web": "prod/web.yaml"}}}
	const owner = `unit "web" is owned by prod/web.yaml in git source "team-a" (https://***@git.example.com/ops/units.git, main@3f2a9c1): `
	tests := []struct {
		verb string
		want string
	}{
		{"run", owner + "the next sync puts the file's version back. Commit the change to prod/web.yaml instead"},
		{"rm", owner + "removing it stops every replica, and the next sync creates it again. Delete prod/web.yaml in git instead (the sync prunes it)"},
		{"restart", owner + "git owns how it runs. Commit a change to prod/web.yaml to roll it"},
		{"scale", owner + "change prod/web.yaml in git instead"},
	}
	for _, tt := range tests {
		t.Run(tt.verb, func(t *testing.T) {
			oe := OwnedErrors(records, tt.verb, []string{"adhoc", "web"})
			if len(oe) != 1 || oe[0].Unit != "web" {
				t.Fatalf("refusals %+v, want web's only", oe)
			}
			if got := oe[0].Error(); got != tt.want {
				t.Errorf("refusal\n got %s\nwant %s", got, tt.want)
			}
		})
	}
	if w := (Ownership{Source: "team-b", File: "db.yaml"}).Where(); w != `db.yaml in git source "team-b"` {
		t.Errorf("Where without a record = %q", w)
	}
}

var (
	_ Reader       = (*viewtest.Mem)(nil)
	_ SourceReader = (*viewtest.Mem)(nil)
)
