package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Outcomes of a history entry.
const (
	OutcomeProgressing = "progressing" // being rolled out
	OutcomeDeployed    = "deployed"    // rolled out to every replica
	OutcomeFailed      = "failed"      // its rollout failed; the version before it kept serving
	OutcomeRolledBack  = "rolled back" // replaced by kaylee rollback
	OutcomeSuperseded  = "superseded"  // replaced by a newer spec before its rollout completed
)

// DefaultHistory is how many entries the scheduler keeps per unit.
const DefaultHistory = 10

// HistoryEntry is one spec a unit was rolled out to, at
// <prefix>/history/<name>/<revision>. The scheduler's leader writes them
// (fenced) as it sees a new spec hash and as its rollout ends.
type HistoryEntry struct {
	Unit     string          `json:"unit"`
	Revision int64           `json:"revision"` // 1, 2, 3… per unit
	SpecHash string          `json:"specHash"` // as kaylee status shows it
	Restart  int64           `json:"restart,omitempty"`
	Spec     json.RawMessage `json:"spec"` // the stored unit, canonical JSON
	// Engine is the engine the spec ran with when it names none and the
	// scheduler gave it one other than rkt (its default engine, or the
	// one a rollback restored): the spec hash and the rendering are of
	// Spec with that engine. "" is rkt, or the spec's own engine.
	Engine string    `json:"engine,omitempty"`
	Time   time.Time `json:"time"` // when the scheduler first saw it
	// Deployed is when its rollout completed; zero if it never did.
	Deployed time.Time `json:"deployed,omitzero"`
	Outcome  string    `json:"outcome"`
	Message  string    `json:"message,omitempty"`
	// Where it came from, when a git source owns the unit: the source, the
	// revision it had synced, and the file.
	Source      string `json:"source,omitempty"`
	GitRevision string `json:"gitRevision,omitempty"`
	File        string `json:"file,omitempty"`
	// RollbackTo is the revision kaylee rollback restored (this entry is
	// that rollback).
	RollbackTo int64 `json:"rollbackTo,omitempty"`
	// Change is set on a revision with the spec hash of the one before
	// it: a change that rolls nothing out ("replicas 2 → 3", "update",
	// "ports"). Replicas were added or removed; none was replaced.
	Change string `json:"change,omitempty"`
}

func (s *Store) historyDir(name string) string { return s.prefix + "/history/" + name + "/" }

func (s *Store) historyKey(name string, rev int64) string {
	return s.historyDir(name) + fmt.Sprintf("%012d", rev)
}

// PutHistory writes an entry and deletes the given older revisions of the
// same unit, in one fenced transaction.
func (s *Store) PutHistory(ctx context.Context, e *HistoryEntry, drop []int64, f Fence) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("history of %s: %w", e.Unit, err)
	}
	ops := []clientv3.Op{clientv3.OpPut(s.historyKey(e.Unit, e.Revision), string(b))}
	for _, r := range drop {
		ops = append(ops, clientv3.OpDelete(s.historyKey(e.Unit, r)))
	}
	if _, err := s.commit(ctx, f, ops...); err != nil {
		return fmt.Errorf("writing history of %s: %w", e.Unit, err)
	}
	return nil
}

// DeleteHistory removes every entry of a unit (fenced).
func (s *Store) DeleteHistory(ctx context.Context, name string, f Fence) error {
	if _, err := s.commit(ctx, f, clientv3.OpDelete(s.historyDir(name), clientv3.WithPrefix())); err != nil {
		return fmt.Errorf("deleting history of %s: %w", name, err)
	}
	return nil
}

// History returns a unit's entries, oldest first.
func (s *Store) History(ctx context.Context, name string) ([]*HistoryEntry, error) {
	all, err := s.listHistory(ctx, s.historyDir(name))
	if err != nil {
		return nil, err
	}
	return all[name], nil
}

// AllHistory returns every unit's entries, oldest first.
func (s *Store) AllHistory(ctx context.Context) (map[string][]*HistoryEntry, error) {
	return s.listHistory(ctx, s.prefix+"/history/")
}

func (s *Store) listHistory(ctx context.Context, dir string) (map[string][]*HistoryEntry, error) {
	recs, err := listRecords[HistoryEntry](ctx, s, "history entry", dir)
	if err != nil {
		return nil, err
	}
	out := map[string][]*HistoryEntry{}
	for _, e := range recs {
		out[e.Unit] = append(out[e.Unit], e)
	}
	for _, es := range out {
		sort.Slice(es, func(i, j int) bool { return es[i].Revision < es[j].Revision })
	}
	return out, nil
}

// FindRevision returns the entry of a revision, accepting "3" or a spec
// hash ("a1b2c3d4", the newest entry with it).
func FindRevision(entries []*HistoryEntry, rev string) (*HistoryEntry, bool) {
	if n, err := strconv.ParseInt(strings.TrimPrefix(rev, "#"), 10, 64); err == nil && !isHashLike(rev) {
		for _, e := range entries {
			if e.Revision == n {
				return e, true
			}
		}
		return nil, false
	}
	for i := len(entries) - 1; i >= 0; i-- {
		if entries[i].SpecHash == rev {
			return entries[i], true
		}
	}
	return nil, false
}

// isHashLike: 8 hex digits, as a spec hash (which may be all digits).
func isHashLike(s string) bool {
	if len(s) != 8 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
