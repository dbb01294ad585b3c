package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Leader is one candidate in the election under <prefix>/leader. After
// Campaign returns, Fence guards writes so that they fail once this
// candidate is deposed (its session expired or it resigned).
type Leader struct {
	session  *concurrency.Session
	election *concurrency.Election
	id       string
}

// NewLeader opens a session with the given TTL; it ends (and leadership
// with it) when the process stops renewing it for TTL.
func (s *Store) NewLeader(ctx context.Context, id string, ttl time.Duration) (*Leader, error) {
	secs := int(ttl / time.Second)
	if secs < 1 {
		secs = 1
	}
	sess, err := concurrency.NewSession(s.c, concurrency.WithTTL(secs), concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("etcd session: %w", err)
	}
	return &Leader{session: sess, election: concurrency.NewElection(sess, s.prefix+"/leader"), id: id}, nil
}

// Campaign blocks until this candidate leads or ctx ends.
func (l *Leader) Campaign(ctx context.Context) error {
	if err := l.election.Campaign(ctx, l.id); err != nil {
		return fmt.Errorf("campaigning for leader: %w", err)
	}
	return nil
}

// Fence returns the guard for this leader's writes.
func (l *Leader) Fence() Fence { return Fence{Key: l.election.Key(), Rev: l.election.Rev()} }

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

// Lead campaigns for leadership under id and, each time it wins, runs fn
// with a context that ends when leadership is lost. It campaigns again
// after a loss and returns when ctx ends (resigning if it leads).
func (s *Store) Lead(ctx context.Context, id string, ttl time.Duration, log *slog.Logger, fn func(ctx context.Context, f Fence) error) error {
	for {
		if err := s.leadOnce(ctx, id, ttl, log, fn); err != nil && ctx.Err() == nil {
			log.Error("leadership ended", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (s *Store) leadOnce(ctx context.Context, id string, ttl time.Duration, log *slog.Logger, fn func(ctx context.Context, f Fence) error) error {
	l, err := s.NewLeader(ctx, id, ttl)
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

// LeaderID returns the ID of the current leader under <prefix>/leader, or
// "" when there is none. It needs no session.
func (s *Store) LeaderID(ctx context.Context) (string, error) {
	r, err := s.c.Get(ctx, s.prefix+"/leader/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", fmt.Errorf("etcd: %w", err)
	}
	if len(r.Kvs) == 0 {
		return "", nil
	}
	return string(r.Kvs[0].Value), nil
}
