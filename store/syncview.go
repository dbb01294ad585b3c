package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// SyncView is what a sync pass reads of the store, at one revision (Rev):
// the units, every source's record, the rollback pins, the manual
// freezes, the freeze overrides and the scheduler's settings. Read it
// with RefreshSyncView, which brings it up to date reading only what
// changed; do not modify its contents.
type SyncView struct {
	Rev       int64
	Units     map[string]*Unit
	Records   map[string]*SyncRecord
	Pins      map[string]*RollbackPin
	Freezes   []*ManualFreeze // sources first, by name (as ListFreezes)
	Overrides map[string]*FreezeOverride
	Settings  *SchedulerSettings // as GetSchedulerSettings
	// Read is how many units, records and pins the last refresh
	// decoded (all of them on the first).
	Read int
}

// RefreshSyncView brings v up to the store's current revision in one
// request, a read-only transaction: from the units, records and pins, it
// asks only for those modified after v.Rev (all of them when v.Rev is 0),
// with how many each directory holds; the freezes, overrides and settings
// (a few keys) it reads whole. A directory that holds fewer keys than v
// and the changes account for lost some (deleted): its key names are
// listed again (one request more) and the missing dropped. On an error v
// is reset to the zero view: the next refresh reads everything.
func (s *Store) RefreshSyncView(ctx context.Context, v *SyncView) error {
	since := clientv3.WithMinModRev(v.Rev + 1)
	dirs := []string{s.unitsDir(), s.syncDir(), s.rollbackDir()}
	ops := make([]clientv3.Op, 0, 7)
	for _, d := range dirs {
		ops = append(ops, clientv3.OpGet(d, clientv3.WithPrefix(), since))
	}
	for _, d := range []string{s.freezeDir(FreezeSource), s.freezeDir(FreezeUnit), s.freezeDir("override")} {
		ops = append(ops, clientv3.OpGet(d, clientv3.WithPrefix()))
	}
	ops = append(ops, clientv3.OpGet(s.schedulerKey()))
	r, err := s.c.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("etcd: reading units, sync records and pins: %w", err)
	}
	ranges := make([]*clientv3.GetResponse, len(r.Responses))
	for i, op := range r.Responses {
		ranges[i] = (*clientv3.GetResponse)(op.GetResponseRange())
	}
	next := SyncView{Rev: r.Header.Revision, Units: v.Units, Records: v.Records, Pins: v.Pins}
	if v.Rev == 0 {
		next.Units, next.Records, next.Pins = nil, nil, nil
	}
	units, err := s.changedUnits(ranges[0].Kvs)
	if err != nil {
		return err
	}
	records, err := decodeAll[SyncRecord]("sync record", s.syncDir(), ranges[1].Kvs)
	if err != nil {
		return err
	}
	pins, err := decodeAll[RollbackPin]("rollback pin", s.rollbackDir(), ranges[2].Kvs)
	if err != nil {
		return err
	}
	if err := s.viewFreezes(&next, ranges[3:6]); err != nil {
		return err
	}
	if next.Settings, err = viewSettings(ranges[6].Kvs); err != nil {
		return err
	}
	next.Read = len(units) + len(records) + len(pins)
	next.Units = merged(next.Units, units)
	next.Records = merged(next.Records, records)
	next.Pins = merged(next.Pins, pins)
	counts := []int64{ranges[0].Count, ranges[1].Count, ranges[2].Count}
	if err := s.dropDeleted(ctx, &next, dirs, counts); err != nil {
		*v = SyncView{} // its maps were updated in part
		return err
	}
	*v = next
	return nil
}

// changedUnits decodes the units of kvs, by name.
func (s *Store) changedUnits(kvs []*mvccpb.KeyValue) (map[string]*Unit, error) {
	out := make(map[string]*Unit, len(kvs))
	for _, kv := range kvs {
		u := s.decodeUnit(string(kv.Key), kv.Value, kv.ModRevision)
		out[u.Name] = u
	}
	return out, nil
}

// decodeAll decodes the records of kvs under dir, by the rest of their key.
func decodeAll[T any](kind, dir string, kvs []*mvccpb.KeyValue) (map[string]*T, error) {
	out := make(map[string]*T, len(kvs))
	for _, kv := range kvs {
		v, err := decodeRecord[T](kind, kv.Key, kv.Value)
		if err != nil {
			return nil, err
		}
		out[strings.TrimPrefix(string(kv.Key), dir)] = v
	}
	return out, nil
}

// merged is m (a new map when nil) with changed put in it.
func merged[T any](m, changed map[string]*T) map[string]*T {
	if m == nil {
		return changed
	}
	for k, v := range changed {
		m[k] = v
	}
	return m
}

// viewFreezes fills v's freezes and overrides from the ranges of the
// source freezes, the unit freezes and the overrides.
func (s *Store) viewFreezes(v *SyncView, ranges []*clientv3.GetResponse) error {
	for i, kind := range []string{FreezeSource, FreezeUnit} {
		m, err := decodeAll[ManualFreeze]("freeze", s.freezeDir(kind), ranges[i].Kvs)
		if err != nil {
			return err
		}
		for name, f := range m {
			f.Kind, f.Name = kind, name
			v.Freezes = append(v.Freezes, f)
		}
	}
	sort.SliceStable(v.Freezes, func(i, j int) bool {
		if v.Freezes[i].Kind != v.Freezes[j].Kind {
			return v.Freezes[i].Kind == FreezeSource
		}
		return v.Freezes[i].Name < v.Freezes[j].Name
	})
	var err error
	v.Overrides, err = decodeAll[FreezeOverride]("freeze override", s.freezeDir("override"), ranges[2].Kvs)
	return err
}

// viewSettings is the scheduler's settings from their key's range, or
// the seed's when there are none (as GetSchedulerSettings).
func viewSettings(kvs []*mvccpb.KeyValue) (*SchedulerSettings, error) {
	if len(kvs) == 0 {
		return &SchedulerSettings{DefaultEngine: deploy.EngineRkt}, nil
	}
	return decodeRecord[SchedulerSettings]("scheduler settings", kvs[0].Key, kvs[0].Value)
}

// dropDeleted removes from v the units, records and pins deleted since it
// was read: in each of dirs whose count (of keys at v.Rev) is below what
// v holds, it lists the key names and drops the missing ones.
func (s *Store) dropDeleted(ctx context.Context, v *SyncView, dirs []string, counts []int64) error {
	for i, dir := range dirs {
		var have int
		switch i {
		case 0:
			have = len(v.Units)
		case 1:
			have = len(v.Records)
		case 2:
			have = len(v.Pins)
		}
		if int64(have) == counts[i] {
			continue
		}
		if int64(have) < counts[i] {
			return errors.New("etcd: a directory holds keys that were not read (the view is inconsistent); read it again")
		}
		r, err := s.c.Get(ctx, dir, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return fmt.Errorf("etcd: listing %s: %w", dir, err)
		}
		now := make(map[string]bool, len(r.Kvs))
		for _, kv := range r.Kvs {
			now[strings.TrimPrefix(string(kv.Key), dir)] = true
		}
		switch i {
		case 0:
			dropMissing(v.Units, now)
		case 1:
			dropMissing(v.Records, now)
		case 2:
			dropMissing(v.Pins, now)
		}
	}
	return nil
}

func dropMissing[T any](m map[string]*T, now map[string]bool) {
	for k := range m {
		if !now[k] {
			delete(m, k)
		}
	}
}
