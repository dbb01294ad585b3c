package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/internal/redact"
)

// SyncRecord is what a git source last applied, at <prefix>/sync/<source>.
type SyncRecord struct {
	Source    string      `json:"source"`
	URL       string      `json:"url"`
	Path      string      `json:"path,omitempty"`
	Ref       string      `json:"ref"`
	Revision  string      `json:"revision"` // full commit hash
	Time      time.Time   `json:"time"`
	Created   int         `json:"created"`
	Updated   int         `json:"updated"`
	Pruned    int         `json:"pruned"`
	Unchanged int         `json:"unchanged"`
	Errors    []SyncError `json:"errors"`
	// Inventory maps each unit this source owns to the file defining it:
	// only these units are ever pruned by it.
	Inventory map[string]string `json:"inventory"`
	// RolledBack: units left rolled back (kaylee rollback) although git
	// has another version, with the history revision they run.
	RolledBack map[string]int64 `json:"rolledBack,omitempty"`
	// ConflictsWith: units of other sources this source's units may name
	// in conflicts (its config's conflictsWith: names or families).
	ConflictsWith []string `json:"conflictsWith,omitempty"`
	// Frozen: a revision fetched that a freeze holds (Revision stays the
	// one applied); FrozenUnits: units of the source a freeze holds while
	// the rest applied; Freeze: the source's windows (see freeze.go).
	Frozen      *FrozenRevision            `json:"frozen,omitempty"`
	FrozenUnits map[string]*FrozenRevision `json:"frozenUnits,omitempty"`
	Freeze      []deploy.FreezeWindow      `json:"freeze,omitempty"`
}

// SyncError is a file that failed in a sync pass.
type SyncError struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

func (e SyncError) String() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Message)
	}
	return e.File + ": " + e.Message
}

func (s *Store) syncDir() string { return s.prefix + "/sync/" }

// PutSyncRecord writes a source's record (fenced). The repository URL
// is written with its credentials masked (RedactURL).
func (s *Store) PutSyncRecord(ctx context.Context, r *SyncRecord, f Fence) error {
	rec := *r
	rec.URL = RedactURL(r.URL)
	return s.putRecord(ctx, "sync record", s.syncDir()+r.Source, &rec, f)
}

// ListSyncRecords returns every source's record by source name.
func (s *Store) ListSyncRecords(ctx context.Context) (map[string]*SyncRecord, error) {
	return listRecords[SyncRecord](ctx, s, "sync record", s.syncDir())
}

// GetSyncRecord returns a source's record, or ErrNotFound.
func (s *Store) GetSyncRecord(ctx context.Context, source string) (*SyncRecord, error) {
	return getRecord[SyncRecord](ctx, s, "sync record", s.syncDir()+source)
}

// Trigger asks the leader to sync a source now; after, when not empty, is
// the commit a webhook announced. Any process may call it.
func (s *Store) Trigger(ctx context.Context, source, after string) error {
	b, _ := json.Marshal(struct {
		After string    `json:"after,omitempty"`
		Time  time.Time `json:"time"`
	}{after, time.Now()})
	if _, err := s.c.Put(ctx, s.prefix+"/hooks/"+source, string(b)); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	return nil
}

// WatchTriggers sends the commit of each trigger of a source ("" when the
// webhook named none) until ctx ends or the watch breaks.
func (s *Store) WatchTriggers(ctx context.Context, source string) <-chan string {
	out := make(chan string)
	go func() {
		defer close(out)
		for wr := range s.c.Watch(clientv3.WithRequireLeader(ctx), s.prefix+"/hooks/"+source) {
			if wr.Err() != nil {
				return
			}
			for _, e := range wr.Events {
				if e.Type != clientv3.EventTypePut {
					continue
				}
				var v struct{ After string }
				_ = json.Unmarshal(e.Kv.Value, &v)
				select {
				case out <- v.After:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// SyncAttempt is the last sync pass of a source, whatever its result, at
// <prefix>/attempts/<source>; the record holds what was last applied.
type SyncAttempt struct {
	Source   string    `json:"source"`
	Time     time.Time `json:"time"`
	Took     float64   `json:"tookSeconds"`
	Ref      string    `json:"ref,omitempty"`
	Revision string    `json:"revision,omitempty"` // what was fetched, when it was
	Result   string    `json:"result"`
	Message  string    `json:"message,omitempty"` // why, when it did not apply
	Leader   string    `json:"leader,omitempty"`  // the process that made it
}

// Results of a sync attempt.
const (
	AttemptSynced     = "synced"      // applied, every file good
	AttemptFileErrors = "file-errors" // applied; some files failed and their units were held
	AttemptRefused    = "refused"     // a safety rule refused it: nothing written
	AttemptUnverified = "unverified"  // the revision's signature did not verify: nothing written
	AttemptFailed     = "failed"      // git or etcd could not be read: nothing written
	AttemptSuspended  = "suspended"   // the source is suspended: nothing fetched
	AttemptFrozen     = "frozen"      // a freeze held the revision: recorded, nothing applied
)

func (s *Store) attemptDir() string { return s.prefix + "/attempts/" }

// PutSyncAttempt writes a source's last attempt (fenced), with the
// credentials of any URL in its message masked.
func (s *Store) PutSyncAttempt(ctx context.Context, a *SyncAttempt, f Fence) error {
	at := *a
	at.Message = redact.Text(a.Message)
	return s.putRecord(ctx, "sync attempt", s.attemptDir()+a.Source, &at, f)
}

// ListSyncAttempts returns every source's last attempt by source name.
func (s *Store) ListSyncAttempts(ctx context.Context) (map[string]*SyncAttempt, error) {
	return listRecords[SyncAttempt](ctx, s, "sync attempt", s.attemptDir())
}

// RedactURL masks the credentials of a repository URL, for what is
// stored and shown: https://user:password@host/… and https://token@host/…
// become https://***@host/…; an ssh user stays (see internal/redact).
func RedactURL(u string) string { return redact.URL(u) }
