package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kaylee-gitops/kaylee/router"
	"github.com/kaylee-gitops/kaylee/store"
)

// routerFlags are kaylee router's flags.
type routerFlags struct {
	listen, tlsListen, certDir string
	caddy, adminSocket         string
	statusListen               string
	resync                     time.Duration
	logFormat                  string
}

const (
	routerStatusListen = "127.0.0.1:9524"
	routerAdminSocket  = "/run/kaylee-router/caddy.sock"
)

func (f *routerFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	f.registerProxy(fl, "", "")
	fl.StringVar(&f.statusListen, "status-listen", routerStatusListen, "address of GET /status (the router's state as JSON; 503 while etcd is lost); empty for none")
	fl.DurationVar(&f.resync, "resync", 5*time.Second, "read etcd at least this often (how soon a lost etcd is noticed)")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format on stderr: text or json")
}

// registerProxy registers the flags of the proxy, named with prefix
// (kaylee agent's are --router-…); caddy is --caddy's default.
func (f *routerFlags) registerProxy(fl *pflag.FlagSet, prefix, caddy string) {
	fl.StringVar(&f.listen, prefix+"listen", ":80", "address caddy serves HTTP on")
	fl.StringVar(&f.tlsListen, prefix+"tls-listen", ":443", "address caddy serves HTTPS on, with --"+prefix+"cert-dir only")
	fl.StringVar(&f.certDir, prefix+"cert-dir", "", "directory of certificate files: <domain>.crt and <domain>.key, _wildcard.<rest> for *.<rest>; without it, HTTP only")
	fl.StringVar(&f.caddy, prefix+"caddy", caddy, "caddy binary to run and supervise (/usr/bin/caddy); empty: configure the caddy already listening on --"+prefix+"admin-socket")
	fl.StringVar(&f.adminSocket, prefix+"admin-socket", routerAdminSocket, "unix socket of caddy's admin API")
}

// newRouter makes the router of the flags on s, and the caddy it runs
// (nil without --caddy).
func (f *routerFlags) newRouter(s *store.Store, stderr io.Writer, log *slog.Logger) (*router.Router, *router.Caddy) {
	r := router.New(router.Config{Store: s, Admin: router.NewAdmin(f.adminSocket), AdminSocket: f.adminSocket,
		Listen: f.listen, TLSListen: f.tlsListen, CertDir: f.certDir, Resync: f.resync, Log: log})
	if f.caddy == "" {
		return r, nil
	}
	return r, &router.Caddy{Path: f.caddy, AdminSocket: f.adminSocket, Output: stderr, Log: log}
}

func (a *app) routerCommand() *cobra.Command {
	var f routerFlags
	cmd := &cobra.Command{
		Use:   "router [--caddy /usr/bin/caddy] [--listen :80] [--cert-dir DIR [--tls-listen :443]]",
		Short: "Route each unit's domains to its serving replicas through Caddy",
		Long: `Router keeps a Caddy (the web server, its admin API on a unix socket)
configured from etcd: each unit's domains go to the replicas of the unit in
the instance registry (<etcd-prefix>/instances/, see kaylee endpoints), at
their machine's IP and the unit's HTTP port (the port domainsPort names, else
the one named http, else the only tcp port). kaylee routes shows the same
routes.

  - A host no unit claims gets 404 ("no unit serves <host>"); a domain whose
    unit has no replica in the registry gets 503 naming the unit. Exact names
    are matched before wildcards; *.a.com matches one label (x.a.com).
  - Drain: the scheduler removes a replica from the registry before it stops
    it. The router hears it at once (it watches etcd; a burst of changes is
    read at most every 100ms) and loads Caddy's new configuration, about 10ms
    later here: requests in flight finish on the old configuration, new ones
    go to the replicas left. A request to a replica that refuses the
    connection (or does not answer it in 300ms) is retried on another for up to
    5s.
  - With --caddy, the router runs caddy itself (caddy run, the admin API on
    --admin-socket) and starts it again if it exits; without, it configures
    the caddy listening on --admin-socket (its config must allow the Host
    127.0.0.1 in admin.origins), and loads the configuration again every
    minute in case it restarted.
  - TLS: with --cert-dir, the domains whose <dir>/<domain>.crt and .key exist
    are also served on --tls-listen with those files (no ACME). HTTP stays.
  - Without etcd, Caddy keeps serving the last configuration; the router logs
    it once, GET /status on --status-listen answers 503 with etcdError, and
    the router reads everything again when etcd is back.

Run any number of routers (a fleet global unit, contrib/fleet/
kaylee-router.service): each depends on etcd alone.`,
		Example: `  kaylee router --caddy /usr/bin/caddy
  kaylee router --caddy /usr/bin/caddy --listen :8080 --cert-dir /etc/kaylee/certs --tls-listen :8443
  curl -s 127.0.0.1:9524/status`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runRouter(cmd, f)
		},
	}
	f.register(cmd)
	return cmd
}

func (a *app) runRouter(cmd *cobra.Command, f routerFlags) error {
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	log, err := (&schedulerFlags{logFormat: f.logFormat}).logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	if f.adminSocket == "" {
		return errors.New("--admin-socket: a path is needed")
	}
	s, done, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	defer done()
	r, c := f.newRouter(s, cmd.ErrOrStderr(), log)
	if f.statusListen != "" {
		ln, err := net.Listen("tcp", f.statusListen)
		if err != nil {
			return fmt.Errorf("--status-listen: %w", err)
		}
		srv := &http.Server{Handler: r.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
	}
	log.Info("kaylee router", "version", versionString(), "listen", f.listen, "certDir", f.certDir, "caddy", f.caddy, "adminSocket", f.adminSocket)
	if c == nil {
		return r.Run(ctx)
	}
	if err := router.RunWithCaddy(ctx, c, r); err != nil {
		return fmt.Errorf("--caddy: %w", err)
	}
	return nil
}

func (a *app) routesCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "routes [-o text|json]",
		Short: "List each domain with its unit and serving endpoints, as kaylee router routes them",
		Long: `Routes lists every domain of the units in etcd with its unit and the
endpoints (machine IP and HTTP port of each replica in the instance
registry) that kaylee router sends it to, in the order the router matches
them: exact names first, then wildcards. A domain without endpoints gets
503 from the router; NOTE says why when replicas serve but none has an
address, or when two units claim one domain (the first by name gets it).`,
		Example: `  kaylee routes
  kaylee routes -o json | jq -r '.[] | select(.endpoints == []) | .domain'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return a.withStore(cmd.Context(), func(s *store.Store) error {
				routes, err := router.ReadRoutes(cmd.Context(), s)
				if err != nil {
					return err
				}
				if output == "json" {
					return writeJSON(cmd.OutOrStdout(), routes)
				}
				writeRoutes(cmd.OutOrStdout(), routes)
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func writeRoutes(w io.Writer, routes []router.Route) {
	if len(routes) == 0 {
		fmt.Fprintln(w, "no unit has domains")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DOMAIN\tUNIT\tENDPOINTS\tNOTE")
	for _, r := range routes {
		eps := strings.Join(r.Endpoints, ",")
		if eps == "" {
			eps = "- (503)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Domain, r.Unit, eps, orDash(r.Note))
	}
	tw.Flush()
}
