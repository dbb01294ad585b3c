package sync

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kaylee-gitops/kaylee/store"
)

func TestEvents(t *testing.T) {
	res := &Result{Source: "team-a", Revision: "0123456789", Short: "main@0123456", Changes: []Change{
		{Name: "web", Action: Create, File: "web.yaml"},
		{Name: "api", Action: Update, File: "api.yaml", Diff: []string{"replicas: 2 → 3"}},
		{Name: "old", Action: Prune},
		{Name: "db", Action: Unchanged, File: "db.yaml"},
	}}
	quiet := &Result{Source: "team-a", Revision: "0123456789", Changes: []Change{{Name: "db", Action: Unchanged}}}
	bad := &Result{Source: "team-a", Revision: "0123456789", Errors: []store.SyncError{{File: "x.yaml", Line: 2, Message: "replicas: not a number"}}}
	at := func(result string) *store.SyncAttempt {
		return &store.SyncAttempt{Source: "team-a", Result: result, Revision: "0123456789", Leader: "agent-1", Message: "why"}
	}
	otherRefusal := at(store.AttemptRefused)
	otherRefusal.Message = "another why"
	rewound := &Result{Source: "team-a", Revision: "0123456789", Short: "main@0123456", Changes: []Change{{Name: "web", Action: Update, File: "web.yaml"}},
		Rewound: &Rewind{From: "abcdef0123", FromRef: "main", To: "0123456789", ToRef: "main", AllowedBy: "--allow-rewind"}}
	tests := []struct {
		name      string
		res       *Result
		prev, now *store.SyncAttempt
		want      []string
	}{
		{"changes", res, at(store.AttemptSynced), at(store.AttemptSynced),
			[]string{"synced team-a", "stored web", "stored api", "pruned old"}},
		{"nothing changed", quiet, at(store.AttemptSynced), at(store.AttemptSynced), nil},
		{"first failure", nil, at(store.AttemptSynced), at(store.AttemptFailed), []string{"sync-failed team-a"}},
		{"failure again is not repeated", nil, at(store.AttemptFailed), at(store.AttemptFailed), nil},
		{"failure after a restart of the loop", nil, nil, at(store.AttemptRefused), []string{"sync-failed team-a"}},
		{"recovered", quiet, at(store.AttemptUnverified), at(store.AttemptSynced), []string{"sync-ok team-a"}},
		{"file errors", bad, at(store.AttemptSynced), at(store.AttemptFileErrors), []string{"sync-failed team-a"}},
		{"after a suspension", quiet, at(store.AttemptSuspended), at(store.AttemptSynced), nil},
		{"the same refusal is not repeated", nil, at(store.AttemptRefused), at(store.AttemptRefused), nil},
		{"another refusal is told", nil, at(store.AttemptRefused), otherRefusal, []string{"sync-failed team-a"}},
		{"a rewind allowed", rewound, at(store.AttemptSynced), at(store.AttemptSynced), []string{"rewound team-a", "synced team-a", "stored web"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs := Events(tt.res, nil, tt.prev, tt.now)
			var got []string
			for _, e := range evs {
				got = append(got, e.Kind+" "+e.Unit+map[bool]string{true: e.Source}[e.Unit == ""])
				if e.By != "agent-1" || e.Source != "team-a" {
					t.Errorf("event %+v: want by agent-1, source team-a", e)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("events = %q, want %q", got, tt.want)
			}
		})
	}
	evs := Events(bad, nil, nil, at(store.AttemptFileErrors))
	if len(evs) != 1 || !strings.Contains(evs[0].Message, "x.yaml:2: replicas: not a number") {
		t.Errorf("file errors event %+v: want the file, line and why", evs)
	}
	evs = Events(rewound, nil, nil, at(store.AttemptSynced))
	if want := "rewound from main@abcdef0 (abcdef0123) to main@0123456 (0123456789), which does not descend from it; allowed by --allow-rewind"; len(evs) == 0 || evs[0].Message != want {
		t.Errorf("rewound event %+v: want %q", evs, want)
	}
}

func TestEventsClipLongDiffs(t *testing.T) {
	long := strings.Repeat("é", 400)
	res := &Result{Revision: "r", Changes: []Change{{Name: "web", Action: Update, File: "web.yaml", Diff: []string{"~ env: " + long}}}}
	evs := Events(res, nil, nil, &store.SyncAttempt{Source: "s", Result: store.AttemptSynced})
	msg := evs[1].Message
	if len(msg) > 400 || !strings.HasSuffix(msg, "…") || !utf8.ValidString(msg) {
		t.Errorf("stored event message of %d bytes (valid UTF-8: %v): want it clipped at a rune, marked …", len(msg), utf8.ValidString(msg))
	}
}

// The events that tell a pass's outcome carry what it did, as
// notifications tell it; the events of single units do not.
func TestEventsCarryThePass(t *testing.T) {
	at := func(result, msg string) *store.SyncAttempt {
		return &store.SyncAttempt{Source: "team-a", Ref: "main", Result: result, Revision: "0123456789", Message: msg}
	}
	rewind := Rewind{From: "abcdef0123", FromRef: "main", To: "0123456789", ToRef: "main", AllowedBy: "--allow-rewind"}
	mixed := &Result{Source: "team-a", Revision: "0123456789", Short: "main@0123456", Changes: []Change{
		{Name: "web", Action: Create, File: "web.yaml"}, {Name: "api", Action: Update, File: "api.yaml"}, {Name: "old", Action: Prune}},
		Errors: []store.SyncError{{File: "x.yaml", Line: 2, Message: "replicas: not a number"}}, Rewound: &rewind}
	refused := &RewindError{Source: "team-a", Rewind: rewind}
	tests := []struct {
		name string
		res  *Result
		err  error
		a    *store.SyncAttempt
		kind string
		want store.PassOutcome
	}{
		{"applied with file errors and a rewind", mixed, nil, at(store.AttemptFileErrors, "1 file error"), store.EventSynced, store.PassOutcome{
			Ref: "main", Result: store.AttemptFileErrors, Summary: mixed.Summary(), Reason: "1 file error", Created: 1, Updated: 1, Pruned: 1,
			Errors: []string{"x.yaml:2: replicas: not a number"}, RewoundFrom: "abcdef0123"}},
		{"a rewind refused", nil, refused, at(store.AttemptRefused, refused.Error()), store.EventSyncFailed, store.PassOutcome{
			Ref: "main", Result: store.AttemptRefused, Reason: refused.Error(), RewoundFrom: "abcdef0123"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var found bool
			for _, e := range Events(tt.res, tt.err, nil, tt.a) {
				switch {
				case e.Kind == tt.kind:
					found = true
					if !reflect.DeepEqual(*e.Pass, tt.want) {
						t.Errorf("%s event's pass:\n%+v\nwant\n%+v", e.Kind, *e.Pass, tt.want)
					}
				case e.Unit != "" && e.Pass != nil:
					t.Errorf("the %s event of unit %s carries the pass", e.Kind, e.Unit)
				}
			}
			if !found {
				t.Errorf("no %s event", tt.kind)
			}
		})
	}
}
