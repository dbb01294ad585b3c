// Package agent is Kaylee's long-running runtime: the scheduler and the
// sync loops, each under its own leader election, and the HTTP endpoints
// beside them (health, readiness, metrics, webhooks, the console).
//
// kaylee server, the sync loop of kaylee sync, kaylee agent and kaylee dev
// are configurations of one Run: a Config with a Scheduler and no Sources
// is the server, one with Sources and no Scheduler the sync loop, one with
// both the agent; dev gives a store on its embedded etcd and the simulated
// fleet's API. The package parses no flags and prints nothing for people:
// its errors name what failed (see ListenError), the CLI names its flags.
package agent

import (
	"context"
	"log/slog"
	"time"

	etcd "github.com/coreos/etcd/client"
	"github.com/coreos/fleet/client"

	"github.com/kaylee-gitops/kaylee/config"
	"github.com/kaylee-gitops/kaylee/console"
	"github.com/kaylee-gitops/kaylee/fleet"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Config is one agent: its roles, what they reach and what it serves.
type Config struct {
	// Name is the command, for the log: agent, server, sync, dev.
	Name string
	// ID names this process in every election and in what it records.
	ID    string
	Store *store.Store
	Log   *slog.Logger
	// LeaseTTL is every leadership's lease: another process takes a role
	// over this long after its leader dies.
	LeaseTTL time.Duration

	// Scheduler, when set, runs the scheduler under its election.
	Scheduler *Scheduler
	// Sources are synced, each under its own election.
	Sources []Source
	// Background runs for the agent's lifetime beside the roles (the
	// notifications' follower, which campaigns for their election).
	Background []func(context.Context)
	// Collectors are Prometheus series of the background runners (the
	// router's), served on /metrics with the agent's own.
	Collectors []prometheus.Collector

	HTTP HTTP

	// Ready, when set, is called once every listener accepts connections,
	// before the roles start.
	Ready func()
	// Version and Etcd are logged as the agent starts.
	Version string
	Etcd    []string
}

// Scheduler is the scheduler's part of a Config.
type Scheduler struct {
	API client.API
	// V2Units, when set, is etcd's v2 keys API: while this process leads
	// the scheduler it also copies the units written through v2 under
	// <prefix>/units/ to v3 (see store/v2units); nil turns that off.
	V2Units etcd.KeysAPI
	// Options of the reconciler; the agent sets Observer (its metrics)
	// and ID (Config.ID).
	Options fleet.Options
	// Where says how fleet is reached, for the log.
	Where string
}

// Source is one git source the agent syncs (see OpenSource).
type Source struct {
	// Config is the source as configured: its ref, whether it is
	// suspended, and where each field was set (Config.Where).
	Config  config.Source
	Fetcher sync.Fetcher
	// Options of its passes; Options.Source names it.
	Options  sync.Options
	Interval time.Duration
	Timeout  time.Duration // of a pass; 0: sync.DefaultTimeout
	// URL is the repository's, as webhooks are matched against it.
	URL string
}

func (s Source) name() string { return s.Options.Source }

// HTTP is what the agent serves.
type HTTP struct {
	// Listen is the address of /healthz, /readyz and /metrics, and of the
	// webhook and the console as below; "" for none.
	Listen string
	// Webhooks serves POST /hooks/git on Listen, verified with
	// WebhookSecret (without one every webhook gets 401).
	Webhooks      bool
	WebhookSecret []byte
	// Console, when set, serves the dashboard and API: on ConsoleListen,
	// or on Listen when ConsoleListen is "". The agent sets its Store,
	// Log and (with a scheduler) Machines.
	Console       *console.Config
	ConsoleListen string
	Limits        Limits
	// Pprof serves Go's profiler (/debug/pprof/) on Listen: for
	// benchmarks and debugging, never for a listener others reach.
	Pprof bool
}

// Limits bound what HTTP clients hold on each listener.
type Limits struct {
	MaxConns    int
	IdleTimeout time.Duration
	NoFile      uint64 // RLIMIT_NOFILE, for the log; 0 if unknown
}

// Listeners is how many listeners h opens.
func (h HTTP) Listeners() int {
	n := 0
	if h.Listen != "" {
		n++
	}
	if h.Console != nil && h.ConsoleListen != "" {
		n++
	}
	return n
}

// consoleOnListen: the console is served on Listen.
func (h HTTP) consoleOnListen() bool { return h.Console != nil && h.ConsoleListen == "" }
