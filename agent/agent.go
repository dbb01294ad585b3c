package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/kaylee-gitops/kaylee/console"
	"github.com/kaylee-gitops/kaylee/fleet"
)

// Run runs the agent c describes until ctx ends. It returns an error only
// when it cannot start: the Config lacks what its roles need, the
// scheduler's options are wrong, or a listener cannot open (a
// *ListenError).
//
// The pipeline:
//  1. assemble the scheduler (when c.Scheduler is set) and the console;
//  2. open the listeners: the console's own, then the main one with
//     health, readiness, metrics, and the webhook and console routes of
//     the role;
//  3. log the start and call c.Ready;
//  4. run the roles, each under its election, and the background
//     runners, until ctx ends; then close the listeners.
func Run(ctx context.Context, c Config) error {
	if err := c.check(); err != nil {
		return err
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	m := newMetrics()
	m.reg.MustRegister(c.Collectors...)
	var rec *fleet.Reconciler
	if c.Scheduler != nil {
		var err error
		if rec, err = newScheduler(c, m); err != nil {
			return fmt.Errorf("scheduler: %w", err)
		}
	}
	con := newConsole(c)
	stop, err := openListeners(ctx, c, con, m)
	if err != nil {
		return err
	}
	defer stop()
	logStart(c)
	if c.Ready != nil {
		c.Ready()
	}
	runRoles(ctx, roles(c, rec, m))
	return nil
}

// check refuses a Config the agent cannot run.
func (c Config) check() error {
	switch {
	case c.Store == nil:
		return errors.New("agent: no store")
	case c.LeaseTTL < time.Second:
		return fmt.Errorf("agent: lease TTL %s: use at least 1s", c.LeaseTTL)
	case c.Scheduler != nil && c.Scheduler.API == nil:
		return errors.New("agent: a scheduler without fleet's API")
	}
	for _, src := range c.Sources {
		if src.Fetcher == nil || src.name() == "" {
			return fmt.Errorf("agent: source %q: no name or no fetcher", src.name())
		}
	}
	return nil
}

// newConsole is the dashboard and API, nil when c serves none; fleet's
// machines come from the scheduler's API when there is one.
func newConsole(c Config) *console.Server {
	if c.HTTP.Console == nil {
		return nil
	}
	cfg := *c.HTTP.Console
	cfg.Store, cfg.Log = c.Store, c.Log
	if c.Scheduler != nil && c.Scheduler.API != nil {
		cfg.Machines = c.Scheduler.API
	}
	return console.New(cfg)
}

// openListeners opens the console's own listener and the main one; stop closes
// both.
func openListeners(ctx context.Context, c Config, con *console.Server, m *metrics) (stop func(), err error) {
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	if con != nil && c.HTTP.ConsoleListen != "" {
		mux := http.NewServeMux()
		con.Register(mux)
		s, err := serve(ctx, ListenConsole, c.HTTP.ConsoleListen, mux, c.HTTP.Limits, c.Log)
		if err != nil {
			return nil, err
		}
		stops = append(stops, s)
	}
	if c.HTTP.Listen != "" {
		s, err := serve(ctx, ListenMain, c.HTTP.Listen, mainRoutes(c, con, m).mux(), c.HTTP.Limits, c.Log)
		if err != nil {
			stop()
			return nil, err
		}
		stops = append(stops, s)
	}
	return stop, nil
}

// mainRoutes are the routes of c's main listener.
func mainRoutes(c Config, con *console.Server, m *metrics) routes {
	r := routes{ready: readiness{store: c.Store, scheduler: c.Scheduler != nil, sources: c.Sources}, metrics: m.handler(), pprof: c.HTTP.Pprof}
	if c.HTTP.Webhooks {
		r.hooks = webhooks(c, m)
	}
	if con != nil && c.HTTP.consoleOnListen() {
		r.console = con
	}
	return r
}

// logStart logs what the agent runs.
func logStart(c Config) {
	var names []string
	for _, src := range c.Sources {
		names = append(names, src.name())
	}
	name := c.Name
	if name == "" {
		name = "agent"
	}
	var fleetWhere, unitPrefix string
	if c.Scheduler != nil {
		fleetWhere, unitPrefix = c.Scheduler.Where, c.Scheduler.Options.UnitPrefix
	}
	c.Log.Info("kaylee "+name+" starting", "version", c.Version, "sources", strings.Join(names, ","), "etcd", strings.Join(c.Etcd, ","),
		"prefix", c.Store.Prefix(), "listen", c.HTTP.Listen, "scheduler", c.Scheduler != nil, "fleet", fleetWhere, "unitPrefix", unitPrefix, "id", c.ID)
}
