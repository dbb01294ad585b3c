package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/sync"
)

// Exit codes of kaylee sync --once.
const (
	exitFileErrors  = 1 // some file failed; the good ones were applied
	exitUnreachable = 2 // the repository or etcd could not be read: nothing written
	exitRefused     = 3 // a safety rule refused the pass: nothing written
)

func (a *app) syncCommand() *cobra.Command {
	var (
		g        gitFlags
		once     bool
		dryRun   bool
		output   string
		interval time.Duration
		sched    schedulerFlags
	)
	cmd := &cobra.Command{
		Use:   "sync --repo URL [--path DIR] [--once [--dry-run]]",
		Short: "Mirror the unit files of a git repository into etcd",
		Long: `Sync reads every *.yaml and *.yml file under --path at the head of --ref,
validates each unit, and writes to <etcd-prefix>/units/ only what changed. It
prunes the units this source created earlier (its inventory, kept with the
revision in <etcd-prefix>/sync/<source>) that git no longer has.

Safety rules: a file that fails changes nothing for its units (they stay as
they were); units made with kaylee run are never pruned; a sync that would
leave the source empty needs --allow-empty, and one that would prune more than
--max-prune of its units needs --force; if the repository or etcd cannot be
read, nothing is written.

With --once (the CI use) it makes one pass and prints a summary:
  main@3f2a9c1: 2 created, 1 updated, 1 pruned, 14 unchanged, 1 error
with each error on stderr as FILE:LINE: message. Exit status: 0 all well;
1 some file failed (the good ones were applied); 2 the repository or etcd
could not be reached (nothing written); 3 a safety rule refused the pass
(nothing written). --dry-run prints the plan, with a field diff per updated
unit, and writes nothing.

Without --once it syncs every --interval under leader election, as kaylee
agent does, but without the scheduler.`,
		Example: `  kaylee sync --once --repo https://git.example.com/ops/units.git --path prod
  kaylee sync --once --dry-run --repo . --path examples
  KAYLEE_GIT_PASSWORD=$TOKEN kaylee sync --once --repo https://github.com/org/units --git-username ci`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if !once {
				if dryRun {
					return errors.New("--dry-run needs --once")
				}
				return a.runAgent(cmd, agentConfig{git: &g, sched: &sched, interval: interval, listen: "", syncOnly: true})
			}
			return a.syncOnce(cmd, &g, dryRun, output)
		},
	}
	fl := cmd.Flags()
	g.register(fl)
	fl.BoolVar(&once, "once", false, "one pass, then exit (the CI use)")
	fl.BoolVar(&dryRun, "dry-run", false, "with --once: print the plan and write nothing")
	fl.StringVarP(&output, "output", "o", "text", "with --once: text or json")
	fl.DurationVar(&interval, "interval", time.Minute, "without --once: time between syncs (±10%)")
	fl.DurationVar(&sched.leaseTTL, "lease-ttl", 10*time.Second, "without --once: leader lease")
	fl.StringVar(&sched.logFormat, "log-format", "text", "without --once: log format, text or json")
	return cmd
}

func (a *app) syncOnce(cmd *cobra.Command, g *gitFlags, dryRun bool, output string) error {
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	src, opts, err := a.openGit(g)
	if err != nil {
		return err
	}
	opts.DryRun = dryRun
	fail := func(code int, format string, args ...any) error {
		fmt.Fprintf(stderr, "kaylee: "+format+"\n", args...)
		return exitError{code: code}
	}
	snap, err := src.Fetch(ctx)
	if err != nil {
		return fail(exitUnreachable, "cannot read the repository: %v; nothing was written", err)
	}
	s, done, err := a.openStore(ctx)
	if err != nil {
		return fail(exitUnreachable, "%v; nothing was written", err)
	}
	defer done()
	res, err := sync.Pass(ctx, s, snap, opts)
	switch {
	case errors.Is(err, sync.ErrRefused):
		return fail(exitRefused, "%v; nothing was written", err)
	case err != nil:
		return fail(exitUnreachable, "%v", err)
	}
	w := cmd.OutOrStdout()
	if output == "json" {
		if err := writeJSON(w, res); err != nil {
			return err
		}
	} else {
		if dryRun {
			writePlan(w, res)
		}
		fmt.Fprintln(w, res.Summary())
		for _, c := range res.Changes {
			if c.Action == sync.Kept && !dryRun {
				fmt.Fprintf(w, "kept      %s: %s\n", c.Name, c.Note)
			}
		}
	}
	for _, e := range res.Errors {
		fmt.Fprintln(stderr, e.String())
	}
	if len(res.Errors) > 0 {
		return exitError{code: exitFileErrors}
	}
	return nil
}

func writePlan(w io.Writer, res *sync.Result) {
	for _, c := range res.Changes {
		if c.Action == sync.Unchanged {
			continue
		}
		fmt.Fprintf(w, "%-9s %s", c.Action, c.Name)
		if c.File != "" {
			fmt.Fprintf(w, " (%s)", c.File)
		}
		fmt.Fprintln(w)
		if c.Note != "" {
			fmt.Fprintf(w, "          %s\n", c.Note)
		}
		for _, d := range c.Diff {
			fmt.Fprintf(w, "          %s\n", d)
		}
	}
}

// syncDone: the source has been synced at least once (for readiness).
func syncDone(r *store.SyncRecord) bool { return r != nil && r.Revision != "" }
