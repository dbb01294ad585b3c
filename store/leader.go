package store

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Election names one leadership: the scheduler's, or one git source's
// sync. Each has its own key under the prefix, so that leading one role
// never keeps another from being led.
type Election string

// SchedulerElection is the scheduler's election, at <prefix>/leader (the
// key every Kaylee version has used for it).
const SchedulerElection Election = "leader"

// NotifyElection is the election of the process that sends the
// notifications, at <prefix>/notify-leader.
const NotifyElection Election = "notify-leader"

// SourceElection is the election of one git source's sync, at
// <prefix>/sync-leader/<source>.
func SourceElection(source string) Election { return Election("sync-leader/" + source) }

// Leader is one candidate in an election. After Campaign returns, Fence
// guards writes so that they fail once this candidate is deposed (its
// session expired or it resigned).
type Leader struct {
	session  *concurrency.Session
	election *concurrency.Election
	id       string
}

// NewLeader opens a session with the given TTL; it ends (and leadership
// with it) when the process stops renewing it for TTL.
func (s *Store) NewLeader(ctx context.Context, e Election, id string, ttl time.Duration) (*Leader, error) {
	secs := int(ttl / time.Second)
	if secs < 1 {
		secs = 1
	}
	sess, err := concurrency.NewSession(s.c, concurrency.WithTTL(secs), concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("etcd session: %w", err)
	}
	return &Leader{session: sess, election: concurrency.NewElection(sess, s.electionKey(e)), id: id}, nil
}

// Campaign blocks until this candidate leads or ctx ends.
func (l *Leader) Campaign(ctx context.Context) error {
	if err := l.election.Campaign(ctx, l.id); err != nil {
		return fmt.Errorf("campaigning for leader: %w", err)
	}
	return nil
}

// Fence returns the guard for this leader's writes.
func (l *Leader) Fence() Fence {
	return Fence{Key: l.election.Key(), Rev: l.election.Rev(), Lease: l.session.Lease()}
}

// Done is closed when the session ends: leadership is lost.
func (l *Leader) Done() <-chan struct{} { return l.session.Done() }

// Resign gives up leadership and closes the session.
func (l *Leader) Resign(ctx context.Context) error {
	err := l.election.Resign(ctx)
	if cerr := l.session.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *Store) electionKey(e Election) string { return s.prefix + "/" + string(e) }

// Lead campaigns in election e under id and, each time it wins, runs fn
// with a context that ends when leadership is lost. It campaigns again
// after a loss and returns when ctx ends (resigning if it leads).
func (s *Store) Lead(ctx context.Context, e Election, id string, ttl time.Duration, log *slog.Logger, fn func(ctx context.Context, f Fence) error) error {
	log = log.With("election", string(e))
	for {
		if err := s.leadOnce(ctx, e, id, ttl, log, fn); err != nil && ctx.Err() == nil {
			log.Error("leadership ended", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (s *Store) leadOnce(ctx context.Context, e Election, id string, ttl time.Duration, log *slog.Logger, fn func(ctx context.Context, f Fence) error) error {
	l, err := s.NewLeader(ctx, e, id, ttl)
	if err != nil {
		return err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = l.Resign(rctx)
	}()
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-l.Done():
			log.Warn("lost leadership: etcd session ended", "id", id)
			cancel()
		case <-lctx.Done():
		}
	}()
	if err := l.Campaign(lctx); err != nil {
		return err
	}
	log.Info("became leader", "id", id)
	return fn(lctx, l.Fence())
}

// LeaderID returns the ID of the current leader of election e, or "" when
// there is none. It needs no session.
func (s *Store) LeaderID(ctx context.Context, e Election) (string, error) {
	r, err := s.c.Get(ctx, s.electionKey(e)+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", fmt.Errorf("etcd: %w", err)
	}
	if len(r.Kvs) == 0 {
		return "", nil
	}
	return string(r.Kvs[0].Value), nil
}

// SourceLeaders returns, for each git source whose sync has a leader, the
// leader's ID.
func (s *Store) SourceLeaders(ctx context.Context) (map[string]string, error) {
	dir := s.electionKey(SourceElection(""))
	r, err := s.c.Get(ctx, dir, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	out := map[string]string{}
	first := map[string]int64{}
	for _, kv := range r.Kvs {
		source, _, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), dir), "/")
		if !ok {
			continue
		}
		if rev, seen := first[source]; !seen || kv.CreateRevision < rev {
			first[source], out[source] = kv.CreateRevision, string(kv.Value)
		}
	}
	return out, nil
}

// Confirm checks that the fence still stands, with a linearizable read of
// its key, and returns how long it stands at least, counted from before
// the call: the remaining time to live of its lease, which etcd does not
// shorten. A writer that cannot guard a write with the fence (a fleet
// call: fleet's registry is in etcd's v2 keyspace, out of reach of a v3
// transaction) makes it only within that time. It returns ErrNotLeader
// when the key is gone or belongs to a newer candidate. The zero Fence
// always stands.
func (s *Store) Confirm(ctx context.Context, f Fence) (time.Duration, error) {
	if f.Key == "" {
		return time.Duration(1<<62 - 1), nil
	}
	start := time.Now()
	r, err := s.c.Get(ctx, f.Key)
	if err != nil {
		return 0, fmt.Errorf("etcd: confirming leadership: %w", err)
	}
	if len(r.Kvs) == 0 || r.Kvs[0].CreateRevision != f.Rev {
		return 0, ErrNotLeader
	}
	if f.Lease == clientv3.NoLease {
		return time.Duration(1<<62 - 1), nil
	}
	ttl, err := s.c.TimeToLive(ctx, f.Lease)
	if err != nil {
		return 0, fmt.Errorf("etcd: confirming leadership: lease: %w", err)
	}
	if ttl.TTL < 0 { // the lease is gone
		return 0, ErrNotLeader
	}
	// TTL is in whole seconds, rounded down: at least that much remains
	// (0: under a second, until the next keep-alive).
	return max(0, time.Duration(ttl.TTL)*time.Second-time.Since(start)), nil
}
