package etcdtest

import (
	"context"
	"sync/atomic"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// CountingKV counts in N the requests made through a client's KV (a
// transaction counts once): set a client's KV to one to assert how many
// requests a piece of code makes.
type CountingKV struct {
	clientv3.KV
	N *atomic.Int64
}

func (c CountingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	c.N.Add(1)
	return c.KV.Get(ctx, key, opts...)
}

func (c CountingKV) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (*clientv3.PutResponse, error) {
	c.N.Add(1)
	return c.KV.Put(ctx, key, val, opts...)
}

func (c CountingKV) Delete(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.DeleteResponse, error) {
	c.N.Add(1)
	return c.KV.Delete(ctx, key, opts...)
}

func (c CountingKV) Do(ctx context.Context, op clientv3.Op) (clientv3.OpResponse, error) {
	c.N.Add(1)
	return c.KV.Do(ctx, op)
}

func (c CountingKV) Txn(ctx context.Context) clientv3.Txn {
	c.N.Add(1) // one request when committed
	return c.KV.Txn(ctx)
}
