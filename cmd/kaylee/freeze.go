package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/view"
)

// freezeFlags are kaylee freeze's and unfreeze's flags.
type freezeFlags struct {
	until, reason, output string
	source, unit          bool
}

func (a *app) freezeCommand() *cobra.Command {
	var f freezeFlags
	cmd := &cobra.Command{
		Use:   "freeze [SOURCE|NAME] [--until TIME] [--reason TEXT]",
		Short: "Hold the changes git brings to a source or a unit; without argument, list the freezes that hold",
		Long: `Freeze sets a manual change freeze on a git source or a unit: while it holds,
sync fetches and validates each new revision and records it (kaylee sources,
the dashboard, a frozen event and notification) but writes nothing to
<etcd-prefix>/units/ for the source (or only that unit). The scheduler goes on:
drift repair and machine-loss recovery still run. It holds until --until (a
time in RFC 3339, or a duration such as 2h) or kaylee unfreeze; then the next
pass applies what git has. kaylee sync --now --force SOURCE applies once
through a freeze, told as a freeze-overridden event naming who.

Freeze windows (freeze: on a source in the config file, or in a unit file) hold
the same way on a schedule; see kaylee help config.

Without argument it lists every freeze that holds now, manual or window.`,
		Example: `  kaylee freeze team-a --until 2h --reason "release 4.2"
  kaylee freeze web --until 2026-12-24T18:00:00+01:00
  kaylee freeze
  kaylee unfreeze team-a`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(f.output); err != nil {
				return err
			}
			return a.withStore(cmd.Context(), func(s *store.Store) error {
				if len(args) == 0 {
					return listFreezes(cmd.Context(), cmd.OutOrStdout(), s, f.output)
				}
				return a.setFreeze(cmd, s, args[0], &f)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.until, "until", "", "end of the freeze: a time (RFC 3339) or a duration from now (2h); default: until kaylee unfreeze")
	fl.StringVar(&f.reason, "reason", "", "why, told with the freeze")
	fl.BoolVar(&f.source, "source", false, "the name is a git source's (when a unit has it too)")
	fl.BoolVar(&f.unit, "unit", false, "the name is a unit's (when a source has it too)")
	fl.StringVarP(&f.output, "output", "o", "text", "without argument: text or json")
	return cmd
}

func (a *app) unfreezeCommand() *cobra.Command {
	var f freezeFlags
	cmd := &cobra.Command{
		Use:   "unfreeze SOURCE|NAME",
		Short: "End a manual freeze (kaylee freeze)",
		Long: `Unfreeze ends the manual freeze of a git source or a unit and asks the
process that syncs its source for a pass at once (as kaylee sync --now), which
applies what git has. Freeze windows are ended in the file that sets them.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(cmd.Context(), func(s *store.Store) error {
				kind, err := freezeTarget(cmd.Context(), s, args[0], &f)
				if err != nil {
					return err
				}
				ok, err := s.DeleteFreeze(cmd.Context(), kind, args[0], a.who())
				switch {
				case err != nil:
					return err
				case !ok:
					fmt.Fprintf(cmd.OutOrStdout(), "%s %s had no manual freeze: nothing to do (kaylee freeze lists the freezes that hold)\n", kind, args[0])
				default:
					fmt.Fprintf(cmd.OutOrStdout(), "%s %s unfrozen: its next sync pass applies what git has\n", kind, args[0])
					triggerOwner(cmd.Context(), s, kind, args[0])
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&f.source, "source", false, "the name is a git source's (when a unit has it too)")
	cmd.Flags().BoolVar(&f.unit, "unit", false, "the name is a unit's (when a source has it too)")
	return cmd
}

// freezeTarget resolves a name to a source or a unit of the store.
func freezeTarget(ctx context.Context, s *store.Store, name string, f *freezeFlags) (string, error) {
	kind := ""
	switch {
	case f.source && f.unit:
		return "", errors.New("--source and --unit: give one")
	case f.source:
		kind = store.FreezeSource
	case f.unit:
		kind = store.FreezeUnit
	}
	records, err := s.ListSyncRecords(ctx)
	if err != nil {
		return "", err
	}
	units, _, err := s.ListUnits(ctx)
	if err != nil {
		return "", err
	}
	unitNames := make([]string, 0, len(units))
	for _, u := range units {
		unitNames = append(unitNames, u.Name)
	}
	kind, err = view.FreezeTarget(name, kind, slices.Collect(maps.Keys(records)), unitNames)
	if errors.Is(err, view.ErrAmbiguousFreeze) {
		return "", fmt.Errorf("%w: --source or --unit", err)
	}
	return kind, err
}

func (a *app) setFreeze(cmd *cobra.Command, s *store.Store, name string, f *freezeFlags) error {
	now := time.Now()
	until, err := view.ParseUntil(f.until, now)
	if err != nil {
		return fmt.Errorf("--until %w", err)
	}
	kind, err := freezeTarget(cmd.Context(), s, name, f)
	if err != nil {
		return err
	}
	if err := s.PutFreeze(cmd.Context(), &store.ManualFreeze{Kind: kind, Name: name, Until: until, Reason: f.reason, By: a.who(), Time: now.UTC()}); err != nil {
		return err
	}
	end := "until kaylee unfreeze " + name
	if !until.IsZero() {
		end = "until " + until.Format(time.RFC3339)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s %s frozen %s: sync records new revisions and applies none; the scheduler still repairs drift\n", kind, name, end)
	return nil
}

// listFreezes prints the freezes that hold now.
func listFreezes(ctx context.Context, w io.Writer, s *store.Store, output string) error {
	records, err := s.ListSyncRecords(ctx)
	if err != nil {
		return err
	}
	units, _, err := s.ListUnits(ctx)
	if err != nil {
		return err
	}
	manual, err := s.ListFreezes(ctx)
	if err != nil {
		return err
	}
	fs := view.ActiveFreezes(records, units, manual, time.Now())
	if output == "json" {
		if fs == nil {
			fs = []view.Freeze{}
		}
		return writeJSON(w, fs)
	}
	if len(fs) == 0 {
		fmt.Fprintln(w, "no freeze holds")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAME\tORIGIN\tUNTIL\tREASON\tHELD")
	for _, z := range fs {
		until := "unfreeze"
		if !z.Until.IsZero() {
			until = z.Until.UTC().Format(time.RFC3339)
		}
		reason := z.Reason
		if z.Origin == "window" {
			reason = z.Window
		} else if z.By != "" {
			reason = fmt.Sprintf("%s (by %s)", reason, z.By)
		}
		held := "-"
		if z.Held != "" {
			held = z.Held[:min(7, len(z.Held))]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", z.Kind, z.Name, z.Origin, until, reason, held)
	}
	return tw.Flush()
}

// frozenLines tell what change freezes hold of a source, for kaylee
// sources: its revision held, and each unit held.
func frozenLines(s view.Source) []string {
	var out []string
	end := func(f *store.FrozenRevision) string {
		if f.Until.IsZero() {
			return "until kaylee unfreeze"
		}
		return "until " + f.Until.UTC().Format(time.RFC3339)
	}
	if f := s.Frozen; f != nil {
		out = append(out, fmt.Sprintf("revision %s held %s (%s), since %s; nothing applied", shortRev(f.Revision), end(f), f.Reason, f.Since.UTC().Format(time.RFC3339)))
	}
	for _, u := range slices.Sorted(maps.Keys(s.FrozenUnits)) {
		f := s.FrozenUnits[u]
		out = append(out, fmt.Sprintf("unit %s: its change at %s held %s (%s)", u, shortRev(f.Revision), end(f), f.Reason))
	}
	return out
}

// triggerOwner asks for a pass of the source of what was unfrozen at
// once (as kaylee sync --now does), so that the changes held apply now;
// best effort: the loop's interval does it anyway.
func triggerOwner(ctx context.Context, s *store.Store, kind, name string) {
	source := name
	if kind == store.FreezeUnit {
		source = ""
		records, err := s.ListSyncRecords(ctx)
		if err != nil {
			return
		}
		for src, r := range records {
			if _, ok := r.Inventory[name]; ok {
				source = src
			}
		}
	}
	if source != "" {
		_ = s.Trigger(ctx, source, "")
	}
}
