package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// JSON records (statuses, sync records) share these helpers; what names the
// record in errors is kind ("status", "sync record").

func (s *Store) putRecord(ctx context.Context, kind, key string, v any, f Fence) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s %s: %w", kind, key, err)
	}
	if _, err := s.commit(ctx, f, clientv3.OpPut(key, string(b))); err != nil {
		return fmt.Errorf("writing %s %s: %w", kind, key, err)
	}
	return nil
}

func getRecord[T any](ctx context.Context, s *Store, kind, key string) (*T, error) {
	r, err := s.c.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("etcd: reading %s: %w", key, err)
	}
	if len(r.Kvs) == 0 {
		return nil, fmt.Errorf("%s %s: %w", kind, key, ErrNotFound)
	}
	return decodeRecord[T](kind, r.Kvs[0].Key, r.Kvs[0].Value)
}

// listRecords returns the records under dir by the rest of their key.
func listRecords[T any](ctx context.Context, s *Store, kind, dir string, opts ...clientv3.OpOption) (map[string]*T, error) {
	r, err := s.c.Get(ctx, dir, append(opts, clientv3.WithPrefix())...)
	if err != nil {
		return nil, fmt.Errorf("etcd: listing %s: %w", dir, err)
	}
	out := make(map[string]*T, len(r.Kvs))
	for _, kv := range r.Kvs {
		v, err := decodeRecord[T](kind, kv.Key, kv.Value)
		if err != nil {
			return nil, err
		}
		out[strings.TrimPrefix(string(kv.Key), dir)] = v
	}
	return out, nil
}

func decodeRecord[T any](kind string, key, value []byte) (*T, error) {
	var v T
	if err := json.Unmarshal(value, &v); err != nil {
		return nil, fmt.Errorf("%s: not a %s: %w (fix or delete the key)", key, kind, err)
	}
	return &v, nil
}
