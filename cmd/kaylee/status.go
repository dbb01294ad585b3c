package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/view"
)

func (a *app) statusCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status [NAME] [-o text|json]",
		Short: "Show what the scheduler reports for units",
		Long: `Status shows the scheduler's view of units: phase (pending, progressing,
running, failed, deleting, suspended; rolled back for a unit kaylee rollback
holds at an earlier revision; left-alone for fleet units monder/kaylee created
for a name that is not stored: the scheduler never touches them, kaylee migrate
--remove-original removes them), running replicas of the current spec and desired
ones, the replicas that serve (old ones too, during a rollout), the spec hash,
and a message. With NAME it also lists the unit's fleet units with their machines
and systemd states.`,
		Example: `  kaylee status
  kaylee status countly
  kaylee status countly -o json | jq -r '.units[] | .machineIP'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			s, done, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			w := cmd.OutOrStdout()
			if len(args) == 1 {
				v, err := view.UnitOf(cmd.Context(), s, args[0])
				if err != nil {
					return noUnit(args[0], err)
				}
				if output == "json" {
					return writeJSON(w, v)
				}
				writeStatus(w, v, time.Now())
				return nil
			}
			v, err := view.Units(cmd.Context(), s)
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(w, v)
			}
			writeStatusTable(w, v, time.Now())
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// unitStatus is a unit's status, pending when no scheduler has seen it yet.
func unitStatus(ctx context.Context, s *store.Store, name string) (*store.Status, error) {
	st, err := view.StatusOf(ctx, s, name)
	return st, noUnit(name, err)
}

func writeStatusTable(w io.Writer, all []view.Unit, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPHASE\tRUNNING\tSERVING\tSPEC\tSOURCE\tAGE\tMESSAGE")
	failing := 0
	for _, st := range all {
		if len(st.GitErrors) > 0 {
			failing++
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%s\t%s\t%s\t%s\n", st.Name, st.State, st.Running, st.Desired, st.ServingReplicas(),
			orDash(st.SpecHash), st.GitMark(), age(st.Time, now), viewMessage(st))
	}
	tw.Flush()
	if failing > 0 {
		fmt.Fprintf(w, "\n%d unit(s) marked ! have a file that fails in git: see kaylee sources\n", failing)
	}
}

// viewMessage is the message tables show: what holds the unit (a
// rollback, a suspension), its file's error in git, then the scheduler's
// message.
func viewMessage(v view.Unit) string {
	msg := statusMessage(v)
	if len(v.GitErrors) > 0 {
		msg = "its file fails in git (" + v.GitErrors[0] + "); it runs its last good version. " + msg
	}
	if v.StateNote != "" {
		msg = v.StateNote + ". " + msg
	}
	return msg
}

// statusMessage is the scheduler's message with what a person can do
// about it, in the CLI's words (library messages name no command or
// flag): the original's units of a name not stored are removed by kaylee
// migrate (not those a refused unit holds: it never removes them).
func statusMessage(v view.Unit) string {
	if v.Phase == store.PhaseLeftAlone && v.HeldBy == "" && v.Message != "" {
		return v.Message + "; kaylee migrate --remove-original removes them"
	}
	return v.Message
}

func writeStatus(w io.Writer, st view.Unit, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Name:\t%s\n", st.Name)
	if st.Source != "" {
		fmt.Fprintf(tw, "Source:\t%s (%s at %s)\n", st.Source, st.File, shortRev(st.Revision))
	}
	for _, e := range st.GitErrors {
		fmt.Fprintf(tw, "Git error:\t%s (the unit runs its last good version)\n", e)
	}
	if st.State != st.Phase {
		fmt.Fprintf(tw, "Phase:\t%s (the scheduler: %s)\n", st.State, st.Phase)
	} else {
		fmt.Fprintf(tw, "Phase:\t%s\n", st.Phase)
	}
	if st.StateNote != "" {
		fmt.Fprintf(tw, "Note:\t%s\n", st.StateNote)
	}
	fmt.Fprintf(tw, "Replicas:\t%d running, %d serving, %d desired\n", st.Running, st.ServingReplicas(), st.Desired)
	fmt.Fprintf(tw, "Spec:\t%s (deployed: %s)\n", orDash(st.SpecHash), orDash(st.Deployed))
	if st.Engine != "" {
		fmt.Fprintf(tw, "Engine:\t%s (the spec names none: the scheduler's default engine, or a rollback's)\n", st.Engine)
	}
	if len(st.DependsOn) > 0 {
		fmt.Fprintf(tw, "Depends on:\t%s\n", dependsLine(st.Status))
	}
	fmt.Fprintf(tw, "Message:\t%s\n", statusMessage(st))
	fmt.Fprintf(tw, "Updated:\t%s ago\n", age(st.Time, now))
	tw.Flush()
	writeEvidence(w, st.Evidence, now)
	if len(st.Units) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FLEET UNIT\tMACHINE\tIP\tSTATE")
	for _, u := range st.Units {
		state := "-"
		if u.ActiveState != "" {
			state = u.ActiveState + "/" + u.SubState
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, orDash(u.MachineID), orDash(u.MachineIP), state)
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func age(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// waitFallback is how often waitRollouts reads the statuses again
// whatever its watch says (a safety net: the watch tells each change).
const waitFallback = 30 * time.Second

// wantsFunc gives what waitRollouts waits for, by unit, on a cluster
// whose scheduler runs the units that name no engine with defaultEngine.
type wantsFunc func(defaultEngine string) map[string]view.Want

// waitRollouts follows the statuses of units until each runs the spec
// hash wants gives (nil) or one fails (an error naming it). It prints a
// line each time a unit's status changes. It reads the statuses, the
// suspensions and the scheduler's settings once, then follows their
// changes with a watch from that read's revision (a scheduler that starts
// after the waiter, or another leader, may run units with another default
// engine); it reads them again when the watch breaks (etcd compacted past
// it, or went away), and every waitFallback.
func waitRollouts(ctx context.Context, s *store.Store, w io.Writer, wants wantsFunc, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	names := make([]string, 0)
	for n := range wants("") {
		names = append(names, n)
	}
	sort.Strings(names)
	c := &rolloutCheck{w: w, wants: wants, names: names, last: map[string]string{}}
	for {
		st, err := s.ReadRolloutState(ctx)
		if err != nil && ctx.Err() == nil {
			return err
		}
		if err == nil && !c.check(st) {
			fctx, fcancel := context.WithTimeout(ctx, waitFallback)
			if err := s.FollowRolloutState(fctx, st, c.check); err != nil && fctx.Err() == nil {
				// The watch broke: read again in a moment.
				select {
				case <-ctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
			}
			fcancel()
		}
		switch {
		case c.done:
			return c.err
		case ctx.Err() != nil && len(c.failed) > 0:
			return rolloutFailed(c.failed)
		case ctx.Err() != nil:
			return fmt.Errorf("%d unit(s) not running after --timeout %s; the rollout goes on (see kaylee status)", c.pending, timeout)
		}
	}
}

// rolloutCheck is the verdict of waitRollouts on each state it sees.
type rolloutCheck struct {
	w       io.Writer
	wants   wantsFunc
	names   []string
	last    map[string]string // the line printed last, by unit
	pending int
	failed  []string
	done    bool  // the wait is over, with err
	err     error // nil: every unit runs what it should
}

// check prints what changed in st and says whether the wait is over.
func (c *rolloutCheck) check(st *store.RolloutState) bool {
	want := c.wants(st.Settings.DefaultEngine)
	c.pending, c.failed = 0, nil
	for _, n := range c.names {
		status := st.Statuses[n]
		if status != nil && status.Phase == store.PhaseSuspended && st.Suspended[n] != nil {
			// The status may lag a resume: the suspension decides.
			c.done, c.err = true, fmt.Errorf("%s is suspended: the scheduler rolls nothing out until kaylee resume %s", n, n)
			return true
		}
		r := view.RolloutOf(n, status, want[n])
		if r.Failed {
			c.failed = append(c.failed, n)
		}
		if r.Line != c.last[n] {
			fmt.Fprintln(c.w, r.Line)
			c.last[n] = r.Line
		}
		if !r.Done {
			c.pending++
		}
	}
	switch {
	case len(c.failed) > 0 && c.pending == 0:
		c.done, c.err = true, rolloutFailed(c.failed)
	case c.pending == 0:
		c.done = true
	}
	return c.done
}

// rolloutFailed names the units whose rollout failed, and where to look.
func rolloutFailed(names []string) error {
	return fmt.Errorf("rollout of %s failed (see kaylee status %s)", strings.Join(names, ", "), names[0])
}
