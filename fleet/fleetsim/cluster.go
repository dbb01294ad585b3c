// Package fleetsim runs a fleet cluster in a box: fleet's own engine,
// agents, heartbeats and unit-state publishers (github.com/coreos/fleet
// v1.0.0) against a real etcd, for N machines with metadata. Only systemd is
// simulated (see Systemd), so every scheduling decision is fleet's.
package fleetsim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	etcd "github.com/coreos/etcd/client"
	"github.com/coreos/fleet/agent"
	"github.com/coreos/fleet/client"
	"github.com/coreos/fleet/engine"
	"github.com/coreos/fleet/heart"
	"github.com/coreos/fleet/machine"
	"github.com/coreos/fleet/pkg/lease"
	"github.com/coreos/fleet/registry"
	"github.com/coreos/fleet/unit"

	"github.com/kaylee-gitops/kaylee/fleet/fleetreg"
)

// Defaults of Config.
const (
	DefaultKeyPrefix      = "/_coreos.com/fleet/"
	DefaultStartDelay     = 300 * time.Millisecond
	DefaultFailMarker     = "sim-fail"
	DefaultTTL            = 10 * time.Second
	DefaultEngineInterval = 2 * time.Second
	DefaultCrashAfter     = 200 * time.Millisecond
	// DefaultHealthDelay is how long a unit with ExecStartPost (a health
	// check) stays in activating/start-post before its check passes.
	DefaultHealthDelay = 300 * time.Millisecond
	// DefaultUnhealthyMarker marks a unit whose health check never passes.
	DefaultUnhealthyMarker = "sim-unhealthy"
	// DefaultStartPeriod is how long an unhealthy unit stays in
	// activating/start-post before its ExecStartPost gives up.
	DefaultStartPeriod = time.Second
	// DefaultRestartScale turns Kaylee's RestartSec=10 into 2.5s of
	// activating/auto-restart: longer than the scheduler's 2s poll, so it
	// sees the restarts, and short enough for tests.
	DefaultRestartScale = 0.25
)

// Config describes a simulated cluster.
type Config struct {
	Endpoints []string        // etcd client URLs; the v2 API must be on
	KeyPrefix string          // fleet's etcd key prefix; default DefaultKeyPrefix
	Machines  []MachineConfig // see Machines for a quick list
	// StartDelay is how long a unit takes to go from start to running.
	StartDelay time.Duration
	// FailMarker: a unit whose unit file contains it crashes after
	// starting: with Restart=always (or on-failure) it runs for CrashAfter
	// and systemd restarts it after RestartDelay, forever; without, it
	// fails. See Systemd.
	FailMarker string
	// CrashAfter: how long a failing unit under Restart= runs
	// (active/running) before its process exits. Default
	// DefaultCrashAfter (200ms: less than fleet's 1s state poll, so fleet
	// often misses it, as it misses a real container that exits at once).
	CrashAfter time.Duration
	// RestartDelay: how long a crashed unit stays in
	// activating/auto-restart before systemd starts it again. Zero: the
	// unit file's RestartSec (systemd's default 100ms when it has none)
	// times RestartScale; Kaylee renders RestartSec=10, which gives 2.5s
	// by default.
	RestartDelay time.Duration
	// RestartScale scales RestartSec when RestartDelay is zero. Default
	// DefaultRestartScale (0.25); 1 is systemd's own timing.
	RestartScale float64
	// HealthDelay: a unit whose unit file has an ExecStartPost line (Kaylee
	// renders a spec's health checks as one) goes, once started (after
	// StartDelay), to activating/start-post and stays there this long
	// while its check passes, then runs. Default DefaultHealthDelay.
	HealthDelay time.Duration
	// UnhealthyMarker: a unit with ExecStartPost whose unit file contains
	// it never passes its check: it stays in activating/start-post for
	// StartPeriod, then its ExecStartPost exits 1 and systemd fails the
	// start: with Restart=always (or on-failure) it waits in
	// activating/auto-restart (as a crash does, see RestartDelay) and
	// starts again, forever; without, it ends failed. A unit without
	// ExecStartPost has no check and runs whatever its file says. Default
	// DefaultUnhealthyMarker.
	UnhealthyMarker string
	// StartPeriod: how long an unhealthy unit's check is given. On real
	// systemd it is the spec's health.startPeriod, which the rendered
	// script enforces; the simulation does not parse the script and uses
	// this for every unit. Default DefaultStartPeriod.
	StartPeriod time.Duration
	// StopDelay: how long a unit that is stopped spends in
	// deactivating/stop-sigterm (ExecStop, a database flushing) before it
	// is inactive/dead. Zero (the default): stopping is instant.
	StopDelay time.Duration
	// TTL of machine presence and of published unit states (fleet's
	// agent_ttl). A killed machine's units move after about this long.
	TTL time.Duration
	// EngineInterval is how often fleet's engine reconciles (fleet's
	// engine_reconcile_interval); its leader lease lasts five intervals.
	EngineInterval time.Duration
	Logger         *slog.Logger
}

// MachineConfig is one simulated machine.
type MachineConfig struct {
	ID       string // 32 hex digits, like /etc/machine-id
	PublicIP string
	Metadata map[string]string
}

// Machines returns n machine configs with stable IDs and IPs; metadata[i]
// (if given) goes to machine i, and a single map goes to every machine.
func Machines(n int, metadata ...map[string]string) []MachineConfig {
	out := make([]MachineConfig, n)
	for i := range out {
		sum := sha256.Sum256(fmt.Appendf(nil, "kaylee-fleetsim-%d", i))
		out[i] = MachineConfig{
			ID:       hex.EncodeToString(sum[:16]),
			PublicIP: fmt.Sprintf("192.0.2.%d", i+1),
			Metadata: map[string]string{},
		}
		var md map[string]string
		switch {
		case len(metadata) == 1:
			md = metadata[0]
		case i < len(metadata):
			md = metadata[i]
		}
		for k, v := range md {
			out[i].Metadata[k] = v
		}
	}
	return out
}

// Cluster is a running simulated fleet cluster.
type Cluster struct {
	cfg      Config
	ctx      context.Context // ends at Close: aborts every etcd request
	cancel   context.CancelFunc
	kAPI     etcd.KeysAPI
	reg      *registry.EtcdRegistry
	machines []*Machine
}

// Start registers every machine and starts its fleet components. It
// returns once every machine is visible in fleet's registry.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("fleetsim: no etcd endpoints")
	}
	if len(cfg.Machines) == 0 {
		return nil, errors.New("fleetsim: no machines")
	}
	seen := map[string]bool{}
	for _, mc := range cfg.Machines {
		if mc.ID == "" || seen[mc.ID] {
			return nil, fmt.Errorf("fleetsim: machine ID %q is empty or repeated", mc.ID)
		}
		seen[mc.ID] = true
	}
	cfg.setDefaults()
	c := &Cluster{cfg: cfg}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	kAPI, err := newKeysAPI(c.ctx, cfg.Endpoints)
	if err != nil {
		c.cancel()
		return nil, fmt.Errorf("fleetsim: etcd v2 client: %w", err)
	}
	c.kAPI = kAPI
	c.reg = registry.NewEtcdRegistry(c.kAPI, cfg.KeyPrefix)
	for _, mc := range cfg.Machines {
		c.machines = append(c.machines, c.newMachine(mc))
	}
	for _, m := range c.machines {
		if err := m.start(ctx); err != nil {
			if ctx.Err() != nil {
				c.cancel() // stopping: Close waits on no etcd request
			}
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// setDefaults gives each field left zero its default.
func (cfg *Config) setDefaults() {
	setDefault(&cfg.KeyPrefix, DefaultKeyPrefix)
	setDefault(&cfg.StartDelay, DefaultStartDelay)
	setDefault(&cfg.FailMarker, DefaultFailMarker)
	setDefault(&cfg.CrashAfter, DefaultCrashAfter)
	setDefault(&cfg.RestartScale, DefaultRestartScale)
	setDefault(&cfg.HealthDelay, DefaultHealthDelay)
	setDefault(&cfg.UnhealthyMarker, DefaultUnhealthyMarker)
	setDefault(&cfg.StartPeriod, DefaultStartPeriod)
	setDefault(&cfg.TTL, DefaultTTL)
	setDefault(&cfg.EngineInterval, DefaultEngineInterval)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
}

// setDefault sets *v to def when *v is its type's zero value.
func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// newMachine is the machine of mc in the cluster, not started, with a
// simulated systemd configured as the cluster is.
func (c *Cluster) newMachine(mc MachineConfig) *Machine {
	cfg := c.cfg
	m := &Machine{cluster: c, state: machine.MachineState{ID: mc.ID, PublicIP: mc.PublicIP, Metadata: mc.Metadata, Version: "1.0.0"}}
	m.systemd = newSystemd(systemdConfig{startDelay: cfg.StartDelay, failMarker: cfg.FailMarker,
		crashAfter: cfg.CrashAfter, restartDelay: cfg.RestartDelay, restartScale: cfg.RestartScale,
		healthDelay: cfg.HealthDelay, unhealthyMarker: cfg.UnhealthyMarker, startPeriod: cfg.StartPeriod,
		stopDelay: cfg.StopDelay})
	return m
}

// API is a fleet client over the cluster's registry, as fleetctl uses with
// --endpoint pointing at etcd.
func (c *Cluster) API() client.API { return fleetreg.New(c.kAPI, c.cfg.KeyPrefix) }

// KeyPrefix is fleet's etcd key prefix.
func (c *Cluster) KeyPrefix() string { return c.cfg.KeyPrefix }

// Machines returns the machines in the order they were configured.
func (c *Cluster) Machines() []*Machine { return c.machines }

// Machine returns the machine with the given ID, or nil.
func (c *Cluster) Machine(id string) *Machine {
	for _, m := range c.machines {
		if m.state.ID == id {
			return m
		}
	}
	return nil
}

// Kill stops a machine as if it lost power: its heartbeat, agent and engine
// stop and its units die. fleet reschedules its units once its presence
// expires (about TTL).
func (c *Cluster) Kill(id string) error {
	m := c.Machine(id)
	if m == nil {
		return fmt.Errorf("fleetsim: no machine %q", id)
	}
	m.kill()
	return nil
}

// Revive boots a killed machine again, with no units running.
func (c *Cluster) Revive(ctx context.Context, id string) error {
	m := c.Machine(id)
	if m == nil {
		return fmt.Errorf("fleetsim: no machine %q", id)
	}
	return m.start(ctx)
}

// Close stops every machine and removes them from the registry.
func (c *Cluster) Close() {
	for _, m := range c.machines {
		m.kill()
		_ = c.reg.RemoveMachineState(m.state.ID)
	}
	c.cancel()
}

// Machine is one simulated fleet machine.
type Machine struct {
	cluster *Cluster
	state   machine.MachineState
	systemd *Systemd

	mu     sync.Mutex
	stop   chan struct{}      // nil while dead
	cancel context.CancelFunc // cuts this life's etcd requests
	wg     sync.WaitGroup
}

var _ machine.Machine = (*Machine)(nil)

// State implements fleet's machine.Machine.
func (m *Machine) State() machine.MachineState { return m.state }

// ID is the machine ID.
func (m *Machine) ID() string { return m.state.ID }

// PublicIP is the machine's advertised address.
func (m *Machine) PublicIP() string { return m.state.PublicIP }

// Systemd is the machine's simulated systemd.
func (m *Machine) Systemd() *Systemd { return m.systemd }

// Alive reports whether the machine is running.
func (m *Machine) Alive() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stop != nil
}

func (m *Machine) start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stop != nil {
		return nil
	}
	c := m.cluster
	cfg := c.cfg
	// Each life of a machine has its own etcd client, cut when it dies.
	life, cancel := context.WithCancel(c.ctx)
	kAPI, err := newKeysAPI(life, cfg.Endpoints)
	if err != nil {
		cancel()
		return fmt.Errorf("fleetsim: etcd v2 client: %w", err)
	}
	reg := registry.NewEtcdRegistry(kAPI, cfg.KeyPrefix)
	hrt := heart.New(reg, m)
	// ctx ending cuts the registration's requests short: an etcd that
	// does not answer holds each for seconds.
	abort := context.AfterFunc(ctx, cancel)
	for {
		_, err := hrt.Register(cfg.TTL)
		if err == nil {
			break
		}
		// An entry left by an earlier life of this machine: beat instead.
		if _, berr := hrt.Beat(cfg.TTL); berr == nil {
			break
		}
		select {
		case <-ctx.Done():
			cancel()
			return fmt.Errorf("fleetsim: registering machine %s: %w (last error: %v)", m.state.ID, ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	if !abort() { // ctx ended as the registration succeeded: life is over
		return fmt.Errorf("fleetsim: registering machine %s: %w", m.state.ID, ctx.Err())
	}
	stop := make(chan struct{})
	m.stop, m.cancel = stop, cancel
	gen := unit.NewUnitStateGenerator(m.systemd)
	a := agent.New(m.systemd, gen, reg, m, cfg.TTL)
	rStream := registry.NewEtcdEventStream(kAPI, cfg.KeyPrefix)
	ar := agent.NewReconciler(reg, rStream)
	pub := agent.NewUnitStatePublisher(reg, m, cfg.TTL)
	eng := engine.New(reg, lease.NewEtcdLeaseManager(kAPI, cfg.KeyPrefix), rStream, m, nil)
	beats := make(chan *unit.UnitStateHeartbeat)
	log := cfg.Logger.With("machine", m.state.ID[:8])
	components := []func(){
		func() { m.heartbeat(hrt, stop, log) },
		func() { a.Heartbeat(stop) },
		func() { ar.Run(a, stop) },
		func() { gen.Run(beats, stop) },
		func() { pub.Run(beats, stop) },
		func() { eng.Run(cfg.EngineInterval, stop) },
	}
	for _, f := range components {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			f()
		}()
	}
	// fleet's generator can block sending to the publisher after stop;
	// drain it so that a killed machine leaves no goroutine behind.
	go func() {
		<-stop
		for {
			select {
			case <-beats:
			case <-time.After(3 * time.Second):
				return
			}
		}
	}()
	log.Info("fleet machine up", "ip", m.state.PublicIP, "metadata", m.state.Metadata)
	return nil
}

// heartbeat keeps the machine's presence in the registry, as fleetd's
// monitor does.
func (m *Machine) heartbeat(hrt heart.Heart, stop <-chan struct{}, log *slog.Logger) {
	t := time.NewTicker(m.cluster.cfg.TTL / 4)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if _, err := hrt.Beat(m.cluster.cfg.TTL); err != nil {
				log.Warn("fleet machine heartbeat failed", "err", err)
			}
		}
	}
}

func (m *Machine) kill() {
	m.mu.Lock()
	stop, cancel := m.stop, m.cancel
	m.stop, m.cancel = nil, nil
	m.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	cancel()
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		m.cluster.cfg.Logger.Warn("fleet machine components slow to stop", "machine", m.state.ID)
	}
	m.systemd.crash()
}
