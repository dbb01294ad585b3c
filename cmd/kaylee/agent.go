package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/fleet/client"
	"github.com/spf13/cobra"

	"github.com/kaylee-gitops/kaylee/agent"
	"github.com/kaylee-gitops/kaylee/config"
	"github.com/kaylee-gitops/kaylee/console"
	"github.com/kaylee-gitops/kaylee/internal/listen"
	"github.com/kaylee-gitops/kaylee/router"
	"github.com/kaylee-gitops/kaylee/store"
)

// agentConfig wires the agent: flags, plus (from kaylee dev) a store, a
// fleet API and a logger already made.
type agentConfig struct {
	git               *gitFlags
	sched             *schedulerFlags
	interval          time.Duration
	listen            string
	webhookSecretFile string
	apiTokenFile      string
	consoleListen     string
	consoleHosts      []string
	http              httpFlags
	// router: kaylee agent --router runs kaylee router's proxy too.
	router   bool
	routerFl routerFlags

	// The roles: kaylee agent and kaylee dev --repo run both; the sync
	// loop of kaylee sync runs no scheduler; kaylee server (and kaylee dev
	// without --repo) no sync. Each serves health, readiness and metrics
	// on --listen all the same.
	name          string // the command, for the log: agent, server, sync, dev
	syncOnly      bool   // no scheduler
	schedulerOnly bool   // no git source; --config names only notifications
	noWebhooks    bool   // no /hooks/git on --listen

	store *store.Store
	api   client.API
	// etcd is where the store is (dev's own etcd); nil: --etcd-endpoints.
	etcd  []string
	log   *slog.Logger
	ready func() // called once every listener accepts connections, before the roles start
}

func (a *app) agentCommand() *cobra.Command {
	var (
		g     gitFlags
		sched schedulerFlags
		c     = agentConfig{git: &g, sched: &sched}
	)
	cmd := &cobra.Command{
		Use:   "agent (--repo URL [--path DIR] | --config FILE) [flags]",
		Short: "Run the GitOps agent: git sync and the scheduler, with webhooks, health and metrics",
		Long: `Agent is Kaylee on the cluster: in one process, the sync loop of kaylee sync
for each git source (every --interval, and at once on a webhook) and the
scheduler of kaylee server. The source is --repo with the git flags, or each
source of --config FILE (see kaylee help config), which also lists where to
send notifications of syncs and rollouts.

Run several. Each role has its own leader election: the scheduler at
<etcd-prefix>/leader, each source's sync at <etcd-prefix>/sync-leader/<name>,
the notifications (among the processes with notifications:) at
<etcd-prefix>/notify-leader.
Only a role's leader acts, and its writes are fenced on its own election key;
so agents, servers and sync loops mix on one etcd, and one process may lead
the scheduler while others sync.

HTTP on --listen (the dashboard and API on --console-listen instead, when
given; they answer only Host headers that are IP addresses, localhost or a
--console-host name). Each listener holds at most --max-connections at once
(lowered to keep 256 file descriptors for etcd, git and fleet), closes
keep-alive connections idle for --idle-timeout, and serves at most
--max-streams event streams:
  GET  /           the web dashboard: units, their replicas on the machines,
                   sources, history and events, updated live
  GET  /api/v1/    the JSON API (GET /api/v1/ lists its endpoints; see the
                   README): read-only, and with --api-token-file the actions
                   sync, restart, rollback, suspend and resume for requests
                   with "Authorization: Bearer <token>"
  GET  /healthz    200 while the process runs
  GET  /readyz     200 once etcd answers, the scheduler has a leader and every
                   source (not suspended) has been synced; 503 with the reasons
  GET  /metrics    Prometheus metrics (kaylee_*)
  POST /hooks/git  a GitHub or Gitea (X-Hub-Signature-256) or GitLab
                   (X-Gitlab-Token) push webhook, verified with
                   --webhook-secret-file; anything else gets 401. JSON or
                   form-encoded (payload=<json>). A push triggers at once the
                   sources following the repository and the pushed ref (202
                   with their names); a push to another ref and any other
                   event (pull_request, release, create, delete, GitLab's
                   Merge Request Hook...) get 200 {"ignored": why}; ping gets
                   pong; a repository no source follows gets 404. Any agent
                   takes it; the source's leader syncs. When a branch push
                   names its commit, the leader fetches until the head is
                   that commit, for about a minute. See the README's table.

With --router, the agent also runs kaylee router's proxy: Debian's caddy
(--router-caddy) serving the units' domains on --router-listen (:80) from the
instance registry (see kaylee router --help).

Git, sync and scheduler flags are those of kaylee sync and kaylee server;
--default-engine (rkt unless set) is the engine a unit that names none runs
with: the stored JSON is not changed, switching it rolls those units over one
replica at a time (see kaylee server --help).`,
		Example: `  kaylee agent --repo git@github.com:org/units.git --ssh-key /etc/kaylee/deploy-key --path prod \
      --webhook-secret-file /etc/kaylee/webhook-secret --listen 0.0.0.0:9520
  kaylee agent --config /etc/kaylee/kaylee.yaml --webhook-secret-file /etc/kaylee/webhook-secret
  KAYLEE_REPO=https://git.example.com/ops/units.git KAYLEE_GIT_PASSWORD=$TOKEN kaylee agent --git-username kaylee`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runAgent(cmd, c)
		},
	}
	fl := cmd.Flags()
	g.register(fl)
	sched.register(fl, 10*time.Second)
	registerAgentFlags(fl, &c)
	fl.BoolVar(&c.router, "router", false, "also run kaylee router (see kaylee router --help) with the --router-* flags")
	c.routerFl.registerProxy(fl, "router-", "/usr/bin/caddy")
	return cmd
}

type flagSet interface {
	BoolVar(p *bool, name string, value bool, usage string)
	DurationVar(p *time.Duration, name string, value time.Duration, usage string)
	IntVar(p *int, name string, value int, usage string)
	StringVar(p *string, name string, value string, usage string)
	StringSliceVar(p *[]string, name string, value []string, usage string)
}

func registerAgentFlags(fl flagSet, c *agentConfig) {
	fl.DurationVar(&c.interval, "interval", time.Minute, "time between syncs (±10% at random)")
	fl.StringVar(&c.listen, "listen", agentListen, "address of the HTTP endpoints (dashboard and API unless --console-listen, health, metrics, webhooks); empty for none")
	fl.StringVar(&c.consoleListen, "console-listen", "", "address of the dashboard and JSON API when not --listen's (keep it private: reading needs no token); off for none")
	fl.StringSliceVar(&c.consoleHosts, "console-host", nil, "host names the dashboard and API answer to beside IP addresses and localhost (the name of a proxy in front of it; * for any)")
	fl.StringVar(&c.webhookSecretFile, "webhook-secret-file", "", "file holding the webhook secret (GitHub HMAC key or GitLab token); without it webhooks get 401")
	fl.StringVar(&c.apiTokenFile, "api-token-file", "", "file holding the bearer token that allows the API's actions (sync, restart, rollback, suspend, resume); without it the API is read-only")
	c.http.register(fl)
	registerPprof(fl, &c.http)
}

// registerPprof gives a long-running command its --pprof.
func registerPprof(fl flagSet, f *httpFlags) {
	fl.BoolVar(&f.pprof, "pprof", false, "also serve Go's profiler (/debug/pprof/: CPU and heap profiles, goroutine dumps) on --listen, for benchmarks and debugging; not for production exposure: anyone reaching --listen could read the process's internals and load it")
}

// Default --listen of each long-running command: apart, so that an agent,
// a server and a sync loop run on one host side by side (9521 is the
// agent's --console-listen in contrib/).
const (
	agentListen  = "127.0.0.1:9520"
	serverListen = "127.0.0.1:9522"
	syncListen   = "127.0.0.1:9523"
)

// registerRoleListen gives kaylee server and the sync loop of kaylee sync
// their --listen: health, readiness and metrics only (no console, no
// webhooks), with the agent's default limits on connections.
func registerRoleListen(fl flagSet, c *agentConfig, def, when string) {
	fl.StringVar(&c.listen, "listen", def, when+"address of the HTTP endpoints /healthz, /readyz and /metrics; empty for none")
	c.consoleListen, c.noWebhooks = "off", true
	c.http = httpFlags{maxConns: 1024, maxStreams: console.DefaultMaxStreams, idleTimeout: time.Minute}
	registerPprof(fl, &c.http)
}

// httpFlags bound what HTTP clients may hold.
type httpFlags struct {
	maxConns    int
	maxStreams  int
	idleTimeout time.Duration
	pprof       bool // --pprof: /debug/pprof/ on --listen
}

func (f *httpFlags) register(fl flagSet) {
	fl.IntVar(&f.maxConns, "max-connections", 1024, "most connections each HTTP listener holds at once (more wait; at the limit the longest idle keep-alive one is closed); lowered so that, with every listener full, "+
		strconv.Itoa(listen.Reserve)+" file descriptors (RLIMIT_NOFILE, raised to its hard limit) stay for etcd, git and fleet")
	fl.IntVar(&f.maxStreams, "max-streams", console.DefaultMaxStreams, "most event streams (the dashboard's live view, GET /api/v1/stream) open at once; more get 503")
	fl.DurationVar(&f.idleTimeout, "idle-timeout", time.Minute, "an HTTP keep-alive connection idle this long is closed")
}

func (f *httpFlags) check() error {
	if f.maxConns < 1 {
		return fmt.Errorf("--max-connections %d: use at least 1", f.maxConns)
	}
	if f.maxStreams < 1 {
		return fmt.Errorf("--max-streams %d: use at least 1", f.maxStreams)
	}
	if f.idleTimeout <= 0 {
		return fmt.Errorf("--idle-timeout %s: use a positive duration", f.idleTimeout)
	}
	return nil
}

// limits raises RLIMIT_NOFILE to its hard limit and sizes the cap on
// connections of each of listeners listeners.
func (f *httpFlags) limits(listeners int, log *slog.Logger) agent.Limits {
	nofile, err := listen.RaiseNoFile()
	if err != nil {
		log.Warn("file descriptor limit", "err", err)
	}
	lim := agent.Limits{MaxConns: listen.MaxConns(f.maxConns, listeners, nofile), IdleTimeout: f.idleTimeout, NoFile: nofile}
	if lim.MaxConns < f.maxConns {
		log.Warn("--max-connections lowered to keep file descriptors for etcd, git and fleet", "maxConnections", lim.MaxConns,
			"asked", f.maxConns, "listeners", listeners, "nofile", nofile, "reserve", listen.Reserve)
	}
	return lim
}

// listeners is how many HTTP listeners the agent opens.
func (c agentConfig) listeners() int {
	n := 0
	if c.listen != "" {
		n++
	}
	if _, flag := c.consoleAddr(); flag == "--console-listen" {
		n++
	}
	return n
}

// consoleAddr is where the dashboard and API are served, and the flag
// that says so: --console-listen, or --listen; "" when off.
func (c agentConfig) consoleAddr() (addr, flag string) {
	switch c.consoleListen {
	case "off":
		return "", ""
	case "":
		return c.listen, "--listen"
	}
	return c.consoleListen, "--console-listen"
}

// httpConfig is what the agent serves: the console per --console-listen
// (with the token of --api-token-file), webhooks unless the role has
// none, and the limits of the HTTP flags.
func (c agentConfig) httpConfig(secret []byte, log *slog.Logger) (agent.HTTP, error) {
	h := agent.HTTP{Listen: c.listen, Webhooks: !c.noWebhooks, WebhookSecret: secret, Pprof: c.http.pprof}
	token, err := readSecretFile("--api-token-file", c.apiTokenFile)
	if err != nil {
		return agent.HTTP{}, err
	}
	if _, flag := c.consoleAddr(); flag != "" {
		h.Console = &console.Config{Hosts: c.consoleHosts, MaxStreams: c.http.maxStreams, Token: token}
		if flag == "--console-listen" {
			h.ConsoleListen = c.consoleListen
		}
	}
	h.Limits = c.http.limits(h.Listeners(), log)
	return h, nil
}

// readSecretFile reads a secret from the file of flag; none when file is
// "".
func readSecretFile(flag, file string) ([]byte, error) {
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	secret := []byte(strings.TrimSpace(string(b)))
	if len(secret) == 0 {
		return nil, fmt.Errorf("%s %s is empty", flag, file)
	}
	return secret, nil
}

// check refuses flag values the agent cannot run with.
func (c agentConfig) check() error {
	if c.interval < time.Second && !c.schedulerOnly {
		return fmt.Errorf("--interval %s: use at least 1s", c.interval)
	}
	if c.sched.leaseTTL < time.Second {
		return fmt.Errorf("--lease-ttl %s: use at least 1s", c.sched.leaseTTL)
	}
	if !c.syncOnly { // the sync loop runs no scheduler, and has no --default-engine
		if err := c.sched.checkEarly(); err != nil {
			return err
		}
	}
	if c.listeners() > 0 {
		return c.http.check()
	}
	return nil
}

// runAgent runs the agent the flags describe (see agent.Run): each
// source's sync loop and, unless syncOnly, the scheduler, each under its
// own leader election, until the command's context ends.
func (a *app) runAgent(cmd *cobra.Command, c agentConfig) error {
	defer a.finish() // before kaylee dev closes its etcd
	ctx := cmd.Context()
	log := c.log
	if log == nil {
		var err error
		if log, err = c.sched.logger(cmd.ErrOrStderr()); err != nil {
			return err
		}
	}
	if err := c.check(); err != nil {
		return err
	}
	cf, err := loadConfig(c.git.configFile, cmd.Flags())
	if err != nil {
		return err
	}
	sources, err := a.agentSources(c, cf, log)
	if err != nil {
		return err
	}
	secret, err := readSecretFile("--webhook-secret-file", c.webhookSecretFile)
	if err != nil {
		return err
	}
	s := c.store
	if s == nil {
		var done func()
		if s, done, err = a.openStore(ctx); err != nil {
			return err
		}
		defer done()
	}
	id := agent.NewID()
	ns, err := newNotifications(cf, s, id, c.sched.leaseTTL, log)
	if err != nil {
		return err
	}
	ac := agent.Config{Name: c.name, ID: id, Store: s, Log: log, LeaseTTL: c.sched.leaseTTL, Sources: sources,
		Background: []func(context.Context){ns.Run}, Ready: c.ready, Version: versionString(), Etcd: a.etcd.Endpoints}
	if c.router {
		run, r := agentRouter(c, s, cmd.ErrOrStderr(), log)
		ac.Background = append(ac.Background, run)
		ac.Collectors = append(ac.Collectors, r.Collector())
	}
	if !c.syncOnly {
		if ac.Scheduler, err = a.scheduler(c); err != nil {
			return err
		}
	}
	if ac.HTTP, err = c.httpConfig(secret, log); err != nil {
		return err
	}
	return listenFlagError(agent.Run(ctx, ac))
}

// agentRouter is kaylee router's proxy as a background task of the agent
// (a caddy that cannot start is logged, the agent goes on), and the
// router, whose series the agent serves.
func agentRouter(c agentConfig, s *store.Store, stderr io.Writer, log *slog.Logger) (func(context.Context), *router.Router) {
	f := c.routerFl
	f.resync = 5 * time.Second
	r, cd := f.newRouter(s, stderr, log)
	return func(ctx context.Context) {
		if cd == nil {
			_ = r.Run(ctx)
			return
		}
		if err := router.RunWithCaddy(ctx, cd, r); err != nil {
			log.Error("router: --router-caddy: the agent runs without its router", "err", err)
		}
	}, r
}

// agentSources are the sources the agent syncs: those of --config, or
// the one of the git flags; none for the scheduler alone.
func (a *app) agentSources(c agentConfig, cf *config.File, log *slog.Logger) ([]agent.Source, error) {
	if c.schedulerOnly {
		if cf != nil && len(cf.Sources) > 0 {
			log.Info("kaylee "+c.name+" runs no sync: the sources of the config file are for kaylee agent or kaylee sync", "config", c.git.configFile)
		}
		return nil, nil
	}
	if cf != nil && c.git.allowRewind {
		return nil, errRewindFlag
	}
	return a.openSources(c.git, cf, c.interval)
}

// scheduler is the scheduler's part of the agent: fleet's API (dev's
// simulated one, or the one the flags reach) and the reconciler's options.
func (a *app) scheduler(c agentConfig) (*agent.Scheduler, error) {
	api := c.api
	if api == nil {
		var err error
		if api, err = a.fleetAPI(c.sched); err != nil {
			return nil, err
		}
	}
	opts, err := c.sched.options()
	if err != nil {
		return nil, err
	}
	opts.Confirmed = a.stopAfterConfirm()
	endpoints := c.etcd
	if endpoints == nil {
		endpoints = a.etcd.Endpoints
	}
	keys, err := a.v2Keys(c.sched, endpoints)
	if err != nil {
		return nil, err
	}
	return &agent.Scheduler{API: api, V2Units: keys, Options: opts, Where: fleetWhere(c.sched)}, nil
}

// listenFlagError names the flag of a listener that could not open.
func listenFlagError(err error) error {
	var le *agent.ListenError
	if !errors.As(err, &le) {
		return err
	}
	flag := "--listen"
	if le.Listener == agent.ListenConsole {
		flag = "--console-listen"
	}
	return fmt.Errorf("%s %s: %w", flag, le.Addr, le.Err)
}
