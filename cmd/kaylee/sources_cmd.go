package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/view"
)

func (a *app) sourcesCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "sources [NAME] [-o text|json]",
		Short: "Show each git source: revision applied, last sync and its result, units, file errors",
		Long: `Sources shows every git source that syncs into this etcd prefix (from kaylee
agent, kaylee sync, or a --config file): its repository and ref, the revision
it last applied and when, its last attempt with the result (synced,
file-errors, refused, unverified, failed, suspended) and how long ago, the
units it owns, and the files that failed at the revision applied (their units
run their last good version). With NAME, one source in full.`,
		Example: `  kaylee sources
  kaylee sources team-a
  kaylee sources -o json | jq -r '.[] | select(.lastAttempt.result != "synced") | .name'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return a.withStore(cmd.Context(), func(s *store.Store) error {
				all, err := view.Sources(cmd.Context(), s)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if len(args) == 0 {
					if output == "json" {
						return writeJSON(w, all)
					}
					if len(all) == 0 {
						fmt.Fprintln(w, "no git source has synced into this etcd prefix yet (kaylee agent or kaylee sync --repo URL)")
						return nil
					}
					writeSources(w, all, time.Now())
					return nil
				}
				for _, src := range all {
					if src.Name == args[0] {
						if output == "json" {
							return writeJSON(w, src)
						}
						writeSource(w, src, time.Now())
						return nil
					}
				}
				var names []string
				for _, src := range all {
					names = append(names, src.Name)
				}
				return fmt.Errorf("no git source named %q (known: %s)", args[0], orDash(strings.Join(names, ", ")))
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.AddCommand(a.sourcesRmCommand())
	return cmd
}

func shortRev(rev string) string {
	if len(rev) > 7 {
		return rev[:7]
	}
	return orDash(rev)
}

// lastAttempt is "synced 12s ago", "never".
func lastAttempt(a *store.SyncAttempt, now time.Time) string {
	if a == nil {
		return "never"
	}
	return a.Result + " " + age(a.Time, now) + " ago"
}

func writeSources(w io.Writer, all []view.Source, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tREPO\tREF\tAPPLIED\tLAST ATTEMPT\tUNITS\tERRORS\tLEADER")
	for _, s := range all {
		applied := shortRev(s.Revision)
		if !s.Applied.IsZero() && s.Revision != "" {
			applied += " (" + age(s.Applied, now) + " ago)"
		}
		repo := s.Repo
		if s.Path != "" {
			repo += " //" + s.Path
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", s.Name, orDash(repo), orDash(s.Ref), applied, lastAttempt(s.Attempt, now), len(s.Units), len(s.Errors), orDash(s.Leader))
	}
	tw.Flush()
	for _, s := range all {
		if a := s.Attempt; a != nil && a.Message != "" && a.Result != store.AttemptSynced {
			fmt.Fprintf(w, "%s: %s\n", s.Name, a.Message)
		}
		for _, l := range frozenLines(s) {
			fmt.Fprintf(w, "%s: %s\n", s.Name, l)
		}
	}
}

func writeSource(w io.Writer, s view.Source, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Source:\t%s\n", s.Name)
	fmt.Fprintf(tw, "Repository:\t%s\n", orDash(s.Repo))
	fmt.Fprintf(tw, "Path:\t%s\n", orDash(s.Path))
	fmt.Fprintf(tw, "Ref:\t%s\n", orDash(s.Ref))
	if s.Revision != "" {
		fmt.Fprintf(tw, "Applied:\t%s, %s ago\n", s.Revision, age(s.Applied, now))
	} else {
		fmt.Fprintf(tw, "Applied:\tnothing yet\n")
	}
	if a := s.Attempt; a != nil {
		fmt.Fprintf(tw, "Last attempt:\t%s, %s ago, took %.1fs, by %s\n", a.Result, age(a.Time, now), a.Took, orDash(a.Leader))
		if a.Revision != "" && a.Revision != s.Revision {
			fmt.Fprintf(tw, "Fetched:\t%s (not applied)\n", a.Revision)
		}
		if a.Message != "" {
			fmt.Fprintf(tw, "Message:\t%s\n", a.Message)
		}
	} else {
		fmt.Fprintf(tw, "Last attempt:\tnever\n")
	}
	fmt.Fprintf(tw, "Suspended:\t%v\n", s.Suspended)
	for _, l := range frozenLines(s) {
		fmt.Fprintf(tw, "Frozen:\t%s\n", l)
	}
	fmt.Fprintf(tw, "Leader:\t%s\n", orDash(s.Leader))
	fmt.Fprintf(tw, "Units:\t%s\n", orDash(strings.Join(s.Units, " ")))
	for u, rev := range s.RolledBack {
		fmt.Fprintf(tw, "Rolled back:\t%s at revision %d (kaylee resume %s follows git again)\n", u, rev, u)
	}
	tw.Flush()
	if len(s.Errors) > 0 {
		fmt.Fprintf(w, "\nFile errors at %s (their units run their last good version):\n", shortRev(s.Revision))
		for _, e := range s.Errors {
			fmt.Fprintf(w, "  %s\n", e.String())
		}
	}
}

func (a *app) sourcesRmCommand() *cobra.Command {
	var keepUnits bool
	cmd := &cobra.Command{
		Use:   "rm NAME",
		Short: "Forget a git source no process follows any more (its record, last attempt and trigger)",
		Long: `Sources rm removes what a git source leaves in etcd once no process follows
it (a renamed source, a CI workspace's old name): its record, its last attempt
and its webhook trigger. It refuses while a process leads the source's sync,
and while the source owns units: delete their files in git and let it sync, or
remove them with kaylee rm, first; or pass --keep-units to keep them with no
git source to prune them (as if stored with kaylee run). Units are never
removed by it.`,
		Example: `  kaylee sources rm ci-repo-prod
  kaylee sources rm old-name --keep-units`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(cmd.Context(), func(s *store.Store) error {
				err := s.DeleteSource(cmd.Context(), args[0], keepUnits)
				var inUse *store.SourceInUseError
				switch {
				case errors.As(err, &inUse) && inUse.Leader == "":
					return fmt.Errorf("%w; or pass --keep-units; nothing was changed", err)
				case errors.Is(err, store.ErrNotFound):
					return fmt.Errorf("no git source named %q (see kaylee sources)", args[0])
				case err != nil:
					return fmt.Errorf("%w; nothing was changed", err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "source %s removed\n", args[0])
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&keepUnits, "keep-units", false, "remove the record of a source that still owns units, keeping the units (no git source prunes them then)")
	return cmd
}
