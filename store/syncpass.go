package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// GetSyncAttempt returns a source's last attempt (one key), or
// ErrNotFound.
func (s *Store) GetSyncAttempt(ctx context.Context, source string) (*SyncAttempt, error) {
	return getRecord[SyncAttempt](ctx, s, "sync attempt", s.attemptDir()+source)
}

// ErrTooManyWrites: the writes asked for do not fit in one transaction;
// nothing was written.
var ErrTooManyWrites = errors.New("too many writes for one transaction")

// ApplyUnitsWithRecord stores specs, deletes units (as ApplyUnits) and
// writes a source's record (as PutSyncRecord), all in one fenced
// transaction: the units and the record that owns them change together
// or not at all. When they would take more than one transaction it
// writes nothing and returns ErrTooManyWrites.
func (s *Store) ApplyUnitsWithRecord(ctx context.Context, puts []*deploy.Spec, deletes []string, r *SyncRecord, f Fence) error {
	if 2*len(puts)+3*len(deletes)+1 > maxTxnOps {
		return ErrTooManyWrites
	}
	rec := *r
	rec.URL = RedactURL(r.URL)
	b, err := json.Marshal(&rec)
	if err != nil {
		return fmt.Errorf("sync record %s: %w", r.Source, err)
	}
	ops := make([]clientv3.Op, 0, 2*len(puts)+3*len(deletes)+1)
	for _, sp := range puts {
		ops = append(ops, clientv3.OpPut(s.unitKey(sp.Name), string(sp.CanonicalJSON())), clientv3.OpDelete(s.rollbackKey(sp.Name)))
	}
	for _, n := range deletes {
		ops = append(ops, clientv3.OpDelete(s.unitKey(n)), clientv3.OpDelete(s.restartKey(n)), clientv3.OpDelete(s.rollbackKey(n)))
	}
	ops = append(ops, clientv3.OpPut(s.syncDir()+r.Source, string(b)))
	if _, err := s.commit(ctx, f, ops...); err != nil {
		return fmt.Errorf("writing units and the sync record of %s: %w", r.Source, err)
	}
	return nil
}
