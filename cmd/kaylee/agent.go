package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/fleet/client"
	"github.com/spf13/cobra"

	"github.com/kaylee-gitops/kaylee/console"
	"github.com/kaylee-gitops/kaylee/fleet"
	"github.com/kaylee-gitops/kaylee/internal/listen"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/sync"
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

Git, sync and scheduler flags are those of kaylee sync and kaylee server.`,
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
	return cmd
}

type flagSet interface {
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
}

// httpFlags bound what HTTP clients may hold.
type httpFlags struct {
	maxConns    int
	maxStreams  int
	idleTimeout time.Duration
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
func (f *httpFlags) limits(listeners int, log *slog.Logger) httpLimits {
	nofile, err := listen.RaiseNoFile()
	if err != nil {
		log.Warn("file descriptor limit", "err", err)
	}
	lim := httpLimits{maxConns: listen.MaxConns(f.maxConns, listeners, nofile), idleTimeout: f.idleTimeout, nofile: nofile}
	if lim.maxConns < f.maxConns {
		log.Warn("--max-connections lowered to keep file descriptors for etcd, git and fleet", "maxConnections", lim.maxConns,
			"asked", f.maxConns, "listeners", listeners, "nofile", nofile, "reserve", listen.Reserve)
	}
	return lim
}

// httpLimits are what serveHTTP applies to a listener.
type httpLimits struct {
	maxConns    int
	idleTimeout time.Duration
	nofile      uint64 // RLIMIT_NOFILE, for the log; 0 if unknown
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

// serveConsole serves the dashboard and API on --console-listen, when it
// is set; stop shuts it down.
func (c agentConfig) serveConsole(ctx context.Context, con *console.Server, lim httpLimits, log *slog.Logger) (stop func(), err error) {
	if addr, flag := c.consoleAddr(); flag == "--console-listen" {
		mux := http.NewServeMux()
		con.Register(mux)
		return serveHTTP(ctx, flag, addr, mux, lim, log)
	}
	return func() {}, nil
}

// console is the dashboard and API; fleet's machines come from api when
// there is one.
func (c agentConfig) console(s *store.Store, api client.API, log *slog.Logger) (*console.Server, error) {
	cfg := console.Config{Store: s, Log: log, Hosts: c.consoleHosts, MaxStreams: c.http.maxStreams}
	if api != nil {
		cfg.Machines = api
	}
	if c.apiTokenFile != "" {
		b, err := os.ReadFile(c.apiTokenFile)
		if err != nil {
			return nil, fmt.Errorf("--api-token-file: %w", err)
		}
		if cfg.Token = []byte(strings.TrimSpace(string(b))); len(cfg.Token) == 0 {
			return nil, fmt.Errorf("--api-token-file %s is empty", c.apiTokenFile)
		}
	}
	return console.New(cfg), nil
}

// runAgent runs each source's sync loop (and, unless syncOnly, the
// scheduler), each under its own leader election, until the command's
// context ends.
func (a *app) runAgent(cmd *cobra.Command, c agentConfig) error {
	ctx := cmd.Context()
	log := c.log
	if log == nil {
		var err error
		if log, err = c.sched.logger(cmd.ErrOrStderr()); err != nil {
			return err
		}
	}
	if c.interval < time.Second && !c.schedulerOnly {
		return fmt.Errorf("--interval %s: use at least 1s", c.interval)
	}
	if c.sched.leaseTTL < time.Second {
		return fmt.Errorf("--lease-ttl %s: use at least 1s", c.sched.leaseTTL)
	}
	if c.listeners() > 0 {
		if err := c.http.check(); err != nil {
			return err
		}
	}
	cf, err := loadConfig(c.git.configFile, cmd.Flags())
	if err != nil {
		return err
	}
	var sources []*source
	if c.schedulerOnly && cf != nil && len(cf.Sources) > 0 {
		log.Info("kaylee "+c.name+" runs no sync: the sources of the config file are for kaylee agent or kaylee sync", "config", c.git.configFile)
	}
	if !c.schedulerOnly {
		if cf != nil && c.git.allowRewind {
			return errRewindFlag
		}
		if sources, err = a.openSources(c.git, cf, c.interval); err != nil {
			return err
		}
	}
	var secret []byte
	if c.webhookSecretFile != "" {
		b, err := os.ReadFile(c.webhookSecretFile)
		if err != nil {
			return fmt.Errorf("--webhook-secret-file: %w", err)
		}
		if secret = []byte(strings.TrimSpace(string(b))); len(secret) == 0 {
			return fmt.Errorf("--webhook-secret-file %s is empty", c.webhookSecretFile)
		}
	}
	s := c.store
	if s == nil {
		var done func()
		if s, done, err = a.openStore(ctx); err != nil {
			return err
		}
		defer done()
	}
	m := newMetrics()
	id := candidateID()
	ns, err := newNotifications(cf, s, id, c.sched.leaseTTL, log)
	if err != nil {
		return err
	}
	var (
		rec *fleet.Reconciler
		api client.API
	)
	if !c.syncOnly {
		api = c.api
		if api == nil {
			if api, err = a.fleetAPI(c.sched); err != nil {
				return err
			}
		}
		ropts, err := c.sched.options()
		if err != nil {
			return err
		}
		ropts.Observer, ropts.Confirmed, ropts.ID = m, a.stopAfterConfirm(), id
		rec, err = fleet.NewReconciler(api, s, ropts, log)
		if err != nil {
			return err
		}
	}
	con, err := c.console(s, api, log)
	if err != nil {
		return err
	}
	lim := c.http.limits(c.listeners(), log)
	stopConsole, err := c.serveConsole(ctx, con, lim, log)
	if err != nil {
		return err
	}
	defer stopConsole()
	if c.listen != "" {
		onListen := con
		if _, flag := c.consoleAddr(); flag != "--listen" {
			onListen = nil
		}
		var hooks http.Handler
		if !c.noWebhooks {
			hooks = webhooks(s, sources, secret, m, log)
		}
		stop, err := serveHTTP(ctx, "--listen", c.listen, agentMux(s, sources, rec != nil, hooks, m, onListen), lim, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	var names []string
	for _, src := range sources {
		names = append(names, src.opts.Source)
	}
	name := c.name
	if name == "" {
		name = "agent"
	}
	log.Info("kaylee "+name+" starting", "version", versionString(), "sources", strings.Join(names, ","), "etcd", strings.Join(a.etcd.Endpoints, ","),
		"prefix", s.Prefix(), "listen", c.listen, "scheduler", rec != nil, "fleet", fleetWhere(c.sched, rec != nil), "unitPrefix", c.sched.unitPrefix, "id", id)
	if c.ready != nil {
		c.ready()
	}

	var roles []func(context.Context)
	// lead runs fn while this process leads e; stopped drops the role's
	// series when it stops leading.
	lead := func(e store.Election, labels []string, fn func(context.Context, store.Fence) error, stopped func()) func(context.Context) {
		return func(ctx context.Context) {
			m.leader.WithLabelValues(labels...).Set(0)
			_ = s.Lead(ctx, e, id, c.sched.leaseTTL, log, func(lctx context.Context, f store.Fence) error {
				m.leader.WithLabelValues(labels...).Set(1)
				defer m.leader.WithLabelValues(labels...).Set(0)
				defer stopped()
				return fn(lctx, f)
			})
		}
	}
	if rec != nil {
		roles = append(roles, lead(store.SchedulerElection, []string{"scheduler", ""}, rec.Run, m.stopScheduling))
	}
	for _, src := range sources {
		name := src.opts.Source
		roles = append(roles, lead(store.SourceElection(name), []string{"sync", name}, src.loop(s, id, m, log).run,
			func() { m.stopSyncing(name) }))
	}
	runRoles(ctx, append(roles, ns.Run)...)
	return nil
}

// sourceLoop runs one source while this process leads its sync.
type sourceLoop struct {
	*sync.Loop
	src *source
	st  *store.Store
}

func (src *source) loop(s *store.Store, id string, obs sync.Observer, log *slog.Logger) *sourceLoop {
	name := src.opts.Source
	return &sourceLoop{src: src, st: s, Loop: &sync.Loop{Fetcher: src.git, Store: s, Options: src.opts, Interval: src.interval,
		Timeout: src.timeout, Log: log, Observer: obs, ID: id,
		Triggers: func(ctx context.Context) <-chan string { return s.WatchTriggers(ctx, name) }}}
}

// run syncs, or, for a suspended source, records that it is suspended and
// waits.
func (l *sourceLoop) run(ctx context.Context, f store.Fence) error {
	if !l.src.cfg.Suspend {
		return l.Loop.Run(ctx, f)
	}
	l.Log.Warn("source suspended in the config file: not syncing it", "source", l.src.opts.Source)
	a := &store.SyncAttempt{Source: l.src.opts.Source, Time: time.Now(), Result: store.AttemptSuspended, Leader: l.ID,
		Message: "suspend: true in " + l.src.cfg.Where("suspend")}
	if err := l.st.PutSyncAttempt(ctx, a, f); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// runRoles runs each role until ctx ends.
func runRoles(ctx context.Context, roles ...func(context.Context)) {
	done := make(chan struct{}, len(roles))
	for _, r := range roles {
		go func() {
			r(ctx)
			done <- struct{}{}
		}()
	}
	for range roles {
		<-done
	}
}

// agentMux serves health, readiness and metrics, and the webhook and the
// console when they are not nil.
func agentMux(s *store.Store, sources []*source, scheduler bool, hooks http.Handler, m *metrics, con *console.Server) *http.ServeMux {
	mux := http.NewServeMux()
	if con != nil {
		con.Register(mux)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		problems, err := readiness(ctx, s, sources, scheduler)
		if err != nil {
			problems = append(problems, "etcd: "+err.Error())
		}
		if len(problems) > 0 {
			http.Error(w, "not ready: "+strings.Join(problems, "; "), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", m.handler())
	if hooks != nil {
		mux.Handle("/hooks/git", hooks)
	}
	return mux
}

// webhooks routes the webhook to the sources, triggering through etcd
// (any agent takes it; the sync leader acts). A storm of webhooks for one
// push writes one trigger per source (a second later, the same again: the
// sync loop coalesces the rest).
func webhooks(s *store.Store, sources []*source, secret []byte, m *metrics, log *slog.Logger) *sync.Webhooks {
	h := &sync.Webhooks{Secret: secret, Trigger: s.Trigger, Recent: &sync.Recent{Window: time.Second}, Count: m.Webhook, Log: log}
	for _, src := range sources {
		h.Sources = append(h.Sources, sync.WebhookSource{Name: src.opts.Source, URL: src.git.URL(), Ref: src.cfg.Ref})
		// Exported from the start (at 0), so that rate() and the dashboard
		// see the series before the first webhook.
		m.webhooks.WithLabelValues(src.opts.Source, "push", sync.HookTriggered)
	}
	return h
}

// readiness lists what keeps the agent from being ready: no scheduler
// leader, a source (not suspended) never synced or without a leader.
func readiness(ctx context.Context, s *store.Store, sources []*source, scheduler bool) ([]string, error) {
	var problems []string
	if scheduler {
		leader, err := s.LeaderID(ctx, store.SchedulerElection)
		if err != nil {
			return nil, err
		}
		if leader == "" {
			problems = append(problems, "no scheduler leader elected yet")
		}
	}
	records, err := s.ListSyncRecords(ctx)
	if err != nil {
		return nil, err
	}
	for _, src := range sources {
		if !src.cfg.Suspend && !syncDone(records[src.opts.Source]) {
			problems = append(problems, "source "+src.opts.Source+" not synced yet")
		}
	}
	return problems, nil
}

// serveHTTP listens on addr, holding at most lim.maxConns connections at
// once (see listen.Listener); stop shuts the server down.
func serveHTTP(ctx context.Context, flag, addr string, h http.Handler, lim httpLimits, log *slog.Logger) (stop func(), err error) {
	raw, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, addr, err)
	}
	ln := listen.Limit(raw, lim.maxConns)
	// A client whose headers or body stall is cut off, and one idle
	// between requests is let go: it holds no connection for long. Event
	// streams set a write deadline per message instead of WriteTimeout.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: lim.idleTimeout, MaxHeaderBytes: 64 << 10,
		ConnState: ln.ConnState, BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server stopped", "err", err)
		}
	}()
	log.Info("HTTP listening", "addr", ln.Addr().String(), "maxConnections", lim.maxConns, "idleTimeout", lim.idleTimeout, "nofile", lim.nofile)
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}
