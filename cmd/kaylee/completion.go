package main

import (
	"context"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kaylee-gitops/kaylee/config"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/view"
)

// completionTimeout bounds what a completion may wait for etcd: a shell
// waits for it on every TAB.
const completionTimeout = 2 * time.Second

// Which commands complete their arguments with what: by command name, so
// that a command added later gets its completion here.
var (
	// oneUnit: commands taking one unit name.
	oneUnit = []string{"status", "history", "rollback", "suspend", "resume", "restart", "endpoints", "events"}
	// manyUnits: commands taking unit names.
	manyUnits = []string{"rm"}
)

// registerCompletions adds shell completion to the command tree: unit
// names (from etcd, with the global etcd flags as given on the line being
// completed), source names (kaylee sources NAME from etcd; kaylee sync
// --config FILE NAME from the file) and the values of -o. A completion
// registered by a command itself is kept.
func (a *app) registerCompletions(root *cobra.Command) {
	walk(root, func(c *cobra.Command) {
		if c.Flags().Lookup("output") != nil {
			if _, ok := c.GetFlagCompletionFunc("output"); !ok {
				_ = c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
			}
		}
		if c.ValidArgsFunction != nil || !c.HasParent() {
			return
		}
		if c.Parent().Name() == "sources" && c.Name() == "rm" {
			c.ValidArgsFunction = a.complete(1, a.storedSourceNames)
			return
		}
		if c.Parent() != root {
			return
		}
		switch name := c.Name(); {
		case slices.Contains(oneUnit, name):
			c.ValidArgsFunction = a.complete(1, a.unitNames)
		case slices.Contains(manyUnits, name):
			c.ValidArgsFunction = a.complete(-1, a.unitNames)
		case name == "sources":
			c.ValidArgsFunction = a.complete(1, a.storedSourceNames)
		case name == "sync":
			c.ValidArgsFunction = a.complete(-1, a.configSourceNames)
		}
	})
}

// complete is a ValidArgsFunction offering the names list gives that start
// with what is typed, for up to maxArgs arguments (-1: any number, each
// name once). It never offers files, and an error offers nothing.
func (a *app) complete(maxArgs int, list func(ctx context.Context, cmd *cobra.Command) ([]string, error)) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if maxArgs >= 0 && len(args) >= maxArgs {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
		defer cancel()
		names, err := list(ctx, cmd)
		if err != nil {
			cobra.CompDebugln("kaylee: completion: "+err.Error(), false)
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, n := range names {
			if strings.HasPrefix(n, toComplete) && !slices.Contains(args, n) {
				out = append(out, n)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completionStore connects to etcd as the command line being completed
// says (flags, then KAYLEE_* as the command would bind them), quickly.
func (a *app) completionStore(ctx context.Context, cmd *cobra.Command) (*store.Store, func(), error) {
	if err := a.completionEnv(cmd); err != nil {
		return nil, nil, err
	}
	a.etcd.Password = a.getenv(envPrefix + "ETCD_PASSWORD")
	cfg := a.dialConfig()
	cfg.DialTimeout = completionTimeout / 2
	c, err := store.Dial(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return store.New(c, a.etcd.Prefix), func() { closeClient(c) }, nil
}

func (a *app) unitNames(ctx context.Context, cmd *cobra.Command) ([]string, error) {
	s, done, err := a.completionStore(ctx, cmd)
	if err != nil {
		return nil, err
	}
	defer done()
	units, _, err := s.ListUnits(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(units))
	for _, u := range units {
		names = append(names, u.Name)
	}
	return names, nil
}

func (a *app) storedSourceNames(ctx context.Context, cmd *cobra.Command) ([]string, error) {
	s, done, err := a.completionStore(ctx, cmd)
	if err != nil {
		return nil, err
	}
	defer done()
	all, err := view.Sources(ctx, s)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(all))
	for _, src := range all {
		names = append(names, src.Name)
	}
	return names, nil
}

// completionEnv sets the flags not on the line from KAYLEE_*: a
// completion runs no PersistentPreRunE.
func (a *app) completionEnv(cmd *cobra.Command) error {
	return bindEnv(cmd.Flags(), a.getenv)
}

// configSourceNames are the sources of kaylee sync --once's --config file
// (none without one, or without --once: sync takes names only then).
func (a *app) configSourceNames(_ context.Context, cmd *cobra.Command) ([]string, error) {
	if err := a.completionEnv(cmd); err != nil {
		return nil, err
	}
	f, once := cmd.Flags().Lookup("config"), cmd.Flags().Lookup("once")
	if f == nil || f.Value.String() == "" || once == nil || once.Value.String() != "true" {
		return nil, nil
	}
	data, err := os.ReadFile(f.Value.String())
	if err != nil {
		return nil, err
	}
	cf, err := config.Load(f.Value.String(), data)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(cf.Sources))
	for _, s := range cf.Sources {
		names = append(names, s.Name)
	}
	return names, nil
}
