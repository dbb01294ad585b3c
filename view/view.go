// Package view holds the read models of Kaylee and the sentences shown to
// people: unit views (status joined with the git source owning the unit
// and what people set on it), source views, rollout verdicts, ownership and
// its refusals. Its functions are pure over a small reader interface
// (store.Store is one; tests use one in memory): it never writes to etcd.
// The CLI and the console both show what this package decides.
package view

import (
	"context"

	"github.com/kaylee-gitops/kaylee/store"
)

// Reader is what unit views read: units, statuses, the sync records of
// the git sources, and what people set on units. *store.Store is one.
type Reader interface {
	ListUnits(ctx context.Context) ([]*store.Unit, int64, error)
	GetUnit(ctx context.Context, name string) (*store.Unit, error)
	GetStatus(ctx context.Context, name string) (*store.Status, error)
	ListStatuses(ctx context.Context) (map[string]*store.Status, error)
	ListSyncRecords(ctx context.Context) (map[string]*store.SyncRecord, error)
	Suspensions(ctx context.Context) (map[string]*store.Suspension, error)
	RollbackPins(ctx context.Context) (map[string]*store.RollbackPin, error)
}

// SourceReader is what source views read: the sources' records, their
// last attempts and the leaders of their syncs. *store.Store is one.
type SourceReader interface {
	ListSyncRecords(ctx context.Context) (map[string]*store.SyncRecord, error)
	ListSyncAttempts(ctx context.Context) (map[string]*store.SyncAttempt, error)
	SourceLeaders(ctx context.Context) (map[string]string, error)
}

var (
	_ Reader       = (*store.Store)(nil)
	_ SourceReader = (*store.Store)(nil)
)

func short(rev string) string {
	if len(rev) > 7 {
		return rev[:7]
	}
	return rev
}
