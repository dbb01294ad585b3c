package view

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// Freeze is one change freeze that holds now: a window of a source (its
// config's freeze:, as its record tells) or of a unit (its stored
// freeze:), or a manual freeze (kaylee freeze).
type Freeze struct {
	Kind   string    `json:"kind"` // store.FreezeSource or store.FreezeUnit
	Name   string    `json:"name"`
	Origin string    `json:"origin"`           // "window" or "manual"
	Until  time.Time `json:"until,omitzero"`   // zero: until kaylee unfreeze
	Reason string    `json:"reason"`           // the window, or the manual freeze's reason
	By     string    `json:"by,omitempty"`     // who set a manual freeze
	Held   string    `json:"held,omitempty"`   // a source's revision held, when one is
	Since  time.Time `json:"since,omitzero"`   // when a manual freeze was set
	Window string    `json:"window,omitempty"` // the window, for Origin window
}

// ActiveFreezes lists the freezes that hold at now: manual ones first,
// then the windows of sources and units, by kind and name.
func ActiveFreezes(records map[string]*store.SyncRecord, units []*store.Unit, manual []*store.ManualFreeze, now time.Time) []Freeze {
	var out []Freeze
	held := func(kind, name string) string {
		if r := records[name]; kind == store.FreezeSource && r != nil && r.Frozen != nil {
			return r.Frozen.Revision
		}
		return ""
	}
	for _, m := range manual {
		if m.Holds(now) {
			out = append(out, Freeze{Kind: m.Kind, Name: m.Name, Origin: "manual", Until: m.Until, Reason: m.Reason, By: m.By,
				Since: m.Time, Held: held(m.Kind, m.Name)})
		}
	}
	window := func(kind, name string, ws []deploy.FreezeWindow) {
		if w, until, ok := deploy.ActiveFreeze(ws, now); ok {
			out = append(out, Freeze{Kind: kind, Name: name, Origin: "window", Until: until, Reason: w.Reason, Window: w.String(), Held: held(kind, name)})
		}
	}
	names := make([]string, 0, len(records))
	for n := range records {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		window(store.FreezeSource, n, records[n].Freeze)
	}
	for _, u := range units {
		if u.Err == nil {
			window(store.FreezeUnit, u.Name, u.Spec.Freeze)
		}
	}
	return out
}

// ErrAmbiguousFreeze: a name that is both a source and a unit.
var ErrAmbiguousFreeze = errors.New("both a source and a unit")

// FreezeTarget tells what kind of thing name is, for kaylee freeze and
// unfreeze: kind, when given (store.FreezeSource or store.FreezeUnit),
// must match. A name that is both is refused (ErrAmbiguousFreeze); an
// unknown one is an error listing what exists.
func FreezeTarget(name, kind string, sources, units []string) (string, error) {
	isSource, isUnit := slices.Contains(sources, name), slices.Contains(units, name)
	switch {
	case kind == store.FreezeSource && isSource, kind == store.FreezeUnit && isUnit:
		return kind, nil
	case kind == "" && isSource && isUnit:
		return "", fmt.Errorf("%q is %w: say which", name, ErrAmbiguousFreeze)
	case kind == "" && isSource:
		return store.FreezeSource, nil
	case kind == "" && isUnit:
		return store.FreezeUnit, nil
	}
	what := "a source or a unit"
	if kind != "" {
		what = "a " + kind
	}
	return "", fmt.Errorf("%q is not %s: sources are %s; units are %s", name, what, listOr(sources), listOr(units))
}

func listOr(names []string) string {
	if len(names) == 0 {
		return "(none)"
	}
	sorted := slices.Sorted(slices.Values(names))
	if len(sorted) > 20 {
		sorted = append(sorted[:20:20], fmt.Sprintf("… %d more", len(names)-20))
	}
	return strings.Join(sorted, ", ")
}

// ParseUntil reads the end of a freeze: an RFC 3339 time, or a duration
// from now (2h, 90m). "" is no end.
func ParseUntil(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%q: a duration must be more than 0", s)
		}
		return now.Add(d).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a time (2026-12-24T18:00:00+01:00, RFC 3339) nor a duration (2h)", s)
	}
	if !t.After(now) {
		return time.Time{}, fmt.Errorf("%q is past", s)
	}
	return t.UTC(), nil
}
