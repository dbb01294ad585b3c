// Package fleet reaches fleet through github.com/coreos/fleet/client — its
// registry in etcd (v2 API) by default, or fleetd's HTTP API — and drives it
// to the desired units.
package fleet

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	etcd "github.com/coreos/etcd/client"
	"github.com/coreos/fleet/client"

	"github.com/kaylee-gitops/kaylee/fleet/fleetreg"
)

// StateNotifier is a fleet API that can tell when fleet's unit states
// change (the registry can; fleet's HTTP API cannot, and is polled). A
// state back with its last value within hold of its expiry is no change
// (fleetreg.API.StateChanges).
type StateNotifier interface {
	StateChanges(ctx context.Context, retry, hold time.Duration) <-chan struct{}
}

// StateTracker is a StateNotifier that counts what it tells of
// (fleetreg.API.StateSeqs): changes of fleet's unit states and machines,
// and the states' expiries. Told of expiries alone, the scheduler makes
// no pass: a vanished state on a listed machine is held (plan_held.go),
// so a pass would plan the same; a machine that left (its agent died,
// its states expiring) is a change.
type StateTracker interface {
	StateSeqs() (changes, expiries uint64)
}

// StateRemovalTracker is a fleet API that tells the unit states fleet's
// agents removed (a unit they unloaded) from those that expired (an
// agent late to publish): fleetreg.API.StateRemovals. A vanished state is
// held only when it was not removed (see plan_held.go).
type StateRemovalTracker interface {
	StateRemovals() (map[string]time.Time, uint64)
}

// DefaultKeyPrefix is fleet's etcd key prefix.
const DefaultKeyPrefix = "/_coreos.com/fleet/"

// Config says how to reach fleet.
type Config struct {
	// Endpoint of fleet's HTTP API: unix:///var/run/fleet.sock or
	// http(s)://host:port. Empty means the registry in etcd.
	Endpoint string
	// Registry access, used when Endpoint is empty.
	EtcdEndpoints []string
	KeyPrefix     string // default DefaultKeyPrefix
	TLS           *tls.Config
	Username      string
	Password      string
	// RequestTimeout bounds each request (default 10s).
	RequestTimeout time.Duration
}

// NewAPI returns a fleet client for cfg.
func NewAPI(cfg Config) (client.API, error) {
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.Endpoint != "" {
		return newHTTPAPI(cfg)
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultKeyPrefix
	}
	if len(cfg.EtcdEndpoints) == 0 {
		return nil, fmt.Errorf("fleet registry: no etcd endpoints")
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     cfg.TLS,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 16,
	}
	c, err := etcd.New(etcd.Config{
		Endpoints:               cfg.EtcdEndpoints,
		Transport:               tr,
		Username:                cfg.Username,
		Password:                cfg.Password,
		HeaderTimeoutPerRequest: cfg.RequestTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("fleet registry at %s: %w", strings.Join(cfg.EtcdEndpoints, ","), err)
	}
	reg := fleetreg.New(etcd.NewKeysAPI(c), cfg.KeyPrefix)
	reg.IdleCloser = tr.CloseIdleConnections // see pooledAPI
	return reg, nil
}

// pooledAPI is fleet's HTTP API whose transport keeps connections for
// later requests. CloseIdleConnections closes those idle now: a user that
// is done with the API calls it (as http.Client's CloseIdleConnections
// does, through an interface) so that nothing is left open to the server.
// That matters to an etcd embedded in the same process (kaylee dev, the
// tests): a connection dialled for a request cancelled meanwhile sits idle
// without ever sending a byte, and etcd's Close waits for such connections
// (its cmux reads their first bytes) until they go.
type pooledAPI struct {
	client.API
	tr *http.Transport
}

func (p pooledAPI) CloseIdleConnections() { p.tr.CloseIdleConnections() }

func newHTTPAPI(cfg Config) (client.API, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("fleet endpoint %q: %w", cfg.Endpoint, err)
	}
	tr := &http.Transport{TLSClientConfig: cfg.TLS, MaxIdleConnsPerHost: 16}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if path == "" {
			path = u.Host // unix://relative.sock
		}
		dialer := &net.Dialer{Timeout: 5 * time.Second}
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", path)
		}
		// fleetctl's convention: any host, the socket does the routing.
		u = &url.URL{Scheme: "http", Host: "domain-sock"}
	case "http", "https":
	default:
		return nil, fmt.Errorf("fleet endpoint %q: use unix:///path/to/fleet.sock or http(s)://host:port", cfg.Endpoint)
	}
	api, err := client.NewHTTPClient(&http.Client{Transport: tr, Timeout: cfg.RequestTimeout}, *u)
	if err != nil {
		return nil, fmt.Errorf("fleet API at %s: %w", cfg.Endpoint, err)
	}
	return pooledAPI{api, tr}, nil
}
