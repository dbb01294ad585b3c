package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Events of change freezes.
const (
	// EventFrozen: a freeze held a new revision of a source (no unit) or
	// a change of a unit: recorded, not applied.
	EventFrozen = "frozen"
	// EventFreezeOverridden: a pass applied what a freeze held, because
	// someone forced it (kaylee sync --force); By names who.
	EventFreezeOverridden = "freeze-overridden"
	// EventFreezeSet and EventFreezeEnded: kaylee freeze and unfreeze.
	EventFreezeSet   = "freeze-set"
	EventFreezeEnded = "freeze-ended"
)

// Kinds of what a manual freeze holds.
const (
	FreezeSource = "source"
	FreezeUnit   = "unit"
)

// ManualFreeze is a freeze set by kaylee freeze, at
// <prefix>/freeze/source/<name> or <prefix>/freeze/unit/<name>: while it
// holds, git sources apply no change of the source (or the unit); the
// scheduler goes on as ever (drift repair, machine loss).
type ManualFreeze struct {
	Kind   string    `json:"kind"` // FreezeSource or FreezeUnit
	Name   string    `json:"name"`
	Until  time.Time `json:"until,omitempty"` // zero: until kaylee unfreeze
	Reason string    `json:"reason,omitempty"`
	By     string    `json:"by,omitempty"` // user@host
	Time   time.Time `json:"time"`
}

// Holds reports whether the freeze holds at now.
func (f *ManualFreeze) Holds(now time.Time) bool { return f.Until.IsZero() || now.Before(f.Until) }

// FrozenRevision is what a freeze holds, in a source's record: the
// revision fetched and not applied, since when, until when (zero: until
// unfrozen) and why.
type FrozenRevision struct {
	Revision string    `json:"revision"`
	Since    time.Time `json:"since"`
	Until    time.Time `json:"until,omitempty"`
	// Reason names the freeze: "window 0 18 * * FRI for 62h: weekend" or
	// "kaylee freeze by ann@laptop: release".
	Reason string `json:"reason"`
	// Content, for a unit, is ContentHash of the spec held: a change
	// already told is not told again.
	Content string `json:"content,omitempty"`
}

// FreezeOverride asks the leader of a source's sync to apply what a
// freeze holds, once (kaylee sync --now --force), at
// <prefix>/freeze/override/<source>.
type FreezeOverride struct {
	Source string    `json:"source"`
	By     string    `json:"by"`
	Time   time.Time `json:"time"`
}

// FreezeOverrideTTL: an override not taken within this is ignored.
const FreezeOverrideTTL = 15 * time.Minute

func (s *Store) freezeDir(kind string) string { return s.prefix + "/freeze/" + kind + "/" }

// PutFreeze writes a manual freeze (any process may), replacing one of
// the same kind and name.
func (s *Store) PutFreeze(ctx context.Context, f *ManualFreeze) error {
	if f.Kind != FreezeSource && f.Kind != FreezeUnit {
		return fmt.Errorf("freeze of %q: kind %q is neither %s nor %s", f.Name, f.Kind, FreezeSource, FreezeUnit)
	}
	if err := s.putRecord(ctx, "freeze", s.freezeDir(f.Kind)+f.Name, f, Fence{}); err != nil {
		return err
	}
	msg := "a manual freeze: git changes are recorded, not applied, until kaylee unfreeze"
	if !f.Until.IsZero() {
		msg = "a manual freeze until " + f.Until.UTC().Format(time.RFC3339)
	}
	if f.Reason != "" {
		msg += ": " + f.Reason
	}
	e := Event{Kind: EventFreezeSet, By: f.By, Message: msg}
	if f.Kind == FreezeSource {
		e.Source = f.Name
	} else {
		e.Unit = f.Name
	}
	s.note(ctx, e)
	return nil
}

// DeleteFreeze removes a manual freeze; false when there was none.
func (s *Store) DeleteFreeze(ctx context.Context, kind, name, by string) (bool, error) {
	r, err := s.c.Delete(ctx, s.freezeDir(kind)+name)
	if err != nil {
		return false, fmt.Errorf("etcd: unfreezing %s %s: %w", kind, name, err)
	}
	if r.Deleted == 0 {
		return false, nil
	}
	e := Event{Kind: EventFreezeEnded, By: by, Message: "manual freeze ended: the next pass applies what git has"}
	if kind == FreezeSource {
		e.Source = name
	} else {
		e.Unit = name
	}
	s.note(ctx, e)
	return true, nil
}

// ListFreezes returns every manual freeze, sources first, by name.
func (s *Store) ListFreezes(ctx context.Context) ([]*ManualFreeze, error) {
	var out []*ManualFreeze
	for _, kind := range []string{FreezeSource, FreezeUnit} {
		m, err := listRecords[ManualFreeze](ctx, s, "freeze", s.freezeDir(kind))
		if err != nil {
			return nil, err
		}
		for name, f := range m {
			f.Kind, f.Name = kind, name
			out = append(out, f)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind == FreezeSource
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// PutFreezeOverride asks the leader of source's sync to apply what a
// freeze holds, once.
func (s *Store) PutFreezeOverride(ctx context.Context, source, by string) error {
	return s.putRecord(ctx, "freeze override", s.freezeDir("override")+source,
		&FreezeOverride{Source: source, By: by, Time: time.Now().UTC()}, Fence{})
}

// FreezeOverrides returns the overrides waiting, by source.
func (s *Store) FreezeOverrides(ctx context.Context) (map[string]*FreezeOverride, error) {
	return listRecords[FreezeOverride](ctx, s, "freeze override", s.freezeDir("override"))
}

// TakeFreezeOverride removes a source's override once a pass saw it
// (fenced: a deposed leader takes nothing), unless it was written again
// since it was read as ov: that newer one waits for the next pass.
func (s *Store) TakeFreezeOverride(ctx context.Context, ov *FreezeOverride, f Fence) error {
	key := s.freezeDir("override") + ov.Source
	b, err := json.Marshal(ov)
	if err != nil {
		return fmt.Errorf("freeze override %s: %w", key, err)
	}
	same := []clientv3.Cmp{clientv3.Compare(clientv3.Value(key), "=", string(b))}
	if _, err := s.commit(ctx, f, clientv3.OpTxn(same, []clientv3.Op{clientv3.OpDelete(key)}, nil)); err != nil {
		return fmt.Errorf("taking the freeze override of %s: %w", ov.Source, err)
	}
	return nil
}
