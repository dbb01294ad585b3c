package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kaylee-gitops/kaylee/agent"
	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

func (a *app) evidenceCommand() *cobra.Command {
	var (
		dir, machine, logFormat string
		every, keep, ttl        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "evidence [--dir " + deploy.EvidenceDir + "]",
		Short: "Publish what failing replicas left on this machine (run on every machine)",
		Long: `Evidence publishes this machine's failure evidence to etcd. Every replica
Kaylee renders (docker, podman, rkt) ends each stop with a step that writes,
to a file in --dir named after its fleet unit, how its main process ended
(systemd's result, exit code and status), its restart count, its last 20
journal lines (each cut to 300 bytes, 4 KiB in all) and its health check's
last answer; never its environment. This command reads --dir every --every
and writes each file to <etcd-prefix>/evidence/<unit>/<fleet unit>/<machine>
under a lease of its own (the keys go --ttl after it stops), with the
unit's env values (and those of its env files here) replaced by ***.
Files older than --keep are not published (their keys go); the replicas'
evidence step removes files older than a day. It only reads --dir.

The scheduler reads them when a rollout fails: kaylee status, the event,
the notification and the dashboard then tell the exit status and the last
journal lines. Run it on every machine: contrib/fleet/kaylee-evidence.service
(a global fleet unit) or contrib/systemd/kaylee-evidence.service.`,
		Example: `  kaylee evidence                          # /run/kaylee/evidence, this machine's ID
  kaylee evidence --machine-id $(cat /etc/machine-id) --keep 30m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := (&schedulerFlags{logFormat: logFormat}).logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if ttl < 5*time.Second {
				return fmt.Errorf("--ttl %s: at least 5s (etcd's leases count in seconds)", ttl)
			}
			s, done, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			log.Info("kaylee evidence", "version", versionString(), "dir", dir, "every", every, "keep", keep)
			err = agent.PublishEvidence(cmd.Context(), agent.EvidenceConfig{Store: s, Dir: dir, Machine: machine, Every: every, Keep: keep, TTL: ttl, Log: log})
			if err != nil && machine == "" {
				return fmt.Errorf("%w (give --machine-id)", err)
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dir, "dir", deploy.EvidenceDir, "directory the replicas' evidence step writes to")
	fl.StringVar(&machine, "machine-id", "", "fleet's ID of this machine (default: /etc/machine-id's)")
	fl.DurationVar(&every, "every", time.Second, "how often --dir is read")
	fl.DurationVar(&keep, "keep", time.Hour, "publish no evidence file older than this (and delete its key)")
	fl.DurationVar(&ttl, "ttl", time.Minute, "lease of the keys: they go this long after the publisher stops")
	fl.StringVar(&logFormat, "log-format", "text", "log format on stderr: text or json")
	return cmd
}

// writeEvidence prints a failed rollout's evidence (kaylee status NAME):
// what the failing replica's machine saw, its journal lines indented.
func writeEvidence(w io.Writer, ev *store.Evidence, now time.Time) {
	if ev == nil {
		return
	}
	fmt.Fprintf(w, "\nEvidence from the machine (kaylee evidence on %s):\n", ev.Machine)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  Fleet unit:\t%s\n", ev.FleetUnit)
	fmt.Fprintf(tw, "  Stopped:\t%s ago (%s)\n", age(ev.Time, now), ev.Time.UTC().Format(time.RFC3339))
	exit := orDash(ev.Exit())
	if ev.Result != "" {
		exit += " (systemd: " + ev.Result + ")"
	}
	fmt.Fprintf(tw, "  Exit:\t%s\n", exit)
	fmt.Fprintf(tw, "  Restarts:\t%d\n", ev.Restarts)
	if ev.Probe != "" {
		fmt.Fprintf(tw, "  Health check:\t%s\n", ev.Probe)
	}
	tw.Flush()
	if len(ev.Journal) == 0 {
		fmt.Fprintln(w, "  Journal: (no lines)")
		return
	}
	fmt.Fprintf(w, "  Journal (last %d lines):\n", len(ev.Journal))
	for _, l := range ev.Journal {
		fmt.Fprintf(w, "    %s\n", l)
	}
}
