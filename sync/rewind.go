package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/store"
)

// History tells whether a revision descends from another
// (gitsource.Source does, fetching what history it needs). An error means
// it cannot tell: the pass then writes nothing.
type History interface {
	Descends(ctx context.Context, rev, base string) (bool, error)
}

// ErrRewind is wrapped by the errors of passes refused because the
// revision does not descend from the one the source last applied (see
// RewindError). errors.Is(err, ErrRefused) holds for them too.
var ErrRewind = errors.New("revision does not descend from the last applied one")

// Rewind is a revision that does not descend from the one its source last
// applied: the ref was moved back (git push --force origin A:main after
// B), its history was rewritten (an amended B'), or the source now
// follows another ref or repository.
type Rewind struct {
	From    string `json:"from"` // the revision last applied, full hash
	FromRef string `json:"fromRef,omitempty"`
	To      string `json:"to"` // the revision fetched
	ToRef   string `json:"toRef,omitempty"`
	// AllowedBy names what allowed it to be applied (Options.AllowRewind);
	// empty when it was refused.
	AllowedBy string `json:"allowedBy,omitempty"`
}

// String is "main@3f2a9c1 (3f2a9c1…full) does not descend from
// main@8e1b0d2 (8e1b0d2…full), the revision last applied".
func (r *Rewind) String() string {
	return fmt.Sprintf("%s (%s) does not descend from %s (%s), the revision last applied",
		refAt(r.ToRef, r.To), r.To, refAt(r.FromRef, r.From), r.From)
}

// Applied is the sentence for a rewind that was allowed: "rewound from
// main@8e1b0d2 (…) to main@3f2a9c1 (…), not a descendant; allowed by …".
func (r *Rewind) Applied() string {
	return fmt.Sprintf("rewound from %s (%s) to %s (%s), which does not descend from it; allowed by %s",
		refAt(r.FromRef, r.From), r.From, refAt(r.ToRef, r.To), r.To, r.AllowedBy)
}

func refAt(ref, rev string) string {
	return (&gitsource.Snapshot{Ref: ref, Revision: rev}).Short()
}

// RewindError is a pass refused because its revision does not descend
// from the one the source last applied. Nothing was written: the last
// applied revision stays applied.
type RewindError struct {
	Source string
	Rewind Rewind
}

func (e *RewindError) Error() string {
	return fmt.Sprintf("%v: source %q: %s; the ref was moved back or its history rewritten (or the source now follows another ref or repository): allow rewinds for this source to apply it",
		ErrRefused, e.Source, e.Rewind.String())
}

// Is makes errors.Is(err, ErrRewind) and errors.Is(err, ErrRefused) true.
func (e *RewindError) Is(target error) bool { return target == ErrRewind || target == ErrRefused }

// checkHistory is a pass's history phase: a revision that does not
// descend from the one the source last applied is refused
// (*RewindError) unless o.AllowRewind says who allows it; an allowed one
// is returned, to be recorded and told. There is nothing to check on a
// source's first pass, when the revision has not moved, or without
// o.History, nor for a child of the last applied revision (its
// Parents). When History cannot tell, the pass fails: nothing is
// written.
func checkHistory(ctx context.Context, last *store.SyncRecord, snap *gitsource.Snapshot, o Options) (*Rewind, error) {
	if o.History == nil || last == nil || last.Revision == "" || last.Revision == snap.Revision || slices.Contains(snap.Parents, last.Revision) {
		return nil, nil // nothing to check, or a child of the last applied revision (a push of one commit)
	}
	ok, err := o.History.Descends(ctx, snap.Revision, last.Revision)
	if err != nil {
		return nil, fmt.Errorf("source %q: checking that %s descends from %s, the revision last applied: %w",
			o.Source, snap.Short(), refAt(last.Ref, last.Revision), err)
	}
	if ok {
		return nil, nil
	}
	rw := Rewind{From: last.Revision, FromRef: last.Ref, To: snap.Revision, ToRef: snap.Ref}
	if o.AllowRewind == "" {
		return nil, &RewindError{Source: o.Source, Rewind: rw}
	}
	rw.AllowedBy = o.AllowRewind
	return &rw, nil
}
