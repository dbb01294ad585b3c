package store

import (
	"context"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// RolloutState is what a waiter for rollouts follows: every unit's
// status, the suspensions and the scheduler's settings, at one revision
// (Rev).
type RolloutState struct {
	Rev       int64
	Statuses  map[string]*Status
	Suspended map[string]*Suspension
	Settings  *SchedulerSettings // as GetSchedulerSettings
}

// ReadRolloutState reads the rollout state in one request.
func (s *Store) ReadRolloutState(ctx context.Context) (*RolloutState, error) {
	r, err := s.c.Txn(ctx).Then(
		clientv3.OpGet(s.statusDir(), clientv3.WithPrefix()),
		clientv3.OpGet(s.suspendedDir(), clientv3.WithPrefix()),
		clientv3.OpGet(s.schedulerKey()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("etcd: reading statuses: %w", err)
	}
	st := &RolloutState{Rev: r.Header.Revision}
	if st.Statuses, err = decodeAll[Status]("status", s.statusDir(), r.Responses[0].GetResponseRange().Kvs); err != nil {
		return nil, err
	}
	if st.Suspended, err = decodeAll[Suspension]("suspension", s.suspendedDir(), r.Responses[1].GetResponseRange().Kvs); err != nil {
		return nil, err
	}
	if st.Settings, err = viewSettings(r.Responses[2].GetResponseRange().Kvs); err != nil {
		return nil, err
	}
	return st, nil
}

// FollowRolloutState watches the statuses, the suspensions and the
// scheduler's settings from st.Rev on, applies each change to st and
// calls changed with it, until changed returns true (nil), ctx ends
// (ctx.Err()) or the watch breaks: etcd compacted past st.Rev, lost its
// leader or went away (an error; st holds what came before: read the
// state again and follow that).
func (s *Store) FollowRolloutState(ctx context.Context, st *RolloutState, changed func(*RolloutState) bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	from := clientv3.WithRev(st.Rev + 1)
	wcs := []clientv3.WatchChan{
		s.c.Watch(clientv3.WithRequireLeader(ctx), s.statusDir(), clientv3.WithPrefix(), from),
		s.c.Watch(clientv3.WithRequireLeader(ctx), s.suspendedDir(), clientv3.WithPrefix(), from),
		s.c.Watch(clientv3.WithRequireLeader(ctx), s.schedulerKey(), from),
	}
	for {
		var wr clientv3.WatchResponse
		var ok bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case wr, ok = <-wcs[0]:
		case wr, ok = <-wcs[1]:
		case wr, ok = <-wcs[2]:
		}
		if !ok {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("etcd: the watch of statuses ended")
		}
		if err := wr.Err(); err != nil {
			return fmt.Errorf("etcd: watching statuses: %w", err)
		}
		if len(wr.Events) == 0 {
			continue
		}
		for _, e := range wr.Events {
			if err := s.applyRolloutEvent(st, e); err != nil {
				return err
			}
		}
		st.Rev = wr.Header.Revision
		if changed(st) {
			return nil
		}
	}
}

// applyRolloutEvent applies a change of a status, a suspension or the
// settings to st.
func (s *Store) applyRolloutEvent(st *RolloutState, e *clientv3.Event) error {
	key := string(e.Kv.Key)
	put := e.Type == clientv3.EventTypePut
	switch {
	case key == s.schedulerKey():
		var kvs []*mvccpb.KeyValue
		if put {
			kvs = append(kvs, e.Kv)
		}
		settings, err := viewSettings(kvs)
		if err != nil {
			return err
		}
		st.Settings = settings
	case strings.HasPrefix(key, s.statusDir()):
		name := strings.TrimPrefix(key, s.statusDir())
		if !put {
			delete(st.Statuses, name)
			return nil
		}
		v, err := decodeRecord[Status]("status", e.Kv.Key, e.Kv.Value)
		if err != nil {
			return err
		}
		st.Statuses[name] = v
	case strings.HasPrefix(key, s.suspendedDir()):
		name := strings.TrimPrefix(key, s.suspendedDir())
		if !put {
			delete(st.Suspended, name)
			return nil
		}
		v, err := decodeRecord[Suspension]("suspension", e.Kv.Key, e.Kv.Value)
		if err != nil {
			return err
		}
		st.Suspended[name] = v
	}
	return nil
}
