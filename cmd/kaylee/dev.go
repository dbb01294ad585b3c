package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kaylee-gitops/kaylee/fleet"
	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/internal/embedetcd"
	"github.com/kaylee-gitops/kaylee/store"
)

type devFlags struct {
	fleetOnly    bool
	listenClient string
	dataDir      string
	machines     int
	metadata     []string
	verbose      bool
	sched        schedulerFlags
	git          gitFlags
	agent        agentConfig
}

func (a *app) devCommand() *cobra.Command {
	var f devFlags
	cmd := &cobra.Command{
		Use:   "dev [--repo PATH_OR_URL [--path DIR]] [--fleet-only] [--machines N] [--machine-metadata k=v,k=v]...",
		Short: "Run Kaylee in a box: embedded etcd, a simulated fleet, the scheduler and git sync",
		Long: `Dev starts, in one process, an etcd (embedded, or the one given with
--etcd-endpoints), a simulated fleet cluster (fleet's own engine and agents on
N machines, with only systemd simulated) and Kaylee's scheduler, as kaylee
server runs it (the scheduler flags apply, --default-engine included: the
engine a unit that names none runs with; --min-ready defaults to 2s here).
With --repo it runs kaylee agent instead of the bare scheduler: the
repository is synced every --interval (default 10s here) and on webhooks at
--listen, and a summary of units and their machines is printed at each change.
With --fleet-only the scheduler does not run. Units whose unit file contains
"sim-fail" crash after starting and are restarted in a loop, as real systemd
does under Restart=always, so failed rollouts can be tried out.

It prints the etcd endpoint, the machines and the fleetctl command that
reaches them, says "ready" once everything listens, and runs until
interrupted (Ctrl-C, at any point, start-up included: exit 0). The terminal
shows the summary, warnings and errors; --verbose logs every fleet call,
status change and sync too. The web dashboard and the JSON API are at
http://<--listen>/ (default http://127.0.0.1:9520/): units,
their replicas on the machines, the source and the event log, live. In
another terminal, kaylee run, ls, status, restart, rm and events work
against it with no flags (the default --etcd-endpoints include
http://127.0.0.1:2379). fleet's own log lines go to fleet.log in the data
directory (with --verbose, to stderr).

--machine-metadata given once applies to every machine; given N times, the
i-th applies to machine i. By default machine i gets az=a|b|c in turn, ssd=false,
and role=worker (role=edge for every third machine), which the unit files in
examples/ ask for.`,
		Example: `  kaylee dev --repo . --path examples
  kaylee dev                      # then, elsewhere: kaylee run examples/countly.yaml; kaylee status
  kaylee dev --fleet-only
  kaylee dev --fleet-only --machines 5 --machine-metadata ssd=true,az=a --machine-metadata az=b
  kaylee dev --fleet-only --etcd-endpoints http://127.0.0.1:2379   # an etcd started with --enable-v2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.sched.fleetEndpoint != "" {
				return errors.New("--fleet-endpoint does not apply to kaylee dev: it reaches its simulated fleet through the registry")
			}
			if err := f.agent.http.check(); err != nil {
				return err
			}
			if err := f.sched.checkEarly(); err != nil {
				return err
			}
			return a.runDev(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.fleetOnly, "fleet-only", false, "run etcd and the simulated fleet only, no scheduler")
	fl.StringVar(&f.listenClient, "listen-client", "http://127.0.0.1:2379", "client URL of the embedded etcd")
	fl.StringVar(&f.dataDir, "data-dir", "", "data directory of the embedded etcd (default <user cache dir>/kaylee/dev-etcd)")
	fl.IntVar(&f.machines, "machines", 3, "number of simulated fleet machines")
	fl.StringArrayVar(&f.metadata, "machine-metadata", nil, "machine metadata k=v,k=v (once: every machine; N times: machine i)")
	fl.BoolVar(&f.verbose, "verbose", false, "log every fleet call, status change and sync, and the simulated fleet's and etcd's activity, on stderr (fleet's own lines otherwise go to <data dir>/fleet.log)")
	f.sched.register(fl, 2*time.Second)
	f.git.register(fl)
	registerAgentFlags(fl, &f.agent)
	_ = fl.Set("interval", "10s")
	fl.Lookup("interval").DefValue = "10s"
	return cmd
}

// runDev starts etcd (embedded unless --etcd-endpoints) and the simulated
// fleet, prints where they are, and runs the agent on them: the scheduler
// alone, or with the sync of --repo or --config; nothing with --fleet-only.
func (a *app) runDev(cmd *cobra.Command, f devFlags) (err error) {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	said := false
	stopping := func() {
		if !said {
			said = true
			fmt.Fprintln(out, "stopping")
		}
	}
	// Ctrl-C (or SIGTERM) is how dev stops, also while it starts: what it
	// cut short is no error.
	defer func() {
		if ctx.Err() != nil {
			stopping()
			err = nil
		}
	}()
	machines, err := devMachines(f.machines, f.metadata)
	if err != nil {
		return err
	}
	etcd, err := a.devEtcd(cmd, f)
	if err != nil {
		return err
	}
	defer etcd.close()
	fleetLog, restoreLog, err := devFleetLog(etcd.logDir, f.verbose, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer restoreLog() // after the cluster's Close: its last lines go there too
	logger := slog.New(slog.DiscardHandler)
	if f.verbose {
		logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
	}
	cluster, err := fleetsim.Start(ctx, fleetsim.Config{Endpoints: etcd.endpoints, KeyPrefix: f.sched.fleetPrefix, Machines: machines, Logger: logger})
	if err != nil {
		return fmt.Errorf("starting simulated fleet on %s: %w (is the etcd v2 API enabled?)", strings.Join(etcd.endpoints, ","), err)
	}
	defer cluster.Close()

	a.etcd.Endpoints = etcd.endpoints
	a.printDevCluster(out, f, etcd, cluster, fleetLog)
	if f.fleetOnly {
		fmt.Fprintf(out, "ready: try  %s   (Ctrl-C stops)\n", a.fleetctlCommand(etcd.endpoints, f.sched.fleetPrefix, "list-machines"))
		<-ctx.Done()
		stopping()
		return nil
	}
	err = a.runDevAgent(cmd, f, etcd.endpoints, cluster)
	stopping()
	return err
}

// devEtcdRun is the etcd kaylee dev runs on.
type devEtcdRun struct {
	endpoints []string
	where     string // for people: external, or embedded and its data directory
	logDir    string // where fleet's own log goes
	close     func()
}

// devEtcd starts the embedded etcd, unless --etcd-endpoints names one.
func (a *app) devEtcd(cmd *cobra.Command, f devFlags) (devEtcdRun, error) {
	if cmd.Flags().Changed("etcd-endpoints") {
		return devEtcdRun{endpoints: a.etcd.Endpoints, where: "external", logDir: devFleetLogDir(), close: func() {}}, nil
	}
	dir := f.dataDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return devEtcdRun{}, fmt.Errorf("no --data-dir and no user cache dir: %w", err)
		}
		dir = filepath.Join(base, "kaylee", "dev-etcd")
	}
	srv, err := embedetcd.Start(embedetcd.Config{Dir: dir, ClientURL: f.listenClient, Verbose: f.verbose, Fsync: true})
	if err != nil {
		if errors.Is(err, embedetcd.ErrAddrInUse) {
			return devEtcdRun{}, fmt.Errorf("%w; use --listen-client to pick another address, or --etcd-endpoints to use the etcd already there", err)
		}
		if errors.Is(err, embedetcd.ErrDataDirInUse) {
			return devEtcdRun{}, fmt.Errorf("%w: stop it, or give this one another directory with --data-dir DIR", err)
		}
		return devEtcdRun{}, err
	}
	return devEtcdRun{endpoints: srv.Endpoints(), where: "embedded, data in " + dir, logDir: dir, close: srv.Close}, nil
}

// printDevCluster tells where etcd and fleet's machines are.
func (a *app) printDevCluster(out io.Writer, f devFlags, etcd devEtcdRun, cluster *fleetsim.Cluster, fleetLog string) {
	fmt.Fprintf(out, "etcd:  %s (%s)\n", strings.Join(etcd.endpoints, ","), etcd.where)
	fmt.Fprintf(out, "fleet: %d machines under %s\n", len(cluster.Machines()), f.sched.fleetPrefix)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  MACHINE\tIP\tMETADATA")
	for _, m := range cluster.Machines() {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", m.ID(), m.PublicIP(), formatMetadata(m.State().Metadata))
	}
	tw.Flush()
	fmt.Fprintf(out, "fleet's own log: %s\n", fleetLog)
	fmt.Fprintf(out, "fleetctl: %s   (fleet's own CLI, v1.0.0; list-machines too)\n", a.fleetctlCommand(etcd.endpoints, f.sched.fleetPrefix, "list-units"))
}

// runDevAgent runs the agent on dev's etcd and simulated fleet: with
// --repo or --config, kaylee agent's configuration and a summary printed
// at each change; otherwise kaylee server's, with the dashboard.
func (a *app) runDevAgent(cmd *cobra.Command, f devFlags, endpoints []string, cluster *fleetsim.Cluster) error {
	ctx, out := cmd.Context(), cmd.OutOrStdout()
	// Quiet by default: the summary says what the fleet calls, status
	// changes and syncs did; warnings and errors stay.
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelInfo
	}
	log, err := f.sched.leveledLogger(cmd.ErrOrStderr(), level)
	if err != nil {
		return err
	}
	c, err := store.Dial(ctx, store.DialConfig{Endpoints: endpoints})
	if err != nil {
		return a.etcdHint(err)
	}
	defer closeClient(c)
	s := store.New(c, a.etcd.Prefix)
	fmt.Fprintf(out, "scheduler: units under %s/units/, fleet units %s:*, --min-ready %s\n", s.Prefix(), f.sched.unitPrefix, f.sched.minReady)
	if addr, _ := f.agent.consoleAddr(); addr != "" {
		u := "http://" + browsable(addr)
		fmt.Fprintf(out, "dashboard: %s/   (JSON API at %s/api/v1/)\n", u, u)
	}
	ac := f.agent
	ac.name = "dev"
	ac.git, ac.sched, ac.store, ac.api, ac.log, ac.etcd = &f.git, &f.sched, s, cluster.API(), log, endpoints
	if f.git.repo == "" && f.git.configFile == "" {
		ac.ready = func() {
			fmt.Fprintf(out, "ready: in another terminal  kaylee run examples/countly.yaml && kaylee status   (Ctrl-C stops)\n")
		}
		// The scheduler alone, as kaylee server runs it, with the
		// dashboard, health and metrics on --listen.
		ac.schedulerOnly, ac.noWebhooks = true, true
		return a.runAgent(cmd, ac)
	}
	if f.git.configFile != "" {
		fmt.Fprintf(out, "git: the sources of %s; webhooks and metrics on %s\n", f.git.configFile, orDash(f.agent.listen))
	} else {
		fmt.Fprintf(out, "git: %s path %q every %s; webhooks and metrics on %s\n", gitsource.RedactURL(f.git.repo), f.git.path, f.agent.interval, orDash(f.agent.listen))
	}
	// The summary ends before "stopping" and before the store closes.
	summaryCtx, stopSummary := context.WithCancel(ctx)
	summaryDone, summarizing := make(chan struct{}), false
	ac.ready = func() { // once --listen accepts connections
		fmt.Fprintf(out, "ready: commit unit files and watch them roll out below   (Ctrl-C stops)\n")
		summarizing = true // ready runs on runAgent's caller's goroutine, before runAgent returns
		go func() {
			defer close(summaryDone)
			devSummary(summaryCtx, s, out)
		}()
	}
	err = a.runAgent(cmd, ac)
	stopSummary()
	if summarizing {
		<-summaryDone
	}
	return err
}

// fleetctlCommand is the command line of fleet's own fleetctl (v1.0.0)
// that runs sub against dev's fleet: through its registry in etcd
// (fleetctl's default driver is fleetd's HTTP API, which dev does not
// serve), under its key prefix, with the etcd TLS files.
func (a *app) fleetctlCommand(endpoints []string, prefix, sub string) string {
	args := []string{"fleetctl", "--driver", "etcd", "--endpoint", strings.Join(endpoints, ",")}
	if prefix != fleet.DefaultKeyPrefix {
		args = append(args, "--etcd-key-prefix", prefix)
	}
	for _, f := range []struct{ flag, file string }{{"--ca-file", a.etcd.CA}, {"--cert-file", a.etcd.Cert}, {"--key-file", a.etcd.Key}} {
		if f.file != "" {
			args = append(args, f.flag, f.file)
		}
	}
	args = append(args, sub)
	for i, arg := range args {
		args[i] = shellQuote(arg)
	}
	return strings.Join(args, " ")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// devMachines builds the machine list: metadata given once applies to all,
// given n times applies in order; the default spreads machines over az=a|b|c
// with the metadata the examples ask for.
func devMachines(n int, metadata []string) ([]fleetsim.MachineConfig, error) {
	if n < 1 {
		return nil, fmt.Errorf("--machines %d: need at least one machine", n)
	}
	if len(metadata) > 1 && len(metadata) != n {
		return nil, fmt.Errorf("--machine-metadata given %d times for %d machines: give it once (for all) or once per machine", len(metadata), n)
	}
	var mds []map[string]string
	for _, s := range metadata {
		md, err := parseMetadata(s)
		if err != nil {
			return nil, fmt.Errorf("--machine-metadata %q: %w", s, err)
		}
		mds = append(mds, md)
	}
	if len(mds) == 0 {
		for i := range n {
			role := "worker"
			if i%3 == 2 {
				role = "edge"
			}
			mds = append(mds, map[string]string{"az": string(rune('a' + i%3)), "ssd": "false", "role": role})
		}
	}
	return fleetsim.Machines(n, mds...), nil
}

func parseMetadata(s string) (map[string]string, error) {
	md := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("%q is not key=value", kv)
		}
		md[k] = v
	}
	return md, nil
}

func formatMetadata(md map[string]string) string {
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + md[k]
	}
	return strings.Join(parts, ",")
}

// browsable is a listen address as a browser reaches it: a host left out
// (":9520") or unspecified ("0.0.0.0") is this machine's loopback.
func browsable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
