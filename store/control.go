package store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// Suspension holds a unit still, at <prefix>/suspended/<name>: the
// scheduler changes none of its fleet units (a replica destroyed by hand
// is not repaired either) until it is resumed. A spec stored meanwhile is
// kept and rolled out on resume.
type Suspension struct {
	Unit string    `json:"unit"`
	Time time.Time `json:"time"`
	By   string    `json:"by,omitempty"` // who asked: user@host
}

// RollbackPin records a rollback, at <prefix>/rollback/<name>. A git
// source that owns the unit does not overwrite it while the unit's file
// in git is still the one the rollback replaced (Replaced); a change of
// the file, or resume, ends it.
type RollbackPin struct {
	Unit     string `json:"unit"`
	Revision int64  `json:"revision"` // the history revision restored
	SpecHash string `json:"specHash"` // its spec hash
	// GitRevision is the git revision the restored revision came from,
	// when a git source owned the unit then.
	GitRevision string `json:"gitRevision,omitempty"`
	From        int64  `json:"from,omitempty"`
	// Engine is the engine the restored revision ran with when its spec
	// names none (its history entry's Engine, or rkt) and it is not the
	// scheduler's default engine at the time of the rollback (the default
	// was switched since): the scheduler runs the unit with it, whatever
	// its default, while the pin holds and the stored spec is the one
	// restored. "" follows the default.
	Engine   string `json:"engine,omitempty"`
	Replaced string `json:"replaced"` // SHA-256 of the stored JSON the rollback replaced
	// Restored is the SHA-256 of the JSON the rollback stored (ContentHash),
	// so that the pin tells its own spec from another however long the
	// history it came from is kept ("" in pins of older versions).
	Restored string    `json:"restored,omitempty"`
	Time     time.Time `json:"time"`
	By       string    `json:"by,omitempty"`
}

// ranWith is the engine an entry's spec ran with if it names none: its
// Engine, or rkt (the seed format's default, which no entry records).
func (e *HistoryEntry) ranWith() string {
	if e.Engine != "" {
		return e.Engine
	}
	return deploy.EngineRkt
}

// ContentHash is the hash RollbackPin.Replaced holds: SHA-256 of a unit's
// stored (canonical) JSON.
func ContentHash(canonical []byte) string {
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:])
}

func (s *Store) suspendedDir() string           { return s.prefix + "/suspended/" }
func (s *Store) rollbackDir() string            { return s.prefix + "/rollback/" }
func (s *Store) rollbackKey(name string) string { return s.rollbackDir() + name }

// Suspend suspends a unit (any process may). It reports false when it was
// suspended already, keeping the first suspension.
func (s *Store) Suspend(ctx context.Context, name, by string) (bool, error) {
	if _, err := s.GetUnit(ctx, name); err != nil {
		return false, err
	}
	key := s.suspendedDir() + name
	b, _ := json.Marshal(&Suspension{Unit: name, Time: time.Now().UTC(), By: by})
	r, err := s.c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return false, fmt.Errorf("etcd: suspending %s: %w", name, err)
	}
	if r.Succeeded {
		s.note(ctx, Event{Kind: EventSuspended, Unit: name, By: by, Message: "the scheduler leaves its fleet units as they are until resumed"})
	}
	return r.Succeeded, nil
}

// Resume ends a unit's suspension and its rollback pin, in one
// transaction. It reports which of them there were.
func (s *Store) Resume(ctx context.Context, name, by string) (suspended, pinned bool, err error) {
	r, err := s.c.Txn(ctx).Then(clientv3.OpDelete(s.suspendedDir()+name), clientv3.OpDelete(s.rollbackKey(name))).Commit()
	if err != nil {
		return false, false, fmt.Errorf("etcd: resuming %s: %w", name, err)
	}
	suspended, pinned = r.Responses[0].GetResponseDeleteRange().Deleted > 0, r.Responses[1].GetResponseDeleteRange().Deleted > 0
	if suspended || pinned {
		msg := map[[2]bool]string{{true, false}: "suspension ended", {false, true}: "rollback ended: sync writes what git has",
			{true, true}: "suspension and rollback ended"}[[2]bool{suspended, pinned}]
		s.note(ctx, Event{Kind: EventResumed, Unit: name, By: by, Message: msg})
	}
	return suspended, pinned, nil
}

// Suspensions returns every suspended unit's suspension by name.
func (s *Store) Suspensions(ctx context.Context) (map[string]*Suspension, error) {
	return listRecords[Suspension](ctx, s, "suspension", s.suspendedDir())
}

// RollbackPins returns every rollback pin by unit name.
func (s *Store) RollbackPins(ctx context.Context) (map[string]*RollbackPin, error) {
	return listRecords[RollbackPin](ctx, s, "rollback pin", s.rollbackDir())
}

// ErrNoRevision: the history has no revision to roll back to.
var ErrNoRevision = errors.New("no such revision")

// ErrConflict: the change does not fit the unit as it now is (it changed
// meanwhile, or what it restores no longer loads); nothing was written.
var ErrConflict = errors.New("conflict")

// Rollback stores an earlier revision of a unit from its history: to is a
// revision number or spec hash, or "" for the newest revision that was
// deployed and differs from what is stored. It writes the unit and a
// RollbackPin in one transaction, refused if the unit changed since it
// was read; the scheduler then rolls it out as any new spec.
func (s *Store) Rollback(ctx context.Context, name, to, by string) (*HistoryEntry, error) {
	u, err := s.GetUnit(ctx, name)
	if err != nil {
		return nil, err
	}
	entries, err := s.History(ctx, name)
	if err != nil {
		return nil, err
	}
	target, err := pickRollback(entries, u.Raw, to)
	if err != nil {
		return nil, fmt.Errorf("rolling back %s: %w", name, err)
	}
	doc, err := deploy.DecodeJSON(s.historyKey(name, target.Revision), target.Spec)
	if err == nil {
		err = doc.Validate()
	}
	if err != nil {
		return nil, fmt.Errorf("rolling back %s: revision %d no longer loads (%w): %w", name, target.Revision, ErrConflict, err)
	}
	restored := doc.Spec.CanonicalJSON()
	pin := &RollbackPin{Unit: name, Revision: target.Revision, SpecHash: target.SpecHash, GitRevision: target.GitRevision,
		Replaced: ContentHash(u.Raw), Restored: ContentHash(restored), Time: time.Now().UTC(), By: by}
	if doc.Spec.Engine == "" {
		// The revision ran with another engine than the scheduler's
		// default now (the default was switched since): bring it back.
		settings, err := s.GetSchedulerSettings(ctx)
		if err != nil {
			return nil, fmt.Errorf("rolling back %s: %w", name, err)
		}
		if target.ranWith() != cmp.Or(settings.DefaultEngine, deploy.EngineRkt) {
			pin.Engine = target.ranWith()
		}
	}
	if len(entries) > 0 {
		pin.From = entries[len(entries)-1].Revision
	}
	b, _ := json.Marshal(pin)
	key := s.unitKey(name)
	r, err := s.c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", u.ModRevision)).
		Then(clientv3.OpPut(key, string(restored)), clientv3.OpPut(s.rollbackKey(name), string(b))).Commit()
	if err != nil {
		return nil, fmt.Errorf("etcd: rolling back %s: %w", name, err)
	}
	if !r.Succeeded {
		return nil, fmt.Errorf("rolling back %s: the unit changed while the rollback was prepared (%w); nothing was written, try again", name, ErrConflict)
	}
	s.note(ctx, Event{Kind: EventRollbackRequested, Unit: name, By: by, SpecHash: target.SpecHash,
		Message: fmt.Sprintf("rollback to revision %d (spec %s)", target.Revision, target.SpecHash)})
	return target, nil
}

// pickRollback chooses the entry to roll back to: the one asked for (a
// revision, or the newest of a spec hash that is not what is stored), or
// by default the newest deployed version before the stored one. Entries of
// the stored spec's hash (the same version, scaled: replicas, update or
// ports changed) are skipped by default: a rollback goes to the previous
// version, not to the replica count before a scale (kaylee run does that).
func pickRollback(entries []*HistoryEntry, stored []byte, to string) (*HistoryEntry, error) {
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: the unit has no history yet (the scheduler records each spec it rolls out)", ErrNoRevision)
	}
	// The stored spec runs with the engine of its newest entry: an entry
	// of the same JSON that ran with another engine (before a change of
	// the cluster's default engine) is another version.
	storedEngine := ""
	for i := len(entries) - 1; i >= 0; i-- {
		if bytes.Equal(entries[i].Spec, stored) {
			storedEngine = entries[i].Engine
			break
		}
	}
	isStored := func(e *HistoryEntry) bool { return bytes.Equal(e.Spec, stored) && e.Engine == storedEngine }
	if to != "" {
		e, ok := FindRevision(entries, to)
		if !ok {
			return nil, fmt.Errorf("%w: %q is neither a revision number nor a spec hash in its history (revisions %d to %d)",
				ErrNoRevision, to, entries[0].Revision, entries[len(entries)-1].Revision)
		}
		if isStored(e) && e.SpecHash == to {
			// The newest of that hash is what is stored: an earlier
			// spec of the hash (before a scale) is meant.
			for i := len(entries) - 1; i >= 0; i-- {
				if x := entries[i]; x.SpecHash == to && !isStored(x) {
					return x, nil
				}
			}
		}
		if isStored(e) {
			return nil, fmt.Errorf("%w: revision %d is what is stored now", ErrNoRevision, e.Revision)
		}
		return e, nil
	}
	storedHash := ""
	for i := len(entries) - 1; i >= 0; i-- {
		if bytes.Equal(entries[i].Spec, stored) {
			storedHash = entries[i].SpecHash
			break
		}
	}
	for i := len(entries) - 1; i >= 0; i-- {
		if e := entries[i]; !e.Deployed.IsZero() && !isStored(e) && e.SpecHash != storedHash {
			return e, nil
		}
	}
	return nil, fmt.Errorf("%w: no earlier revision than the stored one was ever deployed", ErrNoRevision)
}
