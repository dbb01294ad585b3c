package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RolloutOf("web", tt.st, "new"); got != tt.want {
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
