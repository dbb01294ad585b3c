// Package store keeps Kaylee's state in etcd (v3 API) under a prefix:
// units (<prefix>/units/<name>, canonical JSON), restart counters, status
// records, and leader election with fenced writes.
package store

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// DefaultPrefix is the default key prefix.
const DefaultPrefix = "/kaylee2"

// Errors callers test for.
var (
	ErrNotFound = errors.New("not found")
	// ErrNotLeader: a fenced write was refused because the writer's
	// election key is gone (it was deposed).
	ErrNotLeader = errors.New("not the leader any more: write refused")
	// ErrClaimRace: a write that claims units (Fence.ClaimsAt) was
	// refused because a sync record was written after the writer read
	// them: another pass may have claimed the same units. Read again.
	ErrClaimRace = errors.New("a sync record changed since it was read: write refused")
)

// DialConfig says how to reach etcd.
type DialConfig struct {
	Endpoints         []string
	CertFile, KeyFile string
	CAFile            string
	Username          string
	Password          string
	DialTimeout       time.Duration // default 5s
}

// Dial connects to etcd and checks that it answers. When it does not, and
// an endpoint's scheme is the wrong one for its server, the error is a
// *SchemeError.
func Dial(ctx context.Context, cfg DialConfig) (*clientv3.Client, error) {
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	tlsCfg, err := cfg.TLS()
	if err != nil {
		return nil, err
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints: cfg.Endpoints, TLS: tlsCfg, Username: cfg.Username, Password: cfg.Password,
		DialTimeout: cfg.DialTimeout, Logger: zap.NewNop(), Context: ctx,
	})
	if err != nil {
		return nil, probeSchemes(ctx, cfg.Endpoints, fmt.Errorf("etcd at %s: %w", strings.Join(cfg.Endpoints, ","), err))
	}
	sctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if _, err := c.Get(sctx, "/kaylee-health-check", clientv3.WithCountOnly()); err != nil {
		c.Close()
		return nil, probeSchemes(ctx, cfg.Endpoints, &noAnswerError{endpoints: strings.Join(cfg.Endpoints, ","), err: err})
	}
	return c, nil
}

// ErrNoAnswer: no etcd endpoint answered (none runs there, or it is
// unreachable).
var ErrNoAnswer = errors.New("no answer")

// noAnswerError: etcd did not answer (errors.Is ErrNoAnswer).
type noAnswerError struct {
	endpoints string
	err       error
}

func (e *noAnswerError) Error() string {
	return fmt.Sprintf("etcd at %s does not answer: %v", e.endpoints, e.err)
}
func (e *noAnswerError) Unwrap() []error { return []error{ErrNoAnswer, e.err} }

// TLSFileError: a TLS file of the dial configuration does not load.
type TLSFileError struct {
	What  string // "CA", "client certificate and key"
	Files string
	Err   error
}

func (e *TLSFileError) Error() string {
	return fmt.Sprintf("etcd TLS %s (%s): %v", e.What, e.Files, e.Err)
}

func (e *TLSFileError) Unwrap() error { return e.Err }

// TLS is the client TLS configuration the files name, or nil for none.
func (cfg DialConfig) TLS() (*tls.Config, error) {
	if cfg.CertFile == "" && cfg.KeyFile == "" && cfg.CAFile == "" {
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CertFile != "" || cfg.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, &TLSFileError{What: "client certificate and key", Files: cfg.CertFile + ", " + cfg.KeyFile, Err: err}
		}
		t.Certificates = []tls.Certificate{cert}
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, &TLSFileError{What: "CA", Files: cfg.CAFile, Err: err}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &TLSFileError{What: "CA", Files: cfg.CAFile, Err: errors.New("no PEM certificate in it")}
		}
		t.RootCAs = pool
	}
	return t, nil
}

// Store reads and writes Kaylee's keys.
type Store struct {
	c      *clientv3.Client
	prefix string

	// decoded caches decoded units by key and mod revision: a list of
	// 1,000 unchanged units decodes none of them again.
	mu      sync.Mutex
	decoded map[string]*Unit

	events *eventLog
}

// New returns a store on an etcd client and key prefix.
func New(c *clientv3.Client, prefix string) *Store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Store{c: c, prefix: strings.TrimSuffix(prefix, "/"), decoded: map[string]*Unit{}, events: newEventLog()}
}

// Client is the etcd client.
func (s *Store) Client() *clientv3.Client { return s.c }

// Prefix is the key prefix, without trailing slash.
func (s *Store) Prefix() string { return s.prefix }

func (s *Store) unitsDir() string           { return s.prefix + "/units/" }
func (s *Store) unitKey(name string) string { return s.unitsDir() + name }
func (s *Store) restartKey(n string) string { return s.prefix + "/restart/" + n }

// Fence makes a write conditional on the writer still holding its election
// key (see Leader). The zero Fence writes unconditionally, as the CLI does.
type Fence struct {
	Key   string
	Rev   int64            // create revision of Key
	Lease clientv3.LeaseID // the session's lease Key is attached to
	// ClaimsAt, when not 0, is the revision a sync pass read the sync
	// records at: its write also requires that no record was written
	// since (ErrClaimRace), so that two passes that claim the same new
	// unit at once cannot both own it.
	ClaimsAt int64
}

func (f Fence) cmps() []clientv3.Cmp {
	if f.Key == "" {
		return nil
	}
	return []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(f.Key), "=", f.Rev)}
}

// commit runs ops in one transaction guarded by the fence. The claim
// condition is a transaction within it, so that a refusal says which
// condition failed.
func (s *Store) commit(ctx context.Context, f Fence, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	then := ops
	if f.ClaimsAt != 0 {
		unclaimed := clientv3.Compare(clientv3.ModRevision(s.syncDir()), "<", f.ClaimsAt+1).WithPrefix()
		then = []clientv3.Op{clientv3.OpTxn([]clientv3.Cmp{unclaimed}, ops, nil)}
	}
	r, err := s.c.Txn(ctx).If(f.cmps()...).Then(then...).Commit()
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	if !r.Succeeded {
		return nil, ErrNotLeader
	}
	if f.ClaimsAt != 0 {
		inner := (*clientv3.TxnResponse)(r.Responses[0].GetResponseTxn())
		if !inner.Succeeded {
			return nil, ErrClaimRace
		}
		inner.Header = r.Header
		return inner, nil
	}
	return r, nil
}

// Unit is a unit as stored.
type Unit struct {
	Name        string
	Spec        deploy.Spec
	Raw         []byte
	ModRevision int64
	// Err is set when the stored value does not decode or validate (a hand
	// written key, say); Spec is then not usable.
	Err error
	// Warnings are what the operator should hear of a usable unit: the
	// fields of its JSON that Kaylee does not know, ignored (as
	// monder/kaylee did; a script may write them).
	Warnings []string
}

func (s *Store) decodeUnit(key string, value []byte, rev int64) *Unit {
	u := &Unit{Name: strings.TrimPrefix(key, s.unitsDir()), Raw: value, ModRevision: rev}
	d, err := deploy.DecodeJSON(key, value)
	if err == nil {
		err = d.Validate()
	}
	switch {
	case err != nil:
		u.Err = err
	case d.Spec.Name != u.Name:
		// monder/kaylee scheduled the JSON's name whatever the key; Kaylee
		// keeps its contract (the key is the unit), and says both fixes.
		// Setting name instead would leave the original's fleet units of
		// the JSON's name running beside Kaylee's (see JSONName).
		u.Err = fmt.Errorf("the key is %s, the JSON's name is %s: write it under %s (setting name to %s instead leaves monder/kaylee's fleet units of %s, if any, running beside Kaylee's of %s)",
			key, d.Spec.Name, s.unitKey(d.Spec.Name), u.Name, d.Spec.Name, u.Name)
	default:
		u.Spec = d.Spec
		for _, w := range d.Ignored {
			u.Warnings = append(u.Warnings, w.Error()+": ignored")
		}
	}
	return u
}

// PutUnit stores a valid spec as canonical JSON, creating or replacing it.
// It reports whether the stored value changed.
func (s *Store) PutUnit(ctx context.Context, spec *deploy.Spec, f Fence) (changed bool, err error) {
	if err := spec.Validate(); err != nil {
		return false, err
	}
	value := string(spec.CanonicalJSON())
	key := s.unitKey(spec.Name)
	// One round trip: under the fence, put only when the value differs,
	// so that an unchanged unit causes no revision for watchers.
	r, err := s.commit(ctx, f, clientv3.OpTxn(
		[]clientv3.Cmp{clientv3.Compare(clientv3.Value(key), "=", value)}, nil,
		[]clientv3.Op{clientv3.OpPut(key, value), clientv3.OpDelete(s.rollbackKey(spec.Name))}))
	if err != nil {
		return false, fmt.Errorf("writing %s: %w", key, err)
	}
	return !r.Responses[0].GetResponseTxn().Succeeded, nil
}

// maxTxnOps stays under etcd's default --max-txn-ops (128), leaving room
// for the fence.
const maxTxnOps = 100

// commitBatches commits ops, fenced, maxTxnOps to a transaction; what
// names them in the error. On an error the batches before it are written.
func (s *Store) commitBatches(ctx context.Context, f Fence, what string, ops []clientv3.Op) error {
	for len(ops) > 0 {
		n := min(len(ops), maxTxnOps)
		if _, err := s.commit(ctx, f, ops[:n]...); err != nil {
			return fmt.Errorf("writing %s: %w", what, err)
		}
		ops = ops[n:]
	}
	return nil
}

// ApplyUnits stores specs as canonical JSON and deletes units by name, in
// fenced transactions of up to 100 writes. A unit written or deleted loses
// its rollback pin: a new spec ends a rollback. The specs must be valid: they
// come from deploy.Load, which validated them (PutUnit validates for
// callers that did not). The batches are not atomic together; every write
// is idempotent, so a retry converges.
func (s *Store) ApplyUnits(ctx context.Context, puts []*deploy.Spec, deletes []string, f Fence) error {
	// Each unit's writes are a group that stays in one transaction.
	groups := make([][]clientv3.Op, 0, len(puts)+len(deletes))
	for _, sp := range puts {
		groups = append(groups, []clientv3.Op{clientv3.OpPut(s.unitKey(sp.Name), string(sp.CanonicalJSON())), clientv3.OpDelete(s.rollbackKey(sp.Name))})
	}
	for _, n := range deletes {
		groups = append(groups, []clientv3.Op{clientv3.OpDelete(s.unitKey(n)), clientv3.OpDelete(s.restartKey(n)), clientv3.OpDelete(s.rollbackKey(n))})
	}
	var ops []clientv3.Op
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		if _, err := s.commit(ctx, f, ops...); err != nil {
			return fmt.Errorf("writing units: %w", err)
		}
		ops = ops[:0]
		return nil
	}
	for _, g := range groups {
		if len(ops)+len(g) > maxTxnOps {
			if err := flush(); err != nil {
				return err
			}
		}
		ops = append(ops, g...)
	}
	if err := flush(); err != nil {
		return err
	}
	return nil
}

// GetUnit returns one unit, or ErrNotFound.
func (s *Store) GetUnit(ctx context.Context, name string) (*Unit, error) {
	r, err := s.c.Get(ctx, s.unitKey(name))
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	if len(r.Kvs) == 0 {
		return nil, fmt.Errorf("unit %q: %w", name, ErrNotFound)
	}
	kv := r.Kvs[0]
	return s.decodeUnit(string(kv.Key), kv.Value, kv.ModRevision), nil
}

// ListUnits returns every unit sorted by name, and the store revision they
// were read at (to watch from). Units that do not decode are returned with
// Err set, not dropped. The units returned are shared: do not modify them.
func (s *Store) ListUnits(ctx context.Context) ([]*Unit, int64, error) {
	r, err := s.c.Get(ctx, s.unitsDir(), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, 0, fmt.Errorf("etcd: listing units: %w", err)
	}
	out := make([]*Unit, 0, len(r.Kvs))
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[string]bool, len(r.Kvs))
	for _, kv := range r.Kvs {
		key := string(kv.Key)
		seen[key] = true
		u := s.decoded[key]
		if u == nil || u.ModRevision != kv.ModRevision {
			u = s.decodeUnit(key, kv.Value, kv.ModRevision)
			s.decoded[key] = u
		}
		out = append(out, u)
	}
	for key := range s.decoded {
		if !seen[key] {
			delete(s.decoded, key)
		}
	}
	return out, r.Header.Revision, nil
}

// DeleteUnit removes a unit (and its restart counter); it reports whether
// the unit existed.
func (s *Store) DeleteUnit(ctx context.Context, name string, f Fence) (bool, error) {
	r, err := s.commit(ctx, f, clientv3.OpDelete(s.unitKey(name)), clientv3.OpDelete(s.restartKey(name)), clientv3.OpDelete(s.rollbackKey(name)))
	if err != nil {
		return false, fmt.Errorf("deleting unit %q: %w", name, err)
	}
	return r.Responses[0].GetResponseDeleteRange().Deleted > 0, nil
}

// Restart bumps a unit's restart counter (by: who asked, for the event
// log), which renames (and so rolls)
// every fleet unit of it. It returns the new counter.
func (s *Store) Restart(ctx context.Context, name, by string) (int64, error) {
	for {
		if _, err := s.GetUnit(ctx, name); err != nil {
			return 0, err
		}
		key := s.restartKey(name)
		r, err := s.c.Get(ctx, key)
		if err != nil {
			return 0, fmt.Errorf("etcd: %w", err)
		}
		var n, modRev int64
		if len(r.Kvs) == 1 {
			n, _ = strconv.ParseInt(string(r.Kvs[0].Value), 10, 64)
			modRev = r.Kvs[0].ModRevision
		}
		tr, err := s.c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", modRev)).
			Then(clientv3.OpPut(key, strconv.FormatInt(n+1, 10))).Commit()
		if err != nil {
			return 0, fmt.Errorf("etcd: %w", err)
		}
		if tr.Succeeded {
			s.note(ctx, Event{Kind: EventRestartRequested, Unit: name, By: by, Message: fmt.Sprintf("restart %d: every replica is replaced", n+1)})
			return n + 1, nil
		}
	}
}

// RestartCounters returns every unit's restart counter.
func (s *Store) RestartCounters(ctx context.Context) (map[string]int64, error) {
	dir := s.prefix + "/restart/"
	r, err := s.c.Get(ctx, dir, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	out := make(map[string]int64, len(r.Kvs))
	for _, kv := range r.Kvs {
		n, _ := strconv.ParseInt(string(kv.Value), 10, 64)
		out[strings.TrimPrefix(string(kv.Key), dir)] = n
	}
	return out, nil
}

// Change is a change of one unit key, of a unit's restart counter, or of
// its suspension.
type Change struct {
	Name    string
	Deleted bool
	Unit    *Unit // nil when Deleted, Restart or Suspension
	Restart bool  // the restart counter changed
	// Suspension: the unit was suspended (or resumed, when Deleted).
	Suspension bool
}

// WatchUnits sends the changes of units, restart counters and suspensions after
// revision rev (from ListUnits) until ctx ends. The channel closes on ctx
// end or when etcd compacted past rev; the caller then lists again
// (level-triggered).
func (s *Store) WatchUnits(ctx context.Context, rev int64) <-chan []Change {
	out := make(chan []Change)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, dir := range []string{s.unitsDir(), s.prefix + "/restart/", s.suspendedDir()} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel() // one watch ending ends both: the caller lists again
			s.watchDir(ctx, dir, rev, out)
		}()
	}
	go func() {
		wg.Wait()
		cancel()
		close(out)
	}()
	return out
}

func (s *Store) watchDir(ctx context.Context, dir string, rev int64, out chan<- []Change) {
	wc := s.c.Watch(clientv3.WithRequireLeader(ctx), dir, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	for wr := range wc {
		if wr.Err() != nil {
			return
		}
		evs := make([]Change, 0, len(wr.Events))
		for _, e := range wr.Events {
			key := string(e.Kv.Key)
			ev := Change{Name: strings.TrimPrefix(key, dir), Restart: dir == s.prefix+"/restart/", Suspension: dir == s.suspendedDir()}
			switch {
			case e.Type == clientv3.EventTypeDelete:
				ev.Deleted = true
			case dir == s.unitsDir():
				ev.Unit = s.decodeUnit(key, e.Kv.Value, e.Kv.ModRevision)
			}
			evs = append(evs, ev)
		}
		select {
		case out <- evs:
		case <-ctx.Done():
			return
		}
	}
}

// JSONName is the "name" of a stored value's top-level JSON object, read as
// far as the value can be read (a value refused, or cut short, after its
// name still has one), or "" when it has none. monder/kaylee named the
// fleet units of a value after it, whatever the key.
func JSONName(value []byte) string {
	d := json.NewDecoder(bytes.NewReader(value))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return ""
		}
		if key, _ := t.(string); key == "name" {
			var name string
			if d.Decode(&name) != nil {
				return ""
			}
			return name
		}
		var skip json.RawMessage
		if d.Decode(&skip) != nil {
			return ""
		}
	}
	return ""
}
