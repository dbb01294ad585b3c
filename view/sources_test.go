package view

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/view/viewtest"
)

// Sources shows no repository credentials, even those an older version
// wrote into etcd as they were: the repository and the last attempt's
// message are masked.
func TestSourcesMaskCredentials(t *testing.T) {
	const raw = "https://ghp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA@git.example.com/units.git"
	r := &viewtest.Mem{
		Records:  map[string]*store.SyncRecord{"a": {Source: "a", URL: raw, Ref: "main", Revision: "abc"}},
		Attempts: map[string]*store.SyncAttempt{"a": {Source: "a", Result: "failed", Message: "listing refs of " + raw + ": EOF"}},
	}
	all, err := Sources(context.Background(), r)
	if err != nil || len(all) != 1 {
		t.Fatalf("Sources: %+v %v", all, err)
	}
	const shown = "https://***@git.example.com/units.git"
	if s := all[0]; s.Repo != shown || s.Attempt.Message != "listing refs of "+shown+": EOF" || strings.Contains(s.Attempt.Message, "ghp_") {
		t.Errorf("source a: repo %q, message %q; want both masked", s.Repo, s.Attempt.Message)
	}
	if r.Attempts["a"].Message != "listing refs of "+raw+": EOF" {
		t.Error("Sources changed the attempt it read")
	}
}

// A source shows whatever of it there is: a record, an attempt, a leader.
func TestSources(t *testing.T) {
	at := time.Date(2026, 12, 2, 17, 0, 0, 0, time.UTC)
	r := &viewtest.Mem{
		Records: map[string]*store.SyncRecord{"team-a": {Source: "team-a", URL: "file:///srv/a", Ref: "main", Revision: "0123456789", Time: at,
			Inventory: map[string]string{"web": "web.yaml", "db": "db.yaml"}, Errors: []store.SyncError{{File: "db.yaml", Message: "bad"}}}},
		Attempts: map[string]*store.SyncAttempt{
			"team-b": {Source: "team-b", Ref: "dev", Result: store.AttemptSuspended},
		},
		Leaders: map[string]string{"team-a": "agent-1", "team-c": "agent-2"},
	}
	all, err := Sources(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Name, Repo, Ref, Rev, Leader string
		Units                        []string
		Errors                       int
		Suspended                    bool
	}
	var got []row
	for _, s := range all {
		got = append(got, row{s.Name, s.Repo, s.Ref, s.Revision, s.Leader, s.Units, len(s.Errors), s.Suspended})
	}
	want := []row{
		{"team-a", "file:///srv/a", "main", "0123456789", "agent-1", []string{"db", "web"}, 1, false},
		{"team-b", "", "dev", "", "", []string{}, 0, true},
		{"team-c", "", "", "", "agent-2", []string{}, 0, false},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sources\n got %+v\nwant %+v", got, want)
	}
}
