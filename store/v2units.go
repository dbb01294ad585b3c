package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// V2Record is what the bridge of units written through etcd's v2 API (see
// package store/v2units) last did for one name, at <prefix>/v2units/<name>:
// it keeps a restart of the bridge from applying an old v2 write again over
// a newer v3 one, and a v2 delete from deleting a unit someone else rewrote.
type V2Record struct {
	// Index is the v2 modifiedIndex of the last v2 write of the name seen.
	Index uint64 `json:"index"`
	// Hash is ContentHash of that write's value.
	Hash string `json:"hash"`
	// Copied: v3 held that value when it was seen (copied by the bridge,
	// or already the same); a v2 delete then deletes the v3 unit while it
	// still holds it.
	Copied bool `json:"copied"`
}

// V2State is the v3 side of one name, as the bridge decides on it.
type V2State struct {
	Value   []byte // the stored unit's JSON; nil when there is none
	Record  *V2Record
	Restart int64 // the unit's restart counter
	// Owner is the git source whose inventory holds the unit, if any.
	Owner string
}

// V2Apply is what the bridge writes for one name, in one transaction.
type V2Apply struct {
	Put     []byte // store this JSON as the unit
	Delete  bool   // delete the unit (its restart counter and rollback pin too)
	Restart bool   // bump the restart counter (kaylee restart)
	// Record replaces the name's record; nil with DropRecord deletes it.
	Record     *V2Record
	DropRecord bool
}

func (a V2Apply) empty() bool {
	return a.Put == nil && !a.Delete && !a.Restart && a.Record == nil && !a.DropRecord
}

func (s *Store) v2Dir() string                  { return s.prefix + "/v2units/" }
func (s *Store) v2RecordKey(name string) string { return s.v2Dir() + name }

// V2Records returns the bridge's records by unit name.
func (s *Store) V2Records(ctx context.Context) (map[string]*V2Record, error) {
	return listRecords[V2Record](ctx, s, "v2 units record", s.v2Dir())
}

// ApplyV2 reads name's unit, restart counter, bridge record and git owner
// (the sync records), asks decide what to write and writes it in one
// transaction, fenced and conditional on none of them having changed since
// they were read (it reads and asks again when one did). It returns what
// was written.
func (s *Store) ApplyV2(ctx context.Context, name string, decide func(V2State) V2Apply, f Fence) (V2Apply, error) {
	keys := []string{s.unitKey(name), s.restartKey(name), s.v2RecordKey(name)}
	for {
		r, err := s.c.Txn(ctx).Then(clientv3.OpGet(keys[0]), clientv3.OpGet(keys[1]), clientv3.OpGet(keys[2]),
			clientv3.OpGet(s.syncDir(), clientv3.WithPrefix())).Commit()
		if err != nil {
			return V2Apply{}, fmt.Errorf("etcd: reading unit %q: %w", name, err)
		}
		st := V2State{Owner: ownerOf(name, r.Responses[3].GetResponseRange().Kvs)}
		cmps := make([]clientv3.Cmp, 0, len(keys)+1)
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.syncDir()), "<", r.Header.Revision+1).WithPrefix())
		for i, key := range keys {
			var modRev int64
			if kvs := r.Responses[i].GetResponseRange().Kvs; len(kvs) == 1 {
				modRev = kvs[0].ModRevision
				if err := st.set(i, kvs[0].Key, kvs[0].Value); err != nil {
					return V2Apply{}, err
				}
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", modRev))
		}
		a := decide(st)
		if a.empty() {
			return a, nil
		}
		tr, err := s.commit(ctx, f, clientv3.OpTxn(cmps, s.v2Ops(name, st, a), nil))
		if err != nil {
			return V2Apply{}, fmt.Errorf("writing unit %q from etcd's v2 API: %w", name, err)
		}
		if tr.Responses[0].GetResponseTxn().Succeeded {
			return a, nil
		}
	}
}

// ownerOf is the source of the sync records kvs whose inventory holds
// name ("": none). A record that does not decode owns nothing here (the
// sync reports it).
func ownerOf(name string, kvs []*mvccpb.KeyValue) string {
	for _, kv := range kvs {
		var rec SyncRecord
		if json.Unmarshal(kv.Value, &rec) != nil {
			continue
		}
		if _, ok := rec.Inventory[name]; ok {
			return rec.Source
		}
	}
	return ""
}

// set fills the i-th of the unit, restart counter and record.
func (st *V2State) set(i int, key, value []byte) error {
	switch i {
	case 0:
		st.Value = value
	case 1:
		st.Restart, _ = strconv.ParseInt(string(value), 10, 64)
	default:
		rec, err := decodeRecord[V2Record]("v2 units record", key, value)
		if err != nil {
			return err
		}
		st.Record = rec
	}
	return nil
}

// v2Ops are the writes of a.
func (s *Store) v2Ops(name string, st V2State, a V2Apply) []clientv3.Op {
	var ops []clientv3.Op
	switch {
	case a.Delete:
		ops = append(ops, clientv3.OpDelete(s.unitKey(name)), clientv3.OpDelete(s.restartKey(name)), clientv3.OpDelete(s.rollbackKey(name)))
	case a.Put != nil:
		ops = append(ops, clientv3.OpPut(s.unitKey(name), string(a.Put)), clientv3.OpDelete(s.rollbackKey(name)))
	}
	if a.Restart && !a.Delete {
		ops = append(ops, clientv3.OpPut(s.restartKey(name), strconv.FormatInt(st.Restart+1, 10)))
	}
	switch {
	case a.Record != nil:
		b, _ := json.Marshal(a.Record) // a struct of plain fields: cannot fail
		ops = append(ops, clientv3.OpPut(s.v2RecordKey(name), string(b)))
	case a.DropRecord:
		ops = append(ops, clientv3.OpDelete(s.v2RecordKey(name)))
	}
	return ops
}

// CheckStored reports why the scheduler would refuse value stored as the
// unit name (decoding, validation, the key's name against the unit's), or
// nil when it would schedule it: the check every stored unit goes through.
func (s *Store) CheckStored(name string, value []byte) error {
	return s.decodeUnit(s.unitKey(name), value, 0).Err
}

// UnitKey is the v3 key of the unit name.
func (s *Store) UnitKey(name string) string { return s.unitKey(name) }

// V2UnitName is the unit name of a v2 key under dir (the last element of
// the key), or false for a key that is not below dir.
func V2UnitName(dir, key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, strings.TrimSuffix(dir, "/")+"/")
	if !ok || rest == "" {
		return "", false
	}
	return rest[strings.LastIndex(rest, "/")+1:], true
}
