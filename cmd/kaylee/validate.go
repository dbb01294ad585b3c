package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kaylee-gitops/kaylee/deploy"
)

func (a *app) validateCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "validate [--json] PATH...",
		Short: "Check unit files without touching etcd",
		Long: `Validate reads unit files (YAML, several documents per file allowed, or JSON)
and directories (recursively, every *.yaml and *.yml) and checks every unit.

Each problem is printed on stderr as FILE:LINE: FIELD: MESSAGE. The exit code is
0 when every unit is valid and 1 otherwise. With --json, stdout holds the
canonical JSON of each valid unit, one per line (what kaylee stores in etcd),
also when other files fail.`,
		Example: `  kaylee validate units/
  kaylee validate --json api.yaml | etcdctl put /kaylee2/units/api`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, paths []string) error {
			docs, bad, err := loadPaths(cmd.ErrOrStderr(), paths)
			if err != nil {
				return err
			}
			for _, d := range docs {
				if d.Err == nil && asJSON {
					fmt.Fprintf(cmd.OutOrStdout(), "%s\n", d.Spec.CanonicalJSON())
				}
			}
			if bad {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each valid unit's canonical JSON on stdout, one per line")
	return cmd
}

// loadPaths loads every unit file under paths (see unitFiles), printing
// each problem on w as FILE:LINE: FIELD: MESSAGE; bad says whether there
// was any. Documents with errors are returned too, with Err set.
func loadPaths(w io.Writer, paths []string) (docs []*deploy.Document, bad bool, err error) {
	files, err := unitFiles(paths)
	if err != nil {
		return nil, false, err
	}
	for _, f := range files {
		fdocs, err := loadFile(f)
		for _, fe := range deploy.FieldErrors(err) {
			bad = true
			fmt.Fprintln(w, fe)
		}
		docs = append(docs, fdocs...)
	}
	return docs, bad, nil
}

func loadFile(path string) ([]*deploy.Document, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &deploy.FieldError{File: path, Msg: fmt.Sprintf("cannot read: %v", err)}
	}
	return deploy.Load(path, data)
}

// unitFiles expands directories into the unit files under them (*.yaml,
// *.yml, sorted); files named explicitly are taken whatever their extension.
func unitFiles(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && path != p && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir // .git and friends
			}
			if !d.IsDir() && deploy.IsUnitFile(d.Name()) {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading directory %s: %w", p, err)
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, nil
}
