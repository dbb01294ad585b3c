package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// SourceInUseError is why a source's record cannot be removed: a process
// syncs it now, or it owns units that would be left without an owner.
type SourceInUseError struct {
	Source string
	Leader string   // the process that syncs it; "" when none
	Units  []string // the units it owns, sorted
}

func (e *SourceInUseError) Error() string {
	if e.Leader != "" {
		return fmt.Sprintf("source %q is synced now by %s: take it out of that process's sources (or stop the process) first, or it writes its record again", e.Source, e.Leader)
	}
	units := e.Units
	if len(units) > 5 {
		units = append(units[:5:5], fmt.Sprintf("… %d more", len(e.Units)-5))
	}
	return fmt.Sprintf("source %q owns %d unit(s) (%s): delete their files in git and let it sync, or remove them with kaylee rm, first; or keep them, with no git source to prune them", e.Source, len(e.Units), strings.Join(units, ", "))
}

// DeleteSource removes a source's record, its last attempt and its
// trigger key: what a source that no process follows any more leaves in
// etcd. It refuses while a process leads the source's sync, and, unless
// keepUnits, while the source owns units (SourceInUseError). The units
// themselves are never touched. ErrNotFound when there is no record.
func (s *Store) DeleteSource(ctx context.Context, name string, keepUnits bool) error {
	leaders, err := s.SourceLeaders(ctx)
	if err != nil {
		return err
	}
	if l := leaders[name]; l != "" {
		return &SourceInUseError{Source: name, Leader: l}
	}
	key := s.syncDir() + name
	r, err := s.c.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	if len(r.Kvs) == 0 {
		return fmt.Errorf("source %q: %w", name, ErrNotFound)
	}
	var rec SyncRecord
	if err := json.Unmarshal(r.Kvs[0].Value, &rec); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	if len(rec.Inventory) > 0 && !keepUnits {
		units := make([]string, 0, len(rec.Inventory))
		for u := range rec.Inventory {
			units = append(units, u)
		}
		sort.Strings(units)
		return &SourceInUseError{Source: name, Units: units}
	}
	// Only the record as read: a pass that wrote it meanwhile wins.
	t, err := s.c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", r.Kvs[0].ModRevision)).
		Then(clientv3.OpDelete(key), clientv3.OpDelete(s.attemptDir()+name), clientv3.OpDelete(s.prefix+"/hooks/"+name)).Commit()
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	if !t.Succeeded {
		return fmt.Errorf("source %q synced while it was being removed: %w", name, ErrConflict)
	}
	return nil
}
