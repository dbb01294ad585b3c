package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet"
	"github.com/kaylee-gitops/kaylee/migrate"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/v2units"
)

// migrateFlags are kaylee migrate's flags.
type migrateFlags struct {
	sched          schedulerFlags // fleet's flags and --unit-prefix only
	dryRun         bool
	overwrite      bool
	removeOriginal bool
	output         string
	stopTimeout    time.Duration
}

func (a *app) migrateCommand() *cobra.Command {
	var f migrateFlags
	cmd := &cobra.Command{
		Use:   "migrate [--dry-run] [--overwrite] [--remove-original] [-o json]",
		Short: "Move from monder/kaylee: copy units written through etcd v2 to v3, list what is adopted, refused and left alone",
		Long: `Migrate prepares a cluster where monder/kaylee, the program Kaylee descends
from, ran. It lists, in four tables:

  units written through etcd's v2 API under <etcd-prefix>/units/, and whether
      each is copied to v3 (v3 has none), the same as v3, or differs from v3
      (v3 is kept unless --overwrite);
  the original's fleet units (<unit-prefix>:NAME:HASH6:GROUP6:I.service) of
      stored units, which the scheduler adopts: a rolling update replaces them;
  stored JSON (v3, or v2 about to be copied) the scheduler refuses, with the
      reason and the fix;
  the original's fleet units of names not stored, which the scheduler leaves
      alone.

With --dry-run it changes nothing. Without, it copies the v2 units to v3 (as
the scheduler's bridge does when it first sees them: only where v3 has none,
or with --overwrite) and, with --remove-original, stops then destroys the
original's fleet units of names not stored. Those of a name that is the
JSON name of a value stored under another key are that value's (the
original named its fleet units after the JSON's name): never removed.
--remove-original is refused when etcd's v2 API cannot be read (names may
be stored only there), and the stored names are read again just before the
units are stopped.

Exit codes: 0 when no stored JSON is refused, 1 when some is (a CI job can
gate on it), 2 when etcd or fleet could not be read, or a write failed or
was cancelled midway (what was done is printed: copied, destroyed, stopped
but not destroyed), or --remove-original without etcd's v2 API, 4 for a
wrong flag.`,
		Example: `  kaylee migrate --dry-run
  kaylee migrate --dry-run -o json
  kaylee migrate --remove-original`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.output != "text" && f.output != "json" {
				return &usageError{cmd: cmd, err: fmt.Errorf("--output %q: use text or json", f.output)}
			}
			if err := deploy.CheckUnitPrefix(f.sched.unitPrefix); err != nil {
				return &usageError{cmd: cmd, err: fmt.Errorf("--unit-prefix: %w", err)}
			}
			return a.runMigrate(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.dryRun, "dry-run", false, "list what would be done, change nothing")
	fl.BoolVar(&f.overwrite, "overwrite", false, "copy a v2 unit over a v3 unit that differs (without, v3 is kept)")
	fl.BoolVar(&f.removeOriginal, "remove-original", false, "stop then destroy the original's fleet units of names not stored")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	fl.DurationVar(&f.stopTimeout, "stop-timeout", 2*time.Minute, "with --remove-original: how long to wait for the units to stop before destroying them")
	fl.StringVar(&f.sched.fleetPrefix, "fleet-prefix", fleet.DefaultKeyPrefix, "fleet's key prefix in etcd (registry access)")
	fl.StringVar(&f.sched.fleetEndpoint, "fleet-endpoint", "", "fleet's HTTP API instead of its registry: unix:///var/run/fleet.sock or http://host:port")
	fl.StringVar(&f.sched.unitPrefix, "unit-prefix", deploy.DefaultUnitPrefix, "prefix of the fleet units, the original's and Kaylee's")
	return cmd
}

// migration is what kaylee migrate read, planned and did.
type migration struct {
	DryRun bool `json:"dryRun"`
	migrate.Plan
	Copied    []string `json:"copied,omitempty"`
	Destroyed []string `json:"destroyed,omitempty"`
	// Stopped: stopped but not destroyed (the migration stopped between).
	Stopped []string `json:"stopped,omitempty"`
	// NowStored: left alone when read, stored when about to be removed:
	// kept.
	NowStored []string `json:"nowStored,omitempty"`
	// Failed says why the migration stopped before it finished.
	Failed string `json:"failed,omitempty"`

	v2 map[string]v2units.Write
}

func (a *app) runMigrate(ctx context.Context, out, errw io.Writer, f migrateFlags) error {
	m, s, done, err := a.readMigration(ctx, f)
	if err != nil {
		fmt.Fprintf(errw, "kaylee: %v\n", err)
		return exitError{code: exitUnreachable}
	}
	defer done()
	if f.removeOriginal && !f.dryRun && m.V2Error != "" {
		fmt.Fprintf(errw, "kaylee: --remove-original: the units written through etcd's v2 API could not be read (%s): the original's fleet units of names stored only there would be destroyed; nothing changed (run kaylee migrate where etcd serves v2, or remove them with fleetctl)\n", m.V2Error)
		return exitError{code: exitUnreachable}
	}
	if !f.dryRun {
		if err := a.applyMigration(ctx, s, f, m); err != nil {
			m.Failed = err.Error()
			if perr := printMigration(out, f.output, m); perr != nil {
				return perr
			}
			fmt.Fprintf(errw, "kaylee: migrate stopped before it finished: %v (what it did is above)\n", err)
			return exitError{code: exitUnreachable}
		}
	}
	if err := printMigration(out, f.output, m); err != nil {
		return err
	}
	if m.HasRefused() {
		return exitError{code: 1}
	}
	return nil
}

// readMigration reads etcd (v3 and v2) and fleet, and plans.
func (a *app) readMigration(ctx context.Context, f migrateFlags) (*migration, *store.Store, func(), error) {
	s, done, err := a.openStore(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	w, v2, err := a.migrationWorld(ctx, s, f)
	if err != nil {
		done()
		return nil, nil, nil, err
	}
	return &migration{DryRun: f.dryRun, Plan: migrate.Make(w), v2: v2}, s, done, nil
}

func (a *app) migrationWorld(ctx context.Context, s *store.Store, f migrateFlags) (migrate.World, map[string]v2units.Write, error) {
	w := migrate.World{Prefix: s.Prefix(), UnitPrefix: f.sched.unitPrefix, V2: map[string][]byte{}, V3: map[string][]byte{}, Overwrite: f.overwrite, Check: s.CheckStored}
	units, _, err := s.ListUnits(ctx)
	if err != nil {
		return w, nil, err
	}
	for _, u := range units {
		w.V3[u.Name] = u.Raw
	}
	f.sched.v2Units = true
	keys, err := a.v2Keys(&f.sched, a.etcd.Endpoints)
	if err != nil {
		return w, nil, err
	}
	l, err := v2units.List(ctx, keys, s.Prefix()+"/units")
	v2 := l.Writes
	switch {
	case errors.Is(err, v2units.ErrUnavailable):
		w.V2Error = err.Error()
	case err != nil:
		return w, nil, err
	}
	for name, wr := range v2 {
		w.V2[name] = wr.Value
	}
	api, err := a.fleetAPI(&f.sched)
	if err != nil {
		return w, nil, err
	}
	fus, err := api.Units()
	if err != nil {
		return w, nil, fmt.Errorf("listing fleet's units (%s): %w", fleetWhere(&f.sched), err)
	}
	for _, u := range fus {
		w.FleetUnits = append(w.FleetUnits, u.Name)
	}
	return w, v2, nil
}

// applyMigration copies the v2 units to v3 and, with --remove-original,
// removes the original's units left alone.
func (a *app) applyMigration(ctx context.Context, s *store.Store, f migrateFlags, m *migration) error {
	for _, c := range m.Copies() {
		wr := m.v2[c.Name]
		done, err := s.ApplyV2(ctx, c.Name, v2units.Migrate(wr, f.overwrite), store.Fence{})
		if err != nil {
			return fmt.Errorf("copying %s to v3: %w", c.Name, err)
		}
		if done.Put == nil {
			continue // v3 changed since it was read: kept
		}
		m.Copied = append(m.Copied, c.Name)
		_ = s.AppendEvents(ctx, store.Fence{}, store.Event{Kind: store.EventStored, Unit: c.Name, By: "kaylee migrate",
			Message: fmt.Sprintf("written through etcd's v2 API at %s (modifiedIndex %d): copied to v3 by kaylee migrate", c.V2Key, wr.Index)})
	}
	if !f.removeOriginal || len(m.Remove()) == 0 {
		return nil
	}
	remove, err := a.stillNotStored(ctx, s, f, m)
	if err != nil || len(remove) == 0 {
		return err
	}
	api, err := a.fleetAPI(&f.sched)
	if err != nil {
		return err
	}
	return fleet.StopAndDestroy(ctx, api, remove, f.stopTimeout, func(name string, destroyed bool) {
		if !destroyed {
			m.Stopped = append(m.Stopped, name)
			return
		}
		m.Destroyed = append(m.Destroyed, name)
		m.Stopped = slices.DeleteFunc(m.Stopped, func(n string) bool { return n == name })
	})
}

// stillNotStored reads the stored units (v3 and v2) again just before the
// original's units are stopped, and returns those of m.Remove() whose
// names are still not stored (nor held); the others go to m.NowStored.
func (a *app) stillNotStored(ctx context.Context, s *store.Store, f migrateFlags, m *migration) ([]string, error) {
	w, _, err := a.migrationWorld(ctx, s, f)
	if err != nil {
		return nil, fmt.Errorf("reading the stored units again before removing the original's: %w", err)
	}
	if w.V2Error != "" {
		return nil, fmt.Errorf("reading the stored units again before removing the original's: %s", w.V2Error)
	}
	remove, kept := migrate.StillRemovable(m.Plan, w)
	m.NowStored = kept
	return remove, nil
}

// copyActions are the words of the copy table's ACTION column.
var copyActions = map[string]string{
	migrate.CopyNew:       "copy to v3 (v3 has none)",
	migrate.CopySame:      "nothing (v3 holds the same JSON)",
	migrate.CopyKeepV3:    "keep v3 (it differs; --overwrite copies v2 over it)",
	migrate.CopyOverwrite: "copy over v3 (--overwrite)",
}

func printMigration(w io.Writer, output string, m *migration) error {
	if output == "json" {
		b, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding the plan: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if m.DryRun {
		fmt.Fprintln(tw, "dry run: nothing changed")
	}
	fmt.Fprintln(tw, "\nunits written through etcd's v2 API:")
	if m.V2Error != "" {
		fmt.Fprintf(tw, "  none read: %s\n", m.V2Error)
	}
	table(tw, len(m.Copy), "NAME\tV2 KEY\tACTION", func(i int) string {
		c := m.Copy[i]
		return c.Name + "\t" + c.V2Key + "\t" + copyActions[c.Action]
	})
	fmt.Fprintln(tw, "\nthe original's fleet units of stored units, adopted (a rolling update replaces them):")
	originalsTable(tw, m.Adopt, "left as they are until the stored JSON is fixed (see below)")
	fmt.Fprintln(tw, "\nstored JSON the scheduler refuses:")
	if len(m.Refused) == 0 {
		fmt.Fprintln(tw, "  (none)")
	}
	for _, r := range m.Refused {
		fmt.Fprintf(tw, "  %s (%s)\n    reason: %s\n    fix:    %s\n", r.Name, r.Where, strings.ReplaceAll(r.Reason, "\n", "; "), r.Fix)
	}
	fmt.Fprintln(tw, "\nthe original's fleet units of names not stored, left alone (--remove-original stops and destroys them, but those held):")
	if m.V2Error != "" {
		fmt.Fprintln(tw, "  (--remove-original is refused: units stored only through v2 could not be read)")
	}
	originalsTable(tw, m.LeftAlone, "")
	if !m.DryRun {
		fmt.Fprintf(tw, "\ncopied to v3: %s\ndestroyed: %s\n", orNone(m.Copied), orNone(m.Destroyed))
		if len(m.Stopped) > 0 {
			fmt.Fprintf(tw, "stopped, not destroyed: %s\n", orNone(m.Stopped))
		}
		if len(m.NowStored) > 0 {
			fmt.Fprintf(tw, "kept, stored since they were listed: %s\n", orNone(m.NowStored))
		}
		if m.Failed != "" {
			fmt.Fprintf(tw, "stopped before it finished: %s\n", m.Failed)
		}
	}
	return tw.Flush()
}

// table prints a header and n rows, or "(none)".
func table(w io.Writer, n int, header string, row func(i int) string) {
	if n == 0 {
		fmt.Fprintln(w, "  (none)")
		return
	}
	fmt.Fprintln(w, "  "+header)
	for i := range n {
		fmt.Fprintln(w, "  "+row(i))
	}
}

// originalsTable lists the fleet units of os, one a row; waits is the note
// of a unit whose stored JSON is refused.
func originalsTable(w io.Writer, os []migrate.Original, waits string) {
	var rows []string
	for _, o := range os {
		note := ""
		switch {
		case o.Waits:
			note = waits
		case o.HeldBy != "":
			note = "held by the refused unit " + o.HeldBy + " (its JSON's name): never removed; write it under its name and they are adopted"
		}
		for _, u := range o.FleetUnits {
			row := o.Name + "\t" + u
			if note != "" {
				row += "\t" + note
			}
			rows = append(rows, row)
		}
	}
	table(w, len(rows), "NAME\tFLEET UNIT", func(i int) string { return rows[i] })
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
