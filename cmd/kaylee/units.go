package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/view"
)

// openStore connects to etcd with the global flags.
func (a *app) openStore(ctx context.Context) (*store.Store, func(), error) {
	c, err := store.Dial(ctx, a.dialConfig())
	if err != nil {
		return nil, nil, a.etcdHint(err)
	}
	return store.New(c, a.etcd.Prefix), func() { closeClient(c) }, nil
}

// withStore runs fn with a store connected with the global flags; it is
// the body of every command that reads or writes etcd.
func (a *app) withStore(ctx context.Context, fn func(s *store.Store) error) error {
	s, done, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	defer done()
	return fn(s)
}

func (a *app) dialConfig() store.DialConfig {
	return store.DialConfig{
		Endpoints: a.etcd.Endpoints, CertFile: a.etcd.Cert, KeyFile: a.etcd.Key, CAFile: a.etcd.CA,
		Username: a.etcd.Username, Password: a.etcd.Password,
	}
}

func closeClient(c *clientv3.Client) { _ = c.Close() }

func (a *app) runCommand() *cobra.Command {
	var wait, force bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "run PATH... [--wait [--timeout 10m]] [--force]",
		Short: "Validate unit files and store their units in etcd",
		Long: `Run validates unit files and stores each unit under <etcd-prefix>/units/<name>,
creating it or replacing the unit of the same name (the file name does not
matter). Directories are read as kaylee validate reads them (recursively,
*.yaml and *.yml, symlinks only inside the directory). Nothing is stored
unless every unit in every file is valid. A unit's dependsOn may name the units
given and those stored in etcd.

A unit that a git source owns (kaylee sources) is not changed: the next sync
would put its file's version back. Commit the change instead, or pass --force.

With --wait it then follows the rollout of each unit, printing a line at each
change, and exits 0 once all run the new spec, 1 if a rollout fails or
--timeout passes (a scheduler, kaylee server or agent, must be running).`,
		Example: `  kaylee run examples/countly.yaml
  kaylee run --wait --timeout 5m examples/
  KAYLEE_ETCD_ENDPOINTS=http://10.0.0.1:2379 kaylee run units/*.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, paths []string) error {
			docs, bad, err := loadPathsWarning(cmd.Context(), cmd.ErrOrStderr(), paths, "", false)
			if err != nil {
				return err
			}
			if bad {
				fmt.Fprintln(cmd.ErrOrStderr(), "nothing stored: fix the errors above")
				return exitError{code: 1}
			}
			s, done, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			if err := checkWithSchedulerEngine(cmd.Context(), s, cmd.ErrOrStderr(), docs); err != nil {
				return err
			}
			changed, err := changedUnits(cmd.Context(), s, docs)
			if err != nil {
				return err
			}
			if err := a.refuseOwned(cmd.Context(), s, "run", changed, force); err != nil {
				return err
			}
			if err := refuseDomainClaims(cmd.Context(), s, docs); err != nil {
				return err
			}
			if err := refuseStoredDependsOn(cmd.Context(), s, cmd.ErrOrStderr(), docs); err != nil {
				return err
			}
			for _, d := range docs {
				sp := &d.Spec
				changed, err := s.PutUnit(cmd.Context(), sp, store.Fence{})
				if err != nil {
					return err
				}
				verb := "unchanged"
				if changed {
					verb = "stored"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", sp.Name, verb)
			}
			if !wait {
				return nil
			}
			restarts, err := s.RestartCounters(cmd.Context())
			if err != nil {
				return err
			}
			wants := func(defaultEngine string) map[string]view.Want {
				want := map[string]view.Want{}
				for _, d := range docs {
					want[d.Spec.Name] = view.WantOf(&d.Spec, restarts[d.Spec.Name], defaultEngine)
				}
				return want
			}
			return waitRollouts(cmd.Context(), s, cmd.OutOrStdout(), wants, timeout)
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the rollouts until they finish or fail")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "with --wait: give up after this long")
	cmd.Flags().BoolVar(&force, "force", false, "change units a git source owns (until its next sync puts them back)")
	return cmd
}

// checkWithSchedulerEngine prints the units' warnings and validates the
// units that name no engine as the scheduler runs them, with the default
// engine its leader published: one it would refuse is printed and
// nothing is stored.
func checkWithSchedulerEngine(ctx context.Context, s *store.Store, w io.Writer, docs []*deploy.Document) error {
	settings, err := s.GetSchedulerSettings(ctx)
	if err != nil {
		return err
	}
	bad := false
	for _, d := range docs {
		printWarnings(w, d, settings.DefaultEngine)
		if defaultEngineErrors(w, d, settings.DefaultEngine, "the scheduler's default engine") != nil {
			bad = true
		}
	}
	if bad {
		fmt.Fprintln(w, "nothing stored: fix the errors above")
		return exitError{code: 1}
	}
	return nil
}

// refuseDomainClaims refuses a run whose units claim a domain that a
// stored unit not among them holds (view.DomainClaimErrors). Nothing has
// been written when it refuses; --force does not change it.
func refuseDomainClaims(ctx context.Context, s *store.Store, docs []*deploy.Document) error {
	units, _, err := s.ListUnits(ctx)
	if err != nil {
		return err
	}
	records, err := s.ListSyncRecords(ctx)
	if err != nil {
		return err
	}
	specs := make([]*deploy.Spec, len(docs))
	for i, d := range docs {
		specs[i] = &d.Spec
	}
	if errs := view.DomainClaimErrors(specs, units, records); len(errs) > 0 {
		return fmt.Errorf("%w; nothing was changed", errors.Join(errs...))
	}
	return nil
}

// changedUnits names the units of docs whose stored version differs (or
// is missing): those run would write. One read of the units.
func changedUnits(ctx context.Context, s *store.Store, docs []*deploy.Document) ([]string, error) {
	units, _, err := s.ListUnits(ctx)
	if err != nil {
		return nil, err
	}
	stored := make(map[string]string, len(units))
	for _, u := range units {
		stored[u.Name] = string(u.Raw)
	}
	var out []string
	for _, d := range docs {
		if raw, ok := stored[d.Spec.Name]; !ok || raw != string(d.Spec.CanonicalJSON()) {
			out = append(out, d.Spec.Name)
		}
	}
	return out, nil
}

func (a *app) lsCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "ls [-o text|json]",
		Short: "List unit names",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			s, done, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			units, _, err := s.ListUnits(cmd.Context())
			if err != nil {
				return err
			}
			names := make([]string, 0, len(units))
			for _, u := range units {
				names = append(names, u.Name)
				if u.Err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", u.Err)
				}
				for _, w := range u.Warnings {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
				}
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), names)
			}
			for _, n := range names {
				fmt.Fprintln(cmd.OutOrStdout(), n)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func (a *app) rmCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm NAME... [--force]",
		Short: "Remove units (the scheduler destroys their fleet units)",
		Long: `Rm removes units from etcd; the scheduler stops and destroys their fleet units.

A unit that a git source owns (kaylee sources) is not removed: its replicas
would stop and the next sync would create it again. Delete its file in git
instead (the sync prunes it), or pass --force.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, names []string) error {
			s, done, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			if err := a.refuseOwned(cmd.Context(), s, "rm", names, force); err != nil {
				return err
			}
			var missing []string
			for _, n := range names {
				existed, err := s.DeleteUnit(cmd.Context(), n, store.Fence{})
				if err != nil {
					return err
				}
				if !existed {
					missing = append(missing, n)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s removed\n", n)
			}
			if len(missing) > 0 {
				return fmt.Errorf("no unit named %s (see kaylee ls)", strings.Join(missing, ", "))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove units a git source owns (its next sync creates them again)")
	return cmd
}

func (a *app) restartCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "restart NAME [--force]",
		Short: "Roll every replica of a unit without changing its spec",
		Long: `Restart rolls every replica of a unit, one at a time as a rollout does, without
changing its spec. A unit that a git source owns needs --force: git owns how
it runs, so roll it with a commit.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			if err := a.refuseOwned(cmd.Context(), s, "restart", args, force); err != nil {
				return err
			}
			n, err := s.Restart(cmd.Context(), args[0], a.who())
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no unit named %q (see kaylee ls)", args[0])
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s restart %d requested\n", args[0], n)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "restart a unit a git source owns")
	return cmd
}
