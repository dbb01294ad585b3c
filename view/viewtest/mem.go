// Package viewtest holds a view reader in memory for tests: what the
// views are decided from, without etcd. It imports no testing.
package viewtest

import (
	"context"
	"fmt"
	"sort"

	"github.com/kaylee-gitops/kaylee/store"
)

// Mem is a view.Reader and a view.SourceReader in memory. Every read
// fails with Err when it is set.
type Mem struct {
	Units     []string // stored unit names
	Statuses  map[string]*store.Status
	Records   map[string]*store.SyncRecord // by source
	Attempts  map[string]*store.SyncAttempt
	Leaders   map[string]string // source → leader's ID
	Suspended map[string]*store.Suspension
	Pins      map[string]*store.RollbackPin
	Err       error
}

// Rev is the store revision Mem's reads say they were made at.
const Rev = 7

func (m *Mem) unit(name string) *store.Unit {
	return &store.Unit{Name: name, Raw: []byte(`{"name":"` + name + `"}`)}
}

// ListUnits returns the units by name.
func (m *Mem) ListUnits(context.Context) ([]*store.Unit, int64, error) {
	if m.Err != nil {
		return nil, 0, m.Err
	}
	names := append([]string(nil), m.Units...)
	sort.Strings(names)
	out := make([]*store.Unit, len(names))
	for i, n := range names {
		out[i] = m.unit(n)
	}
	return out, Rev, nil
}

// GetUnit returns the unit name, or an error wrapping store.ErrNotFound.
func (m *Mem) GetUnit(_ context.Context, name string) (*store.Unit, error) {
	if m.Err != nil {
		return nil, m.Err
	}
	for _, n := range m.Units {
		if n == name {
			return m.unit(n), nil
		}
	}
	return nil, fmt.Errorf("unit %s: %w", name, store.ErrNotFound)
}

// GetStatus returns the status of name, or an error wrapping
// store.ErrNotFound.
func (m *Mem) GetStatus(_ context.Context, name string) (*store.Status, error) {
	if m.Err != nil {
		return nil, m.Err
	}
	if st, ok := m.Statuses[name]; ok {
		return st, nil
	}
	return nil, fmt.Errorf("status %s: %w", name, store.ErrNotFound)
}

// ListStatuses returns a copy of the statuses.
func (m *Mem) ListStatuses(context.Context) (map[string]*store.Status, error) {
	out := map[string]*store.Status{}
	for n, st := range m.Statuses {
		out[n] = st
	}
	return out, m.Err
}

// ListSyncRecords returns the sync records.
func (m *Mem) ListSyncRecords(context.Context) (map[string]*store.SyncRecord, error) {
	return m.Records, m.Err
}

// ListSyncAttempts returns the sync attempts.
func (m *Mem) ListSyncAttempts(context.Context) (map[string]*store.SyncAttempt, error) {
	return m.Attempts, m.Err
}

// SourceLeaders returns the leaders of the sources' syncs.
func (m *Mem) SourceLeaders(context.Context) (map[string]string, error) { return m.Leaders, m.Err }

// Suspensions returns the suspensions.
func (m *Mem) Suspensions(context.Context) (map[string]*store.Suspension, error) {
	return m.Suspended, m.Err
}

// RollbackPins returns the rollback pins.
func (m *Mem) RollbackPins(context.Context) (map[string]*store.RollbackPin, error) {
	return m.Pins, m.Err
}
