package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	osuser "os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/view"
)

// who is user@host, recorded with a suspension or a rollback. systemd,
// cron and CI runners often set no $USER: the process's own user is
// looked up then (uid N when even that fails).
func (a *app) who() string {
	user := a.getenv("USER")
	if user == "" {
		user = a.getenv("LOGNAME")
	}
	if user == "" {
		if u, err := osuser.Current(); err == nil && u.Username != "" {
			user = u.Username
		} else {
			user = fmt.Sprintf("uid %d", os.Getuid())
		}
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		return user
	}
	return user + "@" + host
}

// noUnit turns ErrNotFound into the CLI's error for a unit name.
func noUnit(name string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no unit named %q (see kaylee ls)", name)
	}
	return err
}

func (a *app) historyCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "history NAME [-o text|json]",
		Short: "List the revisions a unit was rolled out to",
		Long: `History lists the last revisions of a unit (10 by default: kaylee server
--history) as the scheduler recorded them: revision, spec hash (the one kaylee
status shows), when it was first seen, its outcome (progressing, deployed,
failed, rolled back, superseded), and the git source, revision and file it came
from. kaylee rollback NAME --to REVISION deploys one of them again.`,
		Example: `  kaylee history countly
  kaylee history countly -o json | jq -r '.[] | select(.outcome == "deployed") | .revision'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return a.withStore(cmd.Context(), func(s *store.Store) error {
				entries, err := s.History(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if len(entries) == 0 {
					if _, err := s.GetUnit(cmd.Context(), args[0]); err != nil {
						return noUnit(args[0], err)
					}
				}
				if output == "json" {
					if entries == nil {
						entries = []*store.HistoryEntry{}
					}
					return writeJSON(cmd.OutOrStdout(), entries)
				}
				writeHistory(cmd.OutOrStdout(), entries, time.Now())
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func writeHistory(w io.Writer, entries []*store.HistoryEntry, now time.Time) {
	if len(entries) == 0 {
		fmt.Fprintln(w, "no revisions recorded yet: the scheduler (kaylee server or agent) records each spec it rolls out")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REVISION\tSPEC\tAGE\tOUTCOME\tSOURCE\tNOTE")
	for _, e := range entries {
		source := "-"
		if e.Source != "" {
			source = e.Source
			if len(e.GitRevision) >= 7 {
				source += "@" + e.GitRevision[:7]
			}
			if e.File != "" {
				source += " " + e.File
			}
		}
		var notes []string
		if e.Change != "" {
			notes = append(notes, e.Change+": no replica replaced")
		}
		if e.RollbackTo != 0 {
			notes = append(notes, fmt.Sprintf("rollback to %d", e.RollbackTo))
		}
		if e.Restart != 0 {
			notes = append(notes, fmt.Sprintf("restart %d", e.Restart))
		}
		if e.Engine != "" {
			notes = append(notes, "engine "+e.Engine+" (not named in the spec)")
		}
		if e.Message != "" {
			msg := e.Message
			if len(msg) > 100 {
				msg = msg[:100] + "…"
			}
			notes = append(notes, msg)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Revision, e.SpecHash, age(e.Time, now), e.Outcome, source, orDash(strings.Join(notes, "; ")))
	}
	tw.Flush()
}

func (a *app) rollbackCommand() *cobra.Command {
	var (
		to      string
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rollback NAME [--to REVISION] [--wait]",
		Short: "Deploy an earlier revision of a unit at once",
		Long: `Rollback stores an earlier revision of a unit from its history (kaylee history
NAME), by default the newest one that was deployed and differs from what is
stored now, and the scheduler rolls it out like any new spec.

A unit that a git source owns stays rolled back: sync does not overwrite it
(it reports it as "kept") until the unit's file changes in git again, or until
kaylee resume NAME.`,
		Example: `  kaylee rollback countly
  kaylee rollback countly --to 3 --wait`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(cmd.Context(), func(s *store.Store) error {
				e, err := s.Rollback(cmd.Context(), args[0], to, a.who())
				if err != nil {
					if errors.Is(err, store.ErrNoRevision) {
						return fmt.Errorf("%w (see kaylee history %s)", err, args[0])
					}
					return noUnit(args[0], err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s rolled back to revision %d (spec %s); sync keeps it so until its file changes in git or kaylee resume %s\n",
					args[0], e.Revision, e.SpecHash, args[0])
				if !wait {
					return nil
				}
				// The scheduler runs the restored spec with the engine it
				// ran with (the rollback pin's), whatever its default.
				return waitRestored(cmd.Context(), s, cmd.OutOrStdout(), args[0], cmp.Or(e.Engine, deploy.EngineRkt), timeout)
			})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the revision (number or spec hash, see kaylee history) to roll back to; default the one deployed before the current one")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the rollout until it finishes or fails")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "with --wait: give up after this long")
	return cmd
}

// waitRestored follows the rollout of the unit as now stored, run with
// engine if it names none.
func waitRestored(ctx context.Context, s *store.Store, w io.Writer, name, engine string, timeout time.Duration) error {
	u, err := s.GetUnit(ctx, name)
	if err != nil {
		return noUnit(name, err)
	}
	restarts, err := s.RestartCounters(ctx)
	if err != nil {
		return err
	}
	want := map[string]view.Want{name: view.WantOf(&u.Spec, restarts[name], engine)}
	return waitRollouts(ctx, s, w, func(string) map[string]view.Want { return want }, timeout)
}

func (a *app) suspendCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "suspend NAME",
		Short: "Stop the scheduler from changing a unit",
		Long: `Suspend holds a unit as it is: the scheduler changes none of its fleet units
(a replica that fails or is destroyed by hand is not repaired either) until
kaylee resume NAME. A spec stored meanwhile (kaylee run, sync) is kept and
rolled out on resume; kaylee status shows the unit as suspended.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(cmd.Context(), func(s *store.Store) error {
				fresh, err := s.Suspend(cmd.Context(), args[0], a.who())
				switch {
				case err != nil:
					return noUnit(args[0], err)
				case fresh:
					fmt.Fprintf(cmd.OutOrStdout(), "%s suspended: the scheduler leaves it as it is until kaylee resume %s\n", args[0], args[0])
				default:
					fmt.Fprintf(cmd.OutOrStdout(), "%s was suspended already\n", args[0])
				}
				return nil
			})
		},
	}
}

func (a *app) resumeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "resume NAME",
		Short: "Let the scheduler and sync handle a suspended or rolled-back unit again",
		Long: `Resume ends a unit's suspension (kaylee suspend) and its rollback (kaylee
rollback): the scheduler rolls out what is stored, and the unit's git source
writes what git has at its next pass.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(cmd.Context(), func(s *store.Store) error {
				suspended, pinned, err := s.Resume(cmd.Context(), args[0], a.who())
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				switch {
				case !suspended && !pinned:
					if _, err := s.GetUnit(cmd.Context(), args[0]); err != nil {
						return noUnit(args[0], err)
					}
					fmt.Fprintf(w, "%s was neither suspended nor rolled back: nothing to do\n", args[0])
				case suspended && pinned:
					fmt.Fprintf(w, "%s resumed, and its rollback ended: sync writes what git has at its next pass\n", args[0])
				case suspended:
					fmt.Fprintf(w, "%s resumed: the scheduler rolls out what is stored\n", args[0])
				default:
					fmt.Fprintf(w, "%s: rollback ended: sync writes what git has at its next pass\n", args[0])
				}
				return nil
			})
		},
	}
}
