package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kaylee-gitops/kaylee/agent"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/sync"
)

// Exit codes of kaylee sync --once.
const (
	exitFileErrors  = 1 // some file failed; the good ones were applied
	exitUnreachable = 2 // the repository or etcd could not be read: nothing written
	exitRefused     = 3 // a safety rule refused the pass: nothing written
	exitSetup       = 4 // a flag, the config file or a file it names is wrong: nothing was tried
)

// setupError is an error of kaylee sync's setup (exit 4): a bad flag
// value, config file, key, known_hosts or password file. CI tells it from
// a repository that failed (1, 2, 3) by its code.
type setupError struct{ err error }

func (e setupError) Error() string { return e.err.Error() }
func (e setupError) Unwrap() error { return e.err }

func (a *app) syncCommand() *cobra.Command {
	f := syncFlags{loop: agentConfig{name: "sync", syncOnly: true}}
	cmd := &cobra.Command{
		Use:   "sync (--repo URL [--path DIR] | --config FILE [SOURCE...]) [--once [--dry-run]] | sync --now [SOURCE...] [--force]",
		Short: "Mirror the unit files of git repositories into etcd",
		Long: `Sync reads every *.yaml and *.yml file under --path at the head of --ref,
validates each unit, and writes to <etcd-prefix>/units/ only what changed. It
prunes the units this source created earlier (its inventory, kept with the
revision in <etcd-prefix>/sync/<source>) that git no longer has.

Safety rules: a file that fails changes nothing for its units (they stay as
they were); units made with kaylee run are never pruned; a sync that would
leave the source empty needs --allow-empty, and one that would prune more than
--max-prune of its units needs --force; if the repository or etcd cannot be
read, nothing is written. A revision that does not descend from the one the
source last applied (the ref was moved back, or its history rewritten) is
refused unless --allow-rewind (allowRewind: true in a config file) allows it;
an allowed one is recorded and told as a rewound event. A source with
verify: in --config applies only revisions whose signature verifies; any
other writes nothing and keeps the last verified revision applied.

--config FILE lists several sources (see kaylee help config); each has its
own record, inventory and leader. With --once, SOURCE names pick some.

With --once (the CI use) it makes one pass and prints a summary:
  main@3f2a9c1: 2 created, 1 updated, 1 pruned, 14 unchanged, 1 error
with each error on stderr as FILE:LINE: message. Exit status: 0 all well;
1 some file failed (the good ones were applied); 2 the repository or etcd
could not be reached (nothing written); 3 a safety rule refused the pass (a
rewind among them), or the revision's signature did not verify (nothing
written); 4 the setup is wrong: a flag, the config file, or a file it names
(key, known_hosts, password file); nothing was tried. With several
sources, the highest status of any. A source under a change freeze (see
kaylee freeze) records the new revision, applies nothing and exits 3;
--force applies it anyway, told as a freeze-overridden event naming you.
--dry-run prints the plan, with a field diff per updated unit, and writes
nothing; --dry-run --placement also reads fleet and says where each unit
could run, or why no machine can take it (exit 1), as kaylee plan.

Without --once it syncs every --interval, each source under its own leader
election, as kaylee agent does, but without the scheduler, and serves on
--listen (default 127.0.0.1:9523, apart from kaylee agent's 9520 and kaylee
server's 9522; empty for none) /healthz (200 while it runs), /readyz (200
once etcd answers and every source not suspended has been synced; 503 with
the reasons) and /metrics (kaylee_sync_* and kaylee_leader{role="sync"} of
the sources it leads). No dashboard and no webhooks: kaylee agent has them.

--now asks the processes that sync the named sources (all that have a leader
when none is named) to make a pass at once, as a webhook does; with --force
that pass goes through the change freezes that hold (once), told as a
freeze-overridden event naming you.`,
		Example: `  kaylee sync --once --repo https://git.example.com/ops/units.git --path prod
  kaylee sync --once --dry-run --repo . --path examples
  KAYLEE_GIT_PASSWORD=$TOKEN kaylee sync --once --repo https://github.com/org/units --git-username ci
  kaylee sync --once --config /etc/kaylee/kaylee.yaml team-a
  kaylee sync --now --force team-a`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runSync(cmd, &f, args)
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// syncFlags are kaylee sync's flags: one pass (--once), or the sync loop.
type syncFlags struct {
	g      gitFlags
	once   bool
	now    bool
	dryRun bool
	// placement: with --dry-run, place the units on fleet (kaylee plan).
	placement bool
	output    string
	sched     schedulerFlags
	loop      agentConfig
}

func (f *syncFlags) register(fl *pflag.FlagSet) {
	f.g.register(fl)
	fl.BoolVar(&f.once, "once", false, "one pass, then exit (the CI use)")
	fl.BoolVar(&f.now, "now", false, "ask the running agents to sync the named sources (all when none) at once; with --force, through their freezes")
	fl.BoolVar(&f.dryRun, "dry-run", false, "with --once: print the plan and write nothing")
	fl.StringVarP(&f.output, "output", "o", "text", "with --once: text or json")
	fl.BoolVar(&f.placement, "placement", false, "with --once --dry-run: also say where each unit could run on fleet, as kaylee plan does (exit 1 when a unit can run on no machine)")
	registerFleetAccess(fl, &f.sched)
	fl.DurationVar(&f.loop.interval, "interval", time.Minute, "without --once: time between syncs (±10%)")
	fl.DurationVar(&f.sched.leaseTTL, "lease-ttl", 10*time.Second, "without --once: leader lease")
	fl.StringVar(&f.sched.logFormat, "log-format", "text", "without --once: log format, text or json")
	registerRoleListen(fl, &f.loop, syncListen, "without --once: ")
}

// runSync makes one pass with --once, else runs the sync loop.
func (a *app) runSync(cmd *cobra.Command, f *syncFlags, args []string) error {
	if err := checkOutput(f.output); err != nil {
		return setupError{err}
	}
	if f.now {
		if f.once || f.dryRun {
			return setupError{errors.New("--now asks the running agents to sync; --once and --dry-run sync here: give one")}
		}
		return a.syncNow(cmd, args, f.g.force)
	}
	if len(args) > 0 && (f.g.configFile == "" || !f.once) {
		return setupError{fmt.Errorf("source names (%s) pick sources of --config with --once; otherwise give no argument", strings.Join(args, " "))}
	}
	if f.placement {
		if !f.once || !f.dryRun {
			return setupError{errors.New("--placement needs --once --dry-run")}
		}
		return a.planOnce(cmd, &f.g, &f.sched, f.output, args)
	}
	if !f.once {
		if f.dryRun {
			return setupError{errors.New("--dry-run needs --once")}
		}
		f.loop.git, f.loop.sched = &f.g, &f.sched
		return a.runAgent(cmd, f.loop)
	}
	return a.syncOnce(cmd, &f.g, f.dryRun, f.output, args)
}

func (a *app) syncOnce(cmd *cobra.Command, g *gitFlags, dryRun bool, output string, only []string) error {
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	cf, err := loadConfig(g.configFile, cmd.Flags())
	if err != nil {
		return setupError{err}
	}
	sources, err := a.openSources(g, cf, time.Minute)
	if err != nil {
		return setupError{err}
	}
	if sources, err = pickSources(sources, only); err != nil {
		return setupError{err}
	}
	s, done, err := a.openStore(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "kaylee: %v; nothing was written\n", err)
		return exitError{code: exitUnreachable}
	}
	defer done()
	code := 0
	var results []*sync.Result
	for _, src := range sources {
		res, c := a.syncSource(cmd, s, src, dryRun, output, cf != nil)
		code = max(code, c)
		if res != nil {
			results = append(results, res)
		}
	}
	if output == "json" {
		var v any = results
		if cf == nil && len(results) == 1 {
			v = results[0]
		}
		if err := writeJSON(cmd.OutOrStdout(), v); err != nil {
			return err
		}
	}
	if code != 0 {
		return exitError{code: code}
	}
	return nil
}

// pickSources keeps the sources named on the command line (all when none).
func pickSources(all []agent.Source, names []string) ([]agent.Source, error) {
	if len(names) == 0 {
		return all, nil
	}
	byName := map[string]agent.Source{}
	var known []string
	for _, s := range all {
		byName[s.Options.Source] = s
		known = append(known, s.Options.Source)
	}
	var out []agent.Source
	for _, n := range names {
		s, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("no source %q in the config file (it has %s)", n, strings.Join(known, ", "))
		}
		out = append(out, s)
	}
	return out, nil
}

// syncSource makes one pass of one source, the loop's own
// (sync.Loop.Pass: it records the attempt unless dry), prints it and
// returns the exit status its outcome calls for.
func (a *app) syncSource(cmd *cobra.Command, s *store.Store, src agent.Source, dryRun bool, output string, named bool) (*sync.Result, int) {
	stderr := cmd.ErrOrStderr()
	prefix := "kaylee: "
	if named {
		prefix = "kaylee: source " + src.Options.Source + ": "
	}
	opts := src.Options
	opts.DryRun, opts.OneOff = dryRun, true
	if opts.Force {
		opts.OverrideFreeze = a.who() // --force goes through freezes too, told with who
	}
	l := &sync.Loop{Fetcher: src.Fetcher, Store: s, Options: opts, Timeout: src.Timeout, ID: "sync --once " + agent.NewID()}
	rep := l.Pass(cmd.Context(), store.Fence{})
	if rep.EventsErr != nil {
		fmt.Fprintf(stderr, "%swarning: event log not written: %v\n", prefix, rep.EventsErr)
	}
	code := onceExit(rep.Outcome())
	if rep.Err != nil {
		fmt.Fprintf(stderr, "%s%s\n", prefix, onceFailure(src, rep, named))
		return nil, code
	}
	res := rep.Result
	if output != "json" {
		writeSummary(cmd.OutOrStdout(), res, named)
	}
	if f := res.Frozen; f != nil {
		fmt.Fprintf(stderr, "%s%s\n", prefix, frozenFailure(res, named))
	}
	for _, e := range res.Errors {
		fmt.Fprintln(stderr, e.String())
	}
	for _, e := range res.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", e.String())
	}
	return res, code
}

// onceExit is the exit status of kaylee sync --once for the outcome of a
// pass (sync.Outcome).
func onceExit(outcome string) int {
	switch outcome {
	case store.AttemptSynced:
		return 0
	case store.AttemptFileErrors:
		return exitFileErrors
	case store.AttemptRefused, store.AttemptUnverified, store.AttemptFrozen:
		return exitRefused
	}
	return exitUnreachable // failed: the repository or etcd could not be read
}

// onceFailure is what kaylee sync --once says of a pass that applied
// nothing, by its outcome, with what to do about it.
func onceFailure(src agent.Source, rep sync.Report, named bool) string {
	switch rep.Outcome() {
	case store.AttemptUnverified:
		return fmt.Sprintf("%v; nothing was written, the last verified revision stays applied", rep.Err)
	case store.AttemptRefused:
		return fmt.Sprintf("%v; nothing was written%s", rep.Err, refusalHint(rep.Err, named))
	}
	if !rep.Fetched {
		return fmt.Sprintf("cannot read the repository: %v%s; nothing was written", rep.Err, authHint(src, rep.Err))
	}
	return rep.Err.Error()
}

// frozenFailure is what kaylee sync --once says of a pass a freeze held.
func frozenFailure(res *sync.Result, named bool) string {
	f := res.Frozen
	until := "until kaylee unfreeze " + res.Source
	if !f.Until.IsZero() {
		until = "until " + f.Until.UTC().Format(time.RFC3339)
	}
	who := "source " + res.Source + " is frozen"
	if named {
		who = "frozen" // after "source NAME: "
	}
	return fmt.Sprintf("%s %s (%s): revision %s was recorded, nothing was applied; --force applies it anyway (told as a freeze-overridden event naming you)",
		who, until, f.Reason, res.Short)
}

// authHint says where credentials go when the repository asked for them.
func authHint(src agent.Source, err error) string {
	if !errors.Is(err, transport.ErrAuthenticationRequired) {
		return ""
	}
	return fmt.Sprintf(" (set %s with %s or %sGIT_PASSWORD, or %s)", src.Config.Where("username"), src.Config.Where("passwordFile"), envPrefix, src.Config.Where("sshKeyFile"))
}

// writeSummary prints a pass that applied (or, dry, would apply): the
// plan when dry, the summary line, and the units kept rolled back.
func writeSummary(w io.Writer, res *sync.Result, named bool) {
	if res.DryRun {
		writePlan(w, res)
	}
	if named {
		fmt.Fprintf(w, "%s: ", res.Source)
	}
	fmt.Fprintln(w, res.Summary())
	for _, c := range res.Changes {
		if c.Action == sync.Kept && !res.DryRun {
			fmt.Fprintf(w, "kept      %s: %s\n", c.Name, c.Note)
		}
	}
}

// refusalHint says how to allow what a safety rule refused; named: the
// source is one of a config file's.
func refusalHint(err error, named bool) string {
	if errors.Is(err, sync.ErrRewind) {
		if named {
			return "; allowRewind: true on the source in the config file, or --allow-rewind for one run, applies it, if that is what you want"
		}
		return "; --allow-rewind applies it (this run only), if that is what you want"
	}
	var r *sync.RefusedError
	if !errors.As(err, &r) {
		return ""
	}
	if r.Empty {
		return "; pass --allow-empty (allowEmpty: true in a config file) if that is what you want"
	}
	return "; pass --force (or raise --max-prune, maxPrune: in a config file) if that is what you want"
}

func writePlan(w io.Writer, res *sync.Result) {
	for _, c := range res.Changes {
		if c.Action != sync.Unchanged {
			writeChange(w, c)
		}
	}
}

// writeChange prints one unit of a plan: its action, name and file, then
// its note and field diff, indented.
func writeChange(w io.Writer, c sync.Change) {
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
