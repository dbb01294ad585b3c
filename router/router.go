package router

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
)

// Config configures a Router.
type Config struct {
	Store *store.Store
	Admin *Admin // the Caddy it configures
	// Listen, TLSListen and CertDir: see Options and FindCerts; no
	// CertDir, no HTTPS.
	Listen, TLSListen, CertDir string
	AdminSocket                string // the socket Admin speaks to, kept in every config
	// Debounce is the least time between two reads of etcd (100ms when
	// 0): a change after a quiet time is read at once, a burst of them
	// every Debounce; Resync how often it reads anyway, which is
	// also how soon it notices that etcd is lost (5s when 0); Reassert how
	// often it loads an unchanged configuration again, for a Caddy that
	// restarted without it (1m when 0).
	Debounce, Resync, Reassert time.Duration
	ReadTimeout                time.Duration // of one read of etcd (3s when 0)
	Log                        *slog.Logger
}

// Status is what a router did last.
type Status struct {
	Revision int64     `json:"revision"`         // the etcd revision of the configuration Caddy serves
	Applied  time.Time `json:"applied,omitzero"` // when Caddy took it
	Routes   int       `json:"routes"`           // its domains
	Checked  time.Time `json:"checked,omitzero"` // the last read of etcd that worked
	// EtcdError is set while etcd cannot be read: Caddy keeps serving
	// the last configuration, since EtcdLostSince.
	EtcdError     string    `json:"etcdError,omitempty"`
	EtcdLostSince time.Time `json:"etcdLostSince,omitzero"`
	CaddyError    string    `json:"caddyError,omitempty"` // the last load failed
	CertError     string    `json:"certError,omitempty"`  // certificate files missing half a pair
}

// Router keeps Caddy configured from etcd: units' domains to the
// replicas in the instance registry. It holds no state of its own (any
// number may run, each from etcd alone), and does nothing when etcd is
// lost: Caddy keeps serving what it was last given.
type Router struct {
	cfg   Config
	force chan struct{}

	mu      sync.Mutex
	status  Status
	applied []byte // the config Caddy took last; nil: load the next one whatever it is
	reloads int    // Reload calls: one during a load makes its result stale
}

// New returns a router; Run runs it.
func New(cfg Config) *Router {
	if cfg.Debounce == 0 {
		cfg.Debounce = 100 * time.Millisecond
	}
	if cfg.Resync == 0 {
		cfg.Resync = 5 * time.Second
	}
	if cfg.Reassert == 0 {
		cfg.Reassert = time.Minute
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 3 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Router{cfg: cfg, force: make(chan struct{}, 1)}
}

// Status is a copy of the router's status.
func (r *Router) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Reload makes the router load its configuration into Caddy again at
// once, changed or not: Caddy (re)started without it.
func (r *Router) Reload() {
	r.mu.Lock()
	r.applied = nil
	r.reloads++
	r.mu.Unlock()
	select {
	case r.force <- struct{}{}:
	default:
	}
}

// Run follows etcd until ctx ends: at every change under the prefix
// (at most one read every Debounce), and every Resync, it reads the units and the
// registry, and loads the configuration into Caddy when it changed.
func (r *Router) Run(ctx context.Context) error {
	wake := r.cfg.Store.WakeupsUnder(ctx, r.cfg.Resync, "units/", "instances/")
	for {
		last := time.Now()
		r.sync(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-r.force:
		}
		// The first change after a quiet time is read at once (a replica
		// that left the registry gets no request from then on); a burst
		// of changes is read at most every Debounce.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Until(last.Add(r.cfg.Debounce))):
		}
	}
}

// sync reads etcd once and loads what it comes to into Caddy if needed.
// r.mu is not held while Caddy loads, so that Status answers meanwhile.
func (r *Router) sync(ctx context.Context) {
	rd, err := r.read(ctx)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		r.etcdLost(err)
		return
	}
	r.mu.Lock()
	r.etcdBack()
	r.status.Checked = time.Now()
	r.noteCertError(rd.certErr)
	same := bytes.Equal(rd.res.Config, r.applied)
	if same && time.Since(r.status.Applied) < r.cfg.Reassert {
		r.status.Revision = rd.rev
		r.mu.Unlock()
		return
	}
	reloads := r.reloads
	r.mu.Unlock()
	err = r.cfg.Admin.Load(ctx, rd.res.Config)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reloads != reloads {
		return // a caddy started meanwhile: load again (Reload woke Run)
	}
	if err != nil {
		if r.status.CaddyError != err.Error() {
			r.cfg.Log.Error("router: caddy did not take the configuration; it serves the one before, if any", "err", err)
		}
		r.status.CaddyError = err.Error()
		r.applied = nil
		return
	}
	if !same {
		r.cfg.Log.Info("router: caddy serves a new configuration", "revision", rd.rev, "routes", len(rd.res.Routes))
	}
	r.applied = rd.res.Config
	r.status.CaddyError = ""
	r.status.Revision, r.status.Applied, r.status.Routes = rd.rev, time.Now(), len(rd.res.Routes)
}

// reading is what one read of etcd comes to.
type reading struct {
	res     *Result
	rev     int64 // the units were read at
	certErr error // from FindCerts
}

// read computes the configuration from etcd.
func (r *Router) read(ctx context.Context) (*reading, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ReadTimeout)
	defer cancel()
	in, err := readInput(ctx, r.cfg.Store)
	if err != nil {
		return nil, err
	}
	o := Options{Listen: r.cfg.Listen, TLSListen: r.cfg.TLSListen, AdminSocket: r.cfg.AdminSocket}
	var certErr error
	if r.cfg.CertDir != "" {
		o.Certs, certErr = FindCerts(r.cfg.CertDir, in.domains)
	}
	res, err := Compute(in.specs, in.instances, o)
	if err != nil {
		return nil, err
	}
	return &reading{res: res, rev: in.rev, certErr: certErr}, nil
}

func (r *Router) etcdLost(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status.EtcdError == "" {
		r.status.EtcdLostSince = time.Now()
		r.cfg.Log.Error("router: etcd is lost; caddy keeps serving the last configuration",
			"revision", r.status.Revision, "routes", r.status.Routes, "err", err)
	}
	r.status.EtcdError = err.Error()
}

// etcdBack clears the loss; r.mu is held.
func (r *Router) etcdBack() {
	if r.status.EtcdError != "" {
		r.cfg.Log.Info("router: etcd is back", "lost", time.Since(r.status.EtcdLostSince).Round(time.Millisecond))
	}
	r.status.EtcdError, r.status.EtcdLostSince = "", time.Time{}
}

// noteCertError logs a new certificate problem; r.mu is held.
func (r *Router) noteCertError(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg != "" && msg != r.status.CertError {
		r.cfg.Log.Warn("router: certificates", "err", fmt.Errorf("%s: %w", r.cfg.CertDir, err))
	}
	r.status.CertError = msg
}
