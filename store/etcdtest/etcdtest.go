// Package etcdtest starts real embedded etcd servers (internal/embedetcd:
// the v3.5 embed package, with the v2 API on) for tests: each on free
// loopback ports in a temporary directory, closed and removed when the
// test ends. `kaylee dev` starts its etcd with embedetcd.Start directly, so
// that the binary does not link package testing.
package etcdtest

import (
	"errors"
	"testing"

	"github.com/kaylee-gitops/kaylee/internal/embedetcd"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Server is a running (or stopped) embedded etcd of a test: Stop, Kill,
// Restart, Endpoints and the rest are embedetcd's.
type Server struct {
	*embedetcd.Server
}

// New starts a server for a test; it is closed and its data removed when
// the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	return start(t, embedetcd.Config{})
}

// NewNoV2 starts a server for a test without etcd's v2 API, as etcd 3.4
// and 3.5 run without --enable-v2.
func NewNoV2(t testing.TB) *Server {
	t.Helper()
	return start(t, embedetcd.Config{NoV2: true})
}

// NewTLS starts a server for a test that speaks TLS to clients (an
// https:// ClientURL), with a self-signed certificate for 127.0.0.1 whose
// file, CAFile, is the CA a client needs.
func NewTLS(t testing.TB) *Server {
	t.Helper()
	cert, key, err := embedetcd.SelfSigned(t.TempDir())
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	return start(t, embedetcd.Config{CertFile: cert, KeyFile: key})
}

func start(t testing.TB, cfg embedetcd.Config) *Server {
	t.Helper()
	var (
		s   *embedetcd.Server
		err error
	)
	// A port picked as free can be taken by someone else before etcd binds
	// it; try again with other ports.
	for range 3 {
		if s, err = embedetcd.Start(cfg); err == nil || !errors.Is(err, embedetcd.ErrAddrInUse) {
			break
		}
	}
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(s.Close)
	return &Server{s}
}

// Client returns a v3 client for the server; a test's client is closed at
// the end of the test.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	c, err := s.Server.Client()
	if err != nil {
		t.Fatalf("etcdtest: client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Cluster is several embedded members on loopback forming one etcd
// cluster, for tests of member loss. Endpoints, Leader and Close are
// embedetcd's; Members, this package's Servers, hide embedetcd's.
type Cluster struct {
	*embedetcd.Cluster
	Members []*Server
}

// NewCluster starts a cluster of n for a test; it is closed and its data
// removed when the test ends.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	var (
		c   *embedetcd.Cluster
		err error
	)
	for range 3 {
		if c, err = embedetcd.StartCluster(n); err == nil || !errors.Is(err, embedetcd.ErrAddrInUse) {
			break
		}
	}
	if err != nil {
		t.Fatalf("etcdtest: cluster: %v", err)
	}
	t.Cleanup(c.Close)
	out := &Cluster{Cluster: c}
	for _, m := range c.Members {
		out.Members = append(out.Members, &Server{m})
	}
	return out
}

// Client returns a v3 client on every member's endpoint, closed at the end
// of the test.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cl, err := c.Cluster.Client()
	if err != nil {
		t.Fatalf("etcdtest: client: %v", err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}
