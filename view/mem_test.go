package view

import (
	"context"
	"fmt"
	"sort"

	"github.com/kaylee-gitops/kaylee/store"
)

// mem is a Reader and a SourceReader in memory: what the views are
// decided from, without etcd.
type mem struct {
	units    []string // stored unit names
	statuses map[string]*store.Status
	records  map[string]*store.SyncRecord
	attempts map[string]*store.SyncAttempt
	leaders  map[string]string
	sus      map[string]*store.Suspension
	pins     map[string]*store.RollbackPin
	err      error // every read fails with it when set
}

var (
	_ Reader       = (*mem)(nil)
	_ SourceReader = (*mem)(nil)
)

func (m *mem) ListUnits(context.Context) ([]*store.Unit, int64, error) {
	if m.err != nil {
		return nil, 0, m.err
	}
	names := append([]string(nil), m.units...)
	sort.Strings(names)
	out := make([]*store.Unit, len(names))
	for i, n := range names {
		out[i] = &store.Unit{Name: n}
	}
	return out, 1, nil
}

func (m *mem) GetUnit(_ context.Context, name string) (*store.Unit, error) {
	if m.err != nil {
		return nil, m.err
	}
	for _, n := range m.units {
		if n == name {
			return &store.Unit{Name: n}, nil
		}
	}
	return nil, fmt.Errorf("unit %s: %w", name, store.ErrNotFound)
}

func (m *mem) GetStatus(_ context.Context, name string) (*store.Status, error) {
	if m.err != nil {
		return nil, m.err
	}
	if st, ok := m.statuses[name]; ok {
		return st, nil
	}
	return nil, fmt.Errorf("status %s: %w", name, store.ErrNotFound)
}

func (m *mem) ListStatuses(context.Context) (map[string]*store.Status, error) {
	out := map[string]*store.Status{}
	for n, st := range m.statuses {
		out[n] = st
	}
	return out, m.err
}

func (m *mem) ListSyncRecords(context.Context) (map[string]*store.SyncRecord, error) {
	return m.records, m.err
}

func (m *mem) ListSyncAttempts(context.Context) (map[string]*store.SyncAttempt, error) {
	return m.attempts, m.err
}

func (m *mem) SourceLeaders(context.Context) (map[string]string, error) { return m.leaders, m.err }

func (m *mem) Suspensions(context.Context) (map[string]*store.Suspension, error) { return m.sus, m.err }

func (m *mem) RollbackPins(context.Context) (map[string]*store.RollbackPin, error) {
	return m.pins, m.err
}
