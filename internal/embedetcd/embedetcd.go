// Package embedetcd runs a real etcd server (the v3.5 embed package, with
// the v2 API on, because fleet's registry speaks v2) on loopback ports in a
// directory of its own. `kaylee dev` uses Start; tests use the helpers of
// store/etcdtest, which start servers of this package for a *testing.T.
// Nothing here imports testing: the kaylee binary links this package.
package embedetcd

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Config says where the server listens and keeps its data. The zero value
// picks free loopback ports and a new temporary directory.
type Config struct {
	Dir       string // data directory; created if missing
	ClientURL string // e.g. http://127.0.0.1:2379; empty picks a free port
	PeerURL   string // empty picks a free port
	Verbose   bool   // log at info level on stderr instead of staying quiet
	// CertFile and KeyFile, when set, make the server speak TLS to
	// clients (a free ClientURL is then https://); see NewTLS.
	CertFile, KeyFile string
	// Fsync makes writes durable (off by default: tests and `kaylee dev`
	// throw the data away).
	Fsync bool
	// Name and InitialCluster ("a=http://127.0.0.1:2380,b=…") make the
	// server a member of a cluster (see StartCluster); empty: a cluster of
	// one named kaylee.
	Name           string
	InitialCluster string
	// NoV2 turns etcd's v2 API off, as etcd 3.4/3.5 run without
	// --enable-v2 (and 3.6, which has none).
	NoV2 bool
}

// Server is a running (or stopped) embedded etcd.
type Server struct {
	cfg     Config
	tempDir bool
	unlock  func() // releases the data directory (see lockDir); nil if none

	mu      sync.Mutex
	etcd    *embed.Etcd
	closing chan struct{} // closed once the last Stop's close has finished
}

// ErrAddrInUse is returned by Start when the client or peer port is taken.
var ErrAddrInUse = errors.New("address already in use")

// Start starts a server and waits until it serves clients. The data
// directory is the server's until Close: a second Start on it fails at
// once with a *DataDirInUseError (errors.Is ErrDataDirInUse).
func Start(cfg Config) (*Server, error) {
	s := &Server{cfg: cfg}
	if s.cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "kaylee-etcd-")
		if err != nil {
			return nil, fmt.Errorf("etcd data dir: %w", err)
		}
		s.cfg.Dir, s.tempDir = dir, true
	}
	var err error
	if s.cfg.ClientURL == "" {
		if s.cfg.ClientURL, err = freeURL(); err != nil {
			return nil, err
		}
		if s.cfg.CertFile != "" {
			s.cfg.ClientURL = "https://" + strings.TrimPrefix(s.cfg.ClientURL, "http://")
		}
	}
	if s.cfg.PeerURL == "" {
		if s.cfg.PeerURL, err = freeURL(); err != nil {
			return nil, err
		}
	}
	if s.unlock, err = lockDir(s.cfg.Dir); err != nil {
		s.removeTemp()
		return nil, err
	}
	if err := s.start(); err != nil {
		s.unlock()
		s.removeTemp()
		return nil, err
	}
	return s, nil
}

// ClientURL is the URL clients connect to (v3 gRPC and the v2 HTTP API).
func (s *Server) ClientURL() string { return s.cfg.ClientURL }

// Endpoints returns ClientURL as a list, as clients take it.
func (s *Server) Endpoints() []string { return []string{s.cfg.ClientURL} }

// Dir is the data directory.
func (s *Server) Dir() string { return s.cfg.Dir }

// Client returns a new v3 client for the server; the caller closes it.
func (s *Server) Client() (*clientv3.Client, error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: s.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %s: %w", s.cfg.ClientURL, err)
	}
	return c, nil
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.etcd != nil {
		return nil
	}
	curl, err := url.Parse(s.cfg.ClientURL)
	if err != nil {
		return fmt.Errorf("etcd client URL %q: %w", s.cfg.ClientURL, err)
	}
	purl, err := url.Parse(s.cfg.PeerURL)
	if err != nil {
		return fmt.Errorf("etcd peer URL %q: %w", s.cfg.PeerURL, err)
	}
	for _, u := range []*url.URL{curl, purl} {
		if ln, err := net.Listen("tcp", u.Host); err != nil {
			return fmt.Errorf("etcd cannot listen on %s: %w (stop what uses it or pick another address)", u.Host, ErrAddrInUse)
		} else {
			ln.Close()
		}
	}
	cfg := embed.NewConfig()
	cfg.Name = "kaylee"
	if s.cfg.Name != "" {
		cfg.Name = s.cfg.Name
	}
	cfg.Dir = s.cfg.Dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*curl}, []url.URL{*curl}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*purl}, []url.URL{*purl}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	if s.cfg.InitialCluster != "" {
		cfg.InitialCluster = s.cfg.InitialCluster
		cfg.InitialClusterToken = "kaylee-test"
		// Elections within a second or two on a loaded test machine.
		cfg.TickMs, cfg.ElectionMs = 50, 500
	}
	cfg.EnableV2 = !s.cfg.NoV2
	cfg.ClientTLSInfo.CertFile, cfg.ClientTLSInfo.KeyFile = s.cfg.CertFile, s.cfg.KeyFile
	cfg.UnsafeNoFsync = !s.cfg.Fsync
	if s.cfg.Verbose {
		cfg.LogLevel = "info"
	} else {
		// Quiet, except for what ends the process: etcd's Fatal exits,
		// and a silent exit is a mystery in a test log.
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(zapcore.NewCore(
			zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.Lock(os.Stderr), zapcore.DPanicLevel)))
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		if addrInUse(err) {
			// Taken between the check above and etcd's own bind.
			return fmt.Errorf("starting embedded etcd in %s: %w: %w", s.cfg.Dir, ErrAddrInUse, err)
		}
		return fmt.Errorf("starting embedded etcd in %s: %w", s.cfg.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("embedded etcd failed: %w", err)
	case <-time.After(30 * time.Second):
		e.Close()
		return errors.New("embedded etcd did not become ready within 30s")
	}
	s.etcd = e
	return nil
}

// addrInUse: err is a listener's EADDRINUSE, wrapped or (as etcd may
// report it) only in its text.
func addrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

// closeTimeout bounds Stop: etcd's Close waits for client connections that
// never sent a request, which a client can leave behind.
const closeTimeout = 15 * time.Second

// Stop stops the server and keeps its data, so that Restart brings it back
// with the same keys: for tests of etcd outages.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.etcd == nil {
		return
	}
	e := s.etcd
	s.etcd = nil
	done := make(chan struct{})
	s.closing = done
	go func() {
		e.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(closeTimeout):
		// Listeners are closed by now; what is left is a stuck connection.
		fmt.Fprintf(os.Stderr, "embedetcd: etcd at %s still closing after %s; going on\n", s.cfg.ClientURL, closeTimeout)
	}
}

// Kill stops the server as a crash would: without handing its raft
// leadership over first (Stop does). Its data stays for Restart.
func (s *Server) Kill() {
	s.mu.Lock()
	if e := s.etcd; e != nil {
		e.Server.HardStop()
	}
	s.mu.Unlock()
	s.Stop()
}

// Restart starts a stopped server again on the same ports and data.
func (s *Server) Restart() error {
	var err error
	for range 20 { // the old listeners may take a moment to go
		if err = s.start(); err == nil || !errors.Is(err, ErrAddrInUse) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// Close stops the server and removes its data if Start created the directory.
//
// A close that Stop gave up on is still writing to the data directory:
// removing it then makes etcd fail fatally (zap's Fatal exits the process,
// silently with a quiet logger). So Close waits for it, a while longer,
// and leaves the directory behind if it never ends.
func (s *Server) Close() {
	s.Stop()
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing != nil {
		select {
		case <-closing:
		case <-time.After(2 * time.Minute):
			fmt.Fprintf(os.Stderr, "embedetcd: etcd at %s never finished closing; its data stays in %s\n", s.cfg.ClientURL, s.cfg.Dir)
			s.release()
			return
		}
	}
	s.release()
	s.removeTemp()
}

// release gives the data directory up (once).
func (s *Server) release() {
	s.mu.Lock()
	unlock := s.unlock
	s.unlock = nil
	s.mu.Unlock()
	if unlock != nil {
		unlock()
	}
}

func (s *Server) removeTemp() {
	if s.tempDir {
		os.RemoveAll(s.cfg.Dir)
	}
}

func freeURL() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return "http://" + ln.Addr().String(), nil
}

// IsLeader reports whether this running member is its cluster's raft
// leader.
func (s *Server) IsLeader() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.etcd != nil && s.etcd.Server.Leader() == s.etcd.Server.ID()
}

// Running reports whether the server runs (it was not stopped).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.etcd != nil
}

// Cluster is several embedded members on loopback forming one etcd
// cluster, for tests of member loss.
type Cluster struct {
	Members []*Server
}

// StartCluster starts n members together and waits until each serves.
func StartCluster(n int) (*Cluster, error) {
	c := &Cluster{}
	var initial []string
	for i := range n {
		curl, err := freeURL()
		if err != nil {
			return nil, err
		}
		purl, err := freeURL()
		if err != nil {
			return nil, err
		}
		dir, err := os.MkdirTemp("", "kaylee-etcd-")
		if err != nil {
			return nil, fmt.Errorf("etcd data dir: %w", err)
		}
		name := fmt.Sprintf("m%d", i)
		c.Members = append(c.Members, &Server{cfg: Config{Dir: dir, ClientURL: curl, PeerURL: purl, Name: name}, tempDir: true})
		initial = append(initial, name+"="+purl)
	}
	errs := make(chan error, n)
	for _, m := range c.Members {
		m.cfg.InitialCluster = strings.Join(initial, ",")
		go func() { errs <- m.start() }() // each waits for a quorum: start them together
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		c.Close()
		return nil, first
	}
	return c, nil
}

// Endpoints are every member's client URL.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.ClientURL())
	}
	return out
}

// Leader returns the index of the raft leader among the running members,
// or -1 while there is none.
func (c *Cluster) Leader() int {
	for i, m := range c.Members {
		if m.IsLeader() {
			return i
		}
	}
	return -1
}

// Client returns a new v3 client on every member's endpoint; the caller
// closes it.
func (c *Cluster) Client() (*clientv3.Client, error) {
	cl, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %s: %w", strings.Join(c.Endpoints(), ","), err)
	}
	return cl, nil
}

// Close stops every member and removes their data.
func (c *Cluster) Close() {
	var wg sync.WaitGroup
	for _, m := range c.Members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.Close()
		}()
	}
	wg.Wait()
}
