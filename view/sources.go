package view

import (
	"context"
	"sort"
	"time"

	"github.com/kaylee-gitops/kaylee/internal/redact"
	"github.com/kaylee-gitops/kaylee/store"
)

// Source is what one git source has done: what it last applied
// (its record), its last attempt, and who leads its sync.
type Source struct {
	Name      string             `json:"name"`
	Repo      string             `json:"repo,omitempty"`
	Path      string             `json:"path,omitempty"`
	Ref       string             `json:"ref,omitempty"`
	Revision  string             `json:"revision,omitempty"` // applied
	Applied   time.Time          `json:"applied,omitzero"`
	Units     []string           `json:"units"`
	Errors    []store.SyncError  `json:"errors"`
	Attempt   *store.SyncAttempt `json:"lastAttempt,omitempty"`
	Suspended bool               `json:"suspended"`
	Leader    string             `json:"leader,omitempty"`
	// RolledBack: units kept at a rollback although git has another version.
	RolledBack map[string]int64 `json:"rolledBack,omitempty"`
	// Frozen: a revision fetched that a change freeze holds (recorded,
	// not applied); FrozenUnits: its units a freeze of their own holds.
	Frozen      *store.FrozenRevision            `json:"frozen,omitempty"`
	FrozenUnits map[string]*store.FrozenRevision `json:"frozenUnits,omitempty"`
}

// Sources returns every source that has a record, an attempt or a leader,
// by name.
func Sources(ctx context.Context, st SourceReader) ([]Source, error) {
	records, err := st.ListSyncRecords(ctx)
	if err != nil {
		return nil, err
	}
	attempts, err := st.ListSyncAttempts(ctx)
	if err != nil {
		return nil, err
	}
	leaders, err := st.SourceLeaders(ctx)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for n := range records {
		names[n] = true
	}
	for n := range attempts {
		names[n] = true
	}
	for n := range leaders {
		names[n] = true
	}
	out := make([]Source, 0, len(names))
	for n := range names {
		s := Source{Name: n, Units: []string{}, Errors: []store.SyncError{}, Attempt: attempts[n], Leader: leaders[n]}
		if r := records[n]; r != nil {
			s.Repo, s.Path, s.Ref, s.Revision, s.Applied, s.RolledBack = store.RedactURL(r.URL), r.Path, r.Ref, r.Revision, r.Time, r.RolledBack
			for u := range r.Inventory {
				s.Units = append(s.Units, u)
			}
			sort.Strings(s.Units)
			s.Frozen, s.FrozenUnits = r.Frozen, r.FrozenUnits
			if r.Errors != nil {
				s.Errors = r.Errors
			}
		}
		if a := s.Attempt; a != nil {
			// Masked again for what an older version wrote.
			masked := *a
			masked.Message = redact.Text(a.Message)
			s.Attempt = &masked
			s.Suspended = a.Result == store.AttemptSuspended
			if s.Ref == "" {
				s.Ref = a.Ref
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
