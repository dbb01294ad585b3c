package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kaylee-gitops/kaylee/agent"
	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet"
	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/internal/localtree"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/sync"
)

// exitUnschedulable is kaylee plan's status when a unit can run on no
// machine: the same as a file that fails (exitFileErrors), for CI.
const exitUnschedulable = exitFileErrors

func (a *app) planCommand() *cobra.Command {
	f := planFlags{}
	cmd := &cobra.Command{
		Use:   "plan (--repo URL [--path DIR] [--ref REF] | --config FILE [SOURCE...] | PATH...) [-o text|json]",
		Short: "Show what a sync would change and where each unit could run, writing nothing",
		Long: `Plan makes the pass kaylee sync --once --dry-run makes (the same files, the
same field diff per updated unit, the same safety rules), then reads fleet's
live machines and units and says, for every unit the source has, where its
fleet units could run, as fleet's own rules place them: machine (values of one
key OR'd, keys AND'd), machineId, conflicts (matched both ways against every
unit on a machine), replicas with maxReplicasPerHost, spread and the members
of a stateful unit. It writes nothing to etcd and calls nothing in fleet that
changes it.

For each unit it prints create, update (with its field diff), unchanged or
prune, and "runs on: 3f2a9c1e (192.0.2.1), … (3 of 5 machines match)". A unit
no machine can take is an error at the field that keeps it off, printed under
the unit and on stderr as FILE:LINE: FIELD: why, for instance
  units/db.yaml:4: machine: no live machine has disk=ssd (3 live machines: …)
Such errors: machine that no live machine has; replicas more than the
matching machines times maxReplicasPerHost; a spread whose zones cannot hold
their share; conflicts that leave no machine (its own, or another unit's
Conflicts naming it); a machineId fleet does not list; a stateful member
pinned to a machine that is gone (onMachineLoss wait).

PATH... plans local files (directories are read as kaylee validate reads
them) instead of a repository: give --source the git source they are to be
compared with (its inventory: what it would prune, which units it owns).

fleet is read as the scheduler reads it: its registry in etcd (--fleet-prefix)
or, with --fleet-endpoint, fleetd's HTTP API.

Exit status, as kaylee sync --once's: 0 all well; 1 some file failed or some
unit can run on no machine; 2 the repository, etcd or fleet could not be read;
3 a safety rule would refuse the pass; 4 the setup is wrong (a flag, the
config file). A change freeze fails no plan: the changes it holds are
planned and placed, each saying what holds it. -o json prints one object (an array with --config): source,
revision, units[] (name, file, change, diff, machines, match, live, notes,
error {file, line, field, message}), errors[] and warnings[].`,
		Example: `  kaylee plan --repo . --path units
  kaylee plan --repo https://git.example.com/ops/units.git --ref "$CI_COMMIT_SHA" --path prod -o json
  kaylee plan --source main units/`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(f.output); err != nil {
				return setupError{err}
			}
			return a.planOnce(cmd, &f.g, &f.sched, f.output, args)
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// planFlags are kaylee plan's: a source's, and how fleet is reached.
type planFlags struct {
	g      gitFlags
	sched  schedulerFlags
	output string
}

func (f *planFlags) register(fl *pflag.FlagSet) {
	f.g.register(fl)
	registerFleetAccess(fl, &f.sched)
	fl.StringVarP(&f.output, "output", "o", "text", "text or json")
}

// registerFleetAccess registers the flags that say how fleet is read.
func registerFleetAccess(fl *pflag.FlagSet, f *schedulerFlags) {
	fl.StringVar(&f.fleetPrefix, "fleet-prefix", fleet.DefaultKeyPrefix, "fleet's key prefix in etcd (registry access)")
	fl.StringVar(&f.fleetEndpoint, "fleet-endpoint", "", "fleet's HTTP API instead of its registry: unix:///var/run/fleet.sock or http://host:port")
	fl.StringVar(&f.unitPrefix, "unit-prefix", deploy.DefaultUnitPrefix, "prefix of the fleet units Kaylee owns (the scheduler's --unit-prefix)")
}

// planOnce makes a dry pass of each source (paths: local files instead)
// and places its units on fleet as it is.
func (a *app) planOnce(cmd *cobra.Command, g *gitFlags, sched *schedulerFlags, output string, paths []string) error {
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	sources, named, err := a.planSources(cmd, g, paths)
	if err != nil {
		return setupError{err}
	}
	s, done, err := a.openStore(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "kaylee: %v; nothing was planned\n", err)
		return exitError{code: exitUnreachable}
	}
	defer done()
	cluster, err := a.readCluster(sched)
	if err != nil {
		fmt.Fprintf(stderr, "kaylee: cannot read fleet: %v; nothing was planned\n", err)
		return exitError{code: exitUnreachable}
	}
	code := 0
	var plans []*sourcePlan
	for _, src := range sources {
		src.Options.DryRun, src.Options.OneOff = true, true
		l := &sync.Loop{Fetcher: src.Fetcher, Store: s, Options: src.Options, Timeout: src.Timeout, ID: "plan " + agent.NewID()}
		rep := l.Pass(ctx, store.Fence{})
		c := planExit(rep)
		if rep.Err != nil {
			prefix := "kaylee: "
			if named {
				prefix = "kaylee: source " + src.Options.Source + ": "
			}
			fmt.Fprintf(stderr, "%s%s\n", prefix, onceFailure(src, rep, named))
			code = max(code, c)
			continue
		}
		sp := newSourcePlan(rep.Result, cluster)
		if sp.unschedulable() > 0 {
			c = max(c, exitUnschedulable)
		}
		code = max(code, c)
		plans = append(plans, sp)
		if output != "json" {
			sp.write(cmd.OutOrStdout(), named)
		}
		sp.writeErrors(stderr)
	}
	if output == "json" {
		var v any = plans
		if !named && len(plans) == 1 {
			v = plans[0]
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

// planExit is kaylee plan's status for a dry pass: sync --once's, but a
// freeze fails no plan: a pull request may merge while the cluster is
// frozen, and its plan says what the end of the freeze applies (each
// change held says so).
func planExit(rep sync.Report) int {
	if rep.Outcome() != store.AttemptFrozen {
		return onceExit(rep.Outcome())
	}
	if len(rep.Result.Errors) > 0 {
		return exitFileErrors
	}
	return 0
}

// planSources are the sources kaylee plan plans: --config's (those named
// in args), the flags' one, or local files (args) compared with --source.
func (a *app) planSources(cmd *cobra.Command, g *gitFlags, args []string) (sources []agent.Source, named bool, err error) {
	if g.configFile == "" && g.repo == "" && len(args) > 0 {
		if cmd.Flags().Changed("ref") || cmd.Flags().Changed("path") {
			return nil, false, errors.New("--ref and --path go with --repo; local files are given as PATH... alone")
		}
		return []agent.Source{{Fetcher: localFiles(args), Options: sync.Options{Source: g.sourceName, MaxPrune: sync.DefaultMaxPrune, Force: g.force, AllowEmpty: g.allowEmpty}}}, false, nil
	}
	cf, err := loadConfig(g.configFile, cmd.Flags())
	if err != nil {
		return nil, false, err
	}
	if len(args) > 0 && cf == nil {
		return nil, false, fmt.Errorf("give --repo or PATH..., not both")
	}
	if sources, err = a.openSources(g, cf, time.Minute); err != nil {
		return nil, false, err
	}
	sources, err = pickSources(sources, args)
	return sources, cf != nil, err
}

// localFiles fetches unit files from local paths, read as kaylee validate
// reads them.
type localFiles []string

func (l localFiles) Fetch(ctx context.Context) (*gitsource.Snapshot, error) {
	files, err := localtree.Read(ctx, l)
	if err != nil {
		return nil, err
	}
	snap := &gitsource.Snapshot{Revision: "local"}
	for _, f := range files {
		if f.Err != nil {
			snap.Errors = append(snap.Errors, &gitsource.FileError{Path: f.Path, Err: f.Err.Err})
			continue
		}
		snap.Files = append(snap.Files, gitsource.File{Path: f.Path, Data: f.Data})
	}
	// The recipients of the secrets, found as kaylee validate finds them.
	rf, err := recipientsFile("", l)
	if err != nil || rf == "" {
		return snap, err
	}
	rfiles, err := localtree.Read(ctx, []string{rf})
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, err
	case err != nil:
		snap.Errors = append(snap.Errors, &gitsource.FileError{Path: rf, Err: err})
	case rfiles[0].Err != nil:
		snap.Errors = append(snap.Errors, &gitsource.FileError{Path: rf, Err: rfiles[0].Err.Err})
	default:
		snap.Recipients = &gitsource.File{Path: rf, Data: rfiles[0].Data}
	}
	return snap, nil
}

// readCluster lists fleet's machines, units and unit states, as the
// scheduler reads them (read only).
func (a *app) readCluster(sched *schedulerFlags) (*fleet.Cluster, error) {
	api, err := a.fleetAPI(sched)
	if err != nil {
		return nil, err
	}
	c := &fleet.Cluster{UnitPrefix: sched.unitPrefix}
	if c.Machines, err = api.Machines(); err != nil {
		return nil, fmt.Errorf("listing machines: %w", err)
	}
	if c.Units, err = api.Units(); err != nil {
		return nil, fmt.Errorf("listing units: %w", err)
	}
	if c.States, err = api.UnitStates(); err != nil {
		return nil, fmt.Errorf("listing unit states: %w", err)
	}
	return c, nil
}
