package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	etcd "github.com/coreos/etcd/client"
	"github.com/coreos/fleet/client"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/v2units"
)

// schedulerFlags are the flags of every command that runs the scheduler.
type schedulerFlags struct {
	fleetPrefix    string
	fleetEndpoint  string
	unitPrefix     string
	defaultEngine  string
	minReady       time.Duration
	rolloutTimeout time.Duration
	drainDelay     time.Duration
	maxRestarts    int
	lossGrace      time.Duration
	history        int
	resync         time.Duration
	leaseTTL       time.Duration
	logFormat      string
	v2Units        bool
}

func (f *schedulerFlags) register(fl *pflag.FlagSet, minReady time.Duration) {
	fl.StringVar(&f.fleetPrefix, "fleet-prefix", fleet.DefaultKeyPrefix, "fleet's key prefix in etcd (registry access)")
	fl.StringVar(&f.fleetEndpoint, "fleet-endpoint", "", "fleet's HTTP API instead of its registry: unix:///var/run/fleet.sock or http://host:port")
	fl.StringVar(&f.unitPrefix, "unit-prefix", deploy.DefaultUnitPrefix, "prefix of the fleet units Kaylee owns; no other fleet unit is touched")
	fl.StringVar(&f.defaultEngine, "default-engine", deploy.EngineRkt, defaultEngineUsage+"; the stored JSON is not changed, the spec hash of those units is, so switching it rolls them over one replica at a time")
	fl.DurationVar(&f.minReady, "min-ready", minReady, "how long a new replica must run before an old one is removed (a unit's update.minReady overrides it)")
	fl.DurationVar(&f.rolloutTimeout, "rollout-timeout", 5*time.Minute, "a rollout in which no new replica became ready for this long fails and the old version stays (a unit's update.progressDeadline overrides it)")
	fl.DurationVar(&f.drainDelay, "drain-delay", defaultDrainDelay, "a serving replica that the scheduler stops (a rollout's surplus, a scale down, kaylee rm or a unit deleted from git, kaylee restart, a drifted unit replaced, an in-place replacement on a packed cluster) leaves the instance registry first and is stopped only this long later, so that routers and load balancers following the registry stop sending to it; meanwhile it still counts against maxSurge and maxReplicasPerHost. A replica that does not serve (failed, restarting) stops at once, and a lost machine is not waited for. 0 turns it off")
	fl.DurationVar(&f.lossGrace, "machine-loss-grace", 5*time.Minute, "a member of a stateful unit with onMachineLoss: move whose machine has left fleet for this long moves to another machine (of its zone, with spread); the leader counts it from when it first saw the machine gone, so after a change of leader it starts again")
	fl.IntVar(&f.history, "history", store.DefaultHistory, "how many revisions of each unit to keep for kaylee history and rollback")
	fl.IntVar(&f.maxRestarts, "max-restarts", 2, "a new replica seen restarting this many times (activating/auto-restart: units run with Restart=always, so a crashing one never shows failed) fails the rollout at once, without waiting for --rollout-timeout; the old version stays")
	fl.DurationVar(&f.resync, "resync", 30*time.Second, "full reconcile interval even when nothing changed")
	fl.DurationVar(&f.leaseTTL, "lease-ttl", 10*time.Second, "leader lease: another server takes over this long after the leader dies")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format on stderr: text or json")
	fl.BoolVar(&f.v2Units, "etcd-v2-units", true, "also schedule the units written through etcd's v2 API under <etcd-prefix>/units/ (as monder/kaylee and CI scripts for it store them): the leader copies them to v3; needs etcd 3.4/3.5 with --enable-v2 (without, it says so once and goes on)")
}

func (f *schedulerFlags) logger(w io.Writer) (*slog.Logger, error) {
	return f.leveledLogger(w, slog.LevelInfo)
}

// leveledLogger is logger, leaving out what is below level.
func (f *schedulerFlags) leveledLogger(w io.Writer, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch f.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", f.logFormat)
}

// fleetAPI opens fleet: its HTTP API with --fleet-endpoint, else the
// registry on the etcd endpoints (etcd's v2 API must be on).
func (a *app) fleetAPI(f *schedulerFlags) (client.API, error) {
	tls, err := a.dialConfig().TLS()
	if err != nil {
		return nil, a.etcdHint(err)
	}
	api, err := fleet.NewAPI(fleet.Config{
		Endpoint: f.fleetEndpoint, EtcdEndpoints: a.etcd.Endpoints, KeyPrefix: f.fleetPrefix,
		TLS: tls, Username: a.etcd.Username, Password: a.etcd.Password,
	})
	if err != nil && f.fleetEndpoint != "" {
		return nil, fmt.Errorf("--fleet-endpoint: %w", err)
	}
	if c, ok := api.(interface{ CloseIdleConnections() }); ok {
		a.onDone(c.CloseIdleConnections)
	}
	return api, err
}

// v2Keys is etcd's v2 keys API on endpoints (with the etcd flags' TLS and
// credentials), for the bridge of v2 units; nil with --etcd-v2-units=false.
func (a *app) v2Keys(f *schedulerFlags, endpoints []string) (etcd.KeysAPI, error) {
	if !f.v2Units {
		return nil, nil
	}
	tls, err := a.dialConfig().TLS()
	if err != nil {
		return nil, a.etcdHint(err)
	}
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: tls}
	keys, err := v2units.NewKeys(v2units.KeysConfig{Endpoints: endpoints, Transport: tr,
		Username: a.etcd.Username, Password: a.etcd.Password})
	if err != nil {
		return nil, fmt.Errorf("--etcd-v2-units: %w", err)
	}
	a.onDone(tr.CloseIdleConnections)
	return keys, nil
}

// defaultDrainDelay is --drain-delay's default: a router that follows
// the registry (kaylee router) has its new configuration about 10 ms
// after a delete; the rest is margin for a router or load balancer far
// away, over a WAN, or behind a slow etcd watch, at the cost of this much
// per step of a rollout.
const defaultDrainDelay = 2 * time.Second

// defaultEngineUsage is the start of --default-engine's help.
const defaultEngineUsage = "the engine a unit that names none runs with: rkt (the seed format's default), docker or podman"

// checkDefaultEngine checks the value of --default-engine.
func checkDefaultEngine(engine string) error {
	if err := deploy.CheckEngine(engine); err != nil {
		return fmt.Errorf("--default-engine: %w", err)
	}
	return nil
}

// checkEarly checks the scheduler flags that server, agent and dev refuse
// before they start anything.
func (f *schedulerFlags) checkEarly() error {
	if err := checkDefaultEngine(f.defaultEngine); err != nil {
		return err
	}
	if f.drainDelay < 0 {
		return fmt.Errorf("--drain-delay %s: use 0 (no drain) or a positive duration", f.drainDelay)
	}
	if f.rolloutTimeout > 0 && f.drainDelay >= f.rolloutTimeout {
		// Each step of a rollout waits for a drain: none would make
		// progress in time.
		return fmt.Errorf("--drain-delay %s: use less than --rollout-timeout (%s), which each step of a rollout, drain included, must end within", f.drainDelay, f.rolloutTimeout)
	}
	return nil
}

// options are the reconciler's options the flags set.
func (f *schedulerFlags) options() (fleet.Options, error) {
	if f.maxRestarts < 1 {
		return fleet.Options{}, fmt.Errorf("--max-restarts %d: use at least 1", f.maxRestarts)
	}
	if f.lossGrace <= 0 {
		return fleet.Options{}, fmt.Errorf("--machine-loss-grace %s: use a positive duration", f.lossGrace)
	}
	if f.history < 1 {
		return fleet.Options{}, fmt.Errorf("--history %d: keep at least 1 revision", f.history)
	}
	if err := deploy.CheckUnitPrefix(f.unitPrefix); err != nil {
		return fleet.Options{}, fmt.Errorf("--unit-prefix: %w", err)
	}
	if err := f.checkEarly(); err != nil {
		return fleet.Options{}, err
	}
	return fleet.Options{
		UnitPrefix: f.unitPrefix, DefaultEngine: f.defaultEngine, MinReady: f.minReady, RolloutTimeout: f.rolloutTimeout, MaxRestarts: f.maxRestarts, Resync: f.resync,
		HistoryLimit: f.history, MachineLossGrace: f.lossGrace, DrainDelay: f.drainDelay,
	}, nil
}

func (a *app) serverCommand() *cobra.Command {
	var (
		f schedulerFlags
		c = agentConfig{git: &gitFlags{}, sched: &f, name: "server", schedulerOnly: true}
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the scheduler: turn the units in etcd into fleet units",
		Long: `Server runs the scheduler. Run several for availability: they elect one leader
(under <etcd-prefix>/leader) and only the leader acts; another takes over
--lease-ttl after it dies. With --config FILE, it may lead the notifications
(under <etcd-prefix>/notify-leader): the endpoints of its notifications: are
then told the event log's syncs, rollouts and rollbacks.

The leader reconciles on start, on every change under <etcd-prefix>/units/,
when fleet's unit states change, and every --resync. For each unit it creates
missing fleet units, rolls out a changed spec without downtime (a new replica
must run for --min-ready before an old one goes, at most update.maxSurge new
ones at a time; units without replicas, global and machineId units stop the
old one first), fails a rollout whose replicas fail, restart --max-restarts
times (a crash loop: units run with Restart=always), fail their health check
at start, or make no progress for --rollout-timeout (the old version keeps
running), and stops then destroys the fleet units of units removed from etcd.
A replica that serves leaves the instance registry (<etcd-prefix>/instances/)
--drain-delay before fleet is told to stop it, so that routers following the
registry stop sending to it first.
A stateful unit's member waits for its machine when it leaves fleet, or, with
onMachineLoss: move, moves to another machine once it has been gone for
--machine-loss-grace.
It records each spec it rolls out (kaylee history, kaylee rollback) and leaves
suspended units alone (kaylee suspend).
Only fleet units named <unit-prefix>:... are touched. It writes each unit's
status to <etcd-prefix>/status/<name> (see kaylee status).

A unit that names no engine runs with --default-engine (rkt unless set, the
seed format's default; docker or podman run the seed's unit files on current
hosts without an edit). The stored JSON is not changed; the spec hash of those
units is, so restarting the scheduler with another default rolls them over one
replica at a time, as any new spec (units that name their engine stay). Give
every server and agent of a cluster the same value. The leader publishes it at
<etcd-prefix>/scheduler, for run --wait and rollback --wait.

fleet is reached through its registry in etcd (the same --etcd-endpoints,
which need etcd's v2 API) or, with --fleet-endpoint, through fleetd's HTTP API.

Units written through etcd's v2 API under <etcd-prefix>/units/ (as monder/kaylee
and CI scripts for it store them: etcdctl set) are scheduled too: the leader
copies each v2 write to v3, the same value written again restarts the unit, a
v2 delete deletes what it copied (--etcd-v2-units=false turns that off; on an
etcd without the v2 API it says so once and goes on).

HTTP on --listen (default 127.0.0.1:9522, apart from kaylee agent's 9520 and
kaylee sync's 9523; empty for none):
  GET  /healthz    200 while the process runs
  GET  /readyz     200 once etcd answers and the scheduler has a leader (this
                   server or another process); 503 with the reasons
  GET  /metrics    Prometheus metrics: kaylee_leader{role="scheduler"} (1 on
                   the leader), and on the leader kaylee_units_phase and
                   kaylee_fleet_operations_total`,
		Example: `  kaylee server --etcd-endpoints http://10.0.0.1:2379
  kaylee server --fleet-endpoint unix:///var/run/fleet.sock --min-ready 30s --listen 0.0.0.0:9522
  KAYLEE_ETCD_ENDPOINTS=https://etcd:2379 KAYLEE_ETCD_CA=/etc/ssl/etcd-ca.pem kaylee server`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runAgent(cmd, c)
		},
	}
	fl := cmd.Flags()
	f.register(fl, 10*time.Second)
	fl.StringVar(&c.git.configFile, "config", "", "config file whose notifications: are told of rollouts (see kaylee help config)")
	registerRoleListen(fl, &c, serverListen, "")
	return cmd
}

// fleetWhere says how the scheduler reaches fleet, for the log.
func fleetWhere(f *schedulerFlags) string {
	if f.fleetEndpoint != "" {
		return f.fleetEndpoint
	}
	return "registry " + f.fleetPrefix
}
