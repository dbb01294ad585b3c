package fleetsim

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	etcd "github.com/coreos/etcd/client"
)

// newKeysAPI returns a v2 client whose requests, long-polling watches
// included, are all aborted when ctx ends. fleet's components issue their
// requests without a context of their own; without this, a killed machine
// would keep watching and a closed etcd would wait for those requests.
func newKeysAPI(ctx context.Context, endpoints []string) (etcd.KeysAPI, error) {
	// No connection pooling: a dial that completes after its request was
	// cancelled would otherwise sit idle in the pool without ever sending a
	// byte, and etcd's embedded server waits for such connections when it
	// shuts down (cmux blocks reading their first bytes).
	base := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		DisableKeepAlives:   true,
	}
	c, err := etcd.New(etcd.Config{
		Endpoints:               endpoints,
		Transport:               &cancelTransport{base: base, ctx: ctx},
		HeaderTimeoutPerRequest: 5 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	return etcd.NewKeysAPI(c), nil
}

type cancelTransport struct {
	base *http.Transport
	ctx  context.Context
}

func (t *cancelTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(t.ctx, cancel)
	resp, err := t.base.RoundTrip(r.WithContext(ctx))
	if err != nil {
		stop()
		cancel()
		return nil, err
	}
	resp.Body = &onClose{ReadCloser: resp.Body, f: func() { stop(); cancel() }}
	return resp, nil
}

// CancelRequest is part of etcd's CancelableTransport; contexts do the work.
func (t *cancelTransport) CancelRequest(*http.Request) {}

type onClose struct {
	io.ReadCloser
	once sync.Once
	f    func()
}

func (b *onClose) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.f)
	return err
}
