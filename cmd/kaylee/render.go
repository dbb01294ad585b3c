package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/coreos/fleet/schema"
	"github.com/spf13/cobra"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/view"
)

func (a *app) renderCommand() *cobra.Command {
	var (
		prefix        string
		output        string
		defaultEngine string
	)
	cmd := &cobra.Command{
		Use:   "render [--unit-prefix k2] [--default-engine rkt|docker|podman] [-o text|json] PATH...",
		Short: "Print the fleet units unit files become",
		Long: `Render validates unit files and prints the fleet units Kaylee would create
for them: with -o text each as "# <fleet unit name>" followed by its unit file;
with -o json a JSON array of fleet unit objects (fleet's API field names).
Directories are read as kaylee validate reads them (recursively, *.yaml and
*.yml, in name order). If any unit is invalid, nothing is printed on stdout.

A unit that names no engine is rendered with --default-engine (rkt unless
given): give the scheduler's to see the fleet units it runs, names and spec
hashes included. Given, stderr says which engine each unit runs with.`,
		Example: `  kaylee render examples/countly.yaml
  kaylee render examples/
  kaylee render -o json examples/countly.yaml | jq -r '.[].name'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if err := deploy.CheckUnitPrefix(prefix); err != nil {
				return fmt.Errorf("--unit-prefix: %w", err)
			}
			if err := checkDefaultEngine(defaultEngine); err != nil {
				return err
			}
			docs, bad, err := loadPaths(cmd.Context(), cmd.ErrOrStderr(), args, defaultEngine)
			if err != nil {
				return err
			}
			if bad {
				return exitError{code: 1}
			}
			var units []*schema.Unit
			for _, d := range docs {
				ro := deploy.RenderOptions{UnitPrefix: prefix}
				if sp := d.Spec.Spread; sp != nil {
					// The scheduler picks each replica's zone from the live
					// machines; show it with example zones.
					ro.Zones = deploy.AssignZones(d.Spec.Instances(), []string{"ZONE-1", "ZONE-2", "ZONE-3"}, nil, sp.Skew())
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: spread over %s: each replica gets MachineMetadata=%s=<zone>, the zones being the values of %s among the live machines that match; shown here with ZONE-1, ZONE-2, ZONE-3\n",
						d.File, sp.Key, sp.Key, sp.Key)
				}
				if d.Spec.Stateful {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: stateful: one fleet unit per member, shown unplaced; the scheduler pins a placed member to its machine (MachineID)\n", d.File)
				}
				if line := view.Domains(&d.Spec); line != "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s: for kaylee router, which sends them to the serving replicas; they change no fleet unit\n", d.File, line)
				}
				if cmd.Flags().Changed("default-engine") {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", d.File, view.EngineLine(&d.Spec, defaultEngine))
				}
				us, err := deploy.Render(d.Spec.WithDefaultEngine(defaultEngine), ro)
				if err != nil {
					return fmt.Errorf("%s: %w", d.File, err)
				}
				units = append(units, us...)
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), units)
			}
			return writeUnitFiles(cmd.OutOrStdout(), units)
		},
	}
	cmd.Flags().StringVar(&prefix, "unit-prefix", deploy.DefaultUnitPrefix, "prefix of fleet unit names")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().StringVar(&defaultEngine, "default-engine", deploy.EngineRkt, defaultEngineUsage+": give the scheduler's to render what it runs")
	return cmd
}

func writeUnitFiles(w io.Writer, units []*schema.Unit) error {
	var errs []error
	for i, u := range units {
		if i > 0 {
			_, err := fmt.Fprintln(w)
			errs = append(errs, err)
		}
		_, err := fmt.Fprintf(w, "# %s\n%s", u.Name, schema.MapSchemaUnitOptionsToUnitFile(u.Options).String())
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// checkOutput checks the value of -o/--output.
func checkOutput(output string) error {
	if output != "text" && output != "json" {
		return fmt.Errorf("-o %q: use text or json", output)
	}
	return nil
}
