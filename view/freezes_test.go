package view

import (
	"fmt"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

func TestFreezeTarget(t *testing.T) {
	sources, units := []string{"team", "web"}, []string{"web", "api"}
	for _, tc := range []struct{ name, kind, want string }{
		{"team", "", "source"},
		{"api", "", "unit"},
		{"web", "", `error: "web" is both a source and a unit: say which`},
		{"web", store.FreezeUnit, "unit"},
		{"web", store.FreezeSource, "source"},
		{"api", store.FreezeSource, `error: "api" is not a source: sources are team, web; units are api, web`},
		{"nope", "", `error: "nope" is not a source or a unit: sources are team, web; units are api, web`},
	} {
		got, err := FreezeTarget(tc.name, tc.kind, sources, units)
		if err != nil {
			got = "error: " + err.Error()
		}
		if got != tc.want {
			t.Errorf("FreezeTarget(%q, %q) = %s, want %s", tc.name, tc.kind, got, tc.want)
		}
	}
}

func TestParseUntil(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ in, want string }{
		{"", "0001-01-01T00:00:00Z"},
		{"2h", "2026-12-03T14:00:00Z"},
		{"2026-12-24T18:00:00+01:00", "2026-12-24T17:00:00Z"},
		{"-1h", `error: "-1h": a duration must be more than 0`},
		{"2026-12-01T00:00:00Z", `error: "2026-12-01T00:00:00Z" is past`},
		{"friday", `error: "friday" is neither a time (2026-12-24T18:00:00+01:00, RFC 3339) nor a duration (2h)`},
	} {
		v, err := ParseUntil(tc.in, now)
		got := v.Format(time.RFC3339)
		if err != nil {
			got = "error: " + err.Error()
		}
		if got != tc.want {
			t.Errorf("ParseUntil(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestActiveFreezes(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC) // a Saturday
	weekend := deploy.FreezeWindow{Schedule: "0 18 * * FRI", Duration: "62h", TimeZone: "Europe/Berlin", Reason: "weekend"}
	records := map[string]*store.SyncRecord{
		"team":  {Freeze: []deploy.FreezeWindow{weekend}, Frozen: &store.FrozenRevision{Revision: "abc"}},
		"other": {Freeze: []deploy.FreezeWindow{{Schedule: "0 0 1 1 *", Duration: "24h"}}},
	}
	units := []*store.Unit{{Name: "db", Spec: deploy.Spec{Name: "db", Freeze: []deploy.FreezeWindow{{Schedule: "0 0 * * SAT", Duration: "48h", Reason: "db weekend"}}}}}
	manual := []*store.ManualFreeze{
		{Kind: store.FreezeUnit, Name: "web", Reason: "release", By: "ann@laptop"},
		{Kind: store.FreezeSource, Name: "old", Until: now.Add(-time.Hour)}, // over
	}
	var got []string
	for _, f := range ActiveFreezes(records, units, manual, now) {
		got = append(got, fmt.Sprintf("%s %s %s %s %q %s", f.Kind, f.Name, f.Origin, f.Until.Format(time.RFC3339), f.Reason, f.Held))
	}
	want := []string{
		`unit web manual 0001-01-01T00:00:00Z "release" `,
		`source team window 2026-12-07T07:00:00Z "weekend" abc`,
		`unit db window 2026-12-07T00:00:00Z "db weekend" `,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got\n%v\nwant\n%v", got, want)
	}
}
