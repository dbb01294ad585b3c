package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/internal/localtree"
	"github.com/kaylee-gitops/kaylee/view"
)

func (a *app) validateCommand() *cobra.Command {
	var (
		asJSON        bool
		defaultEngine string
	)
	cmd := &cobra.Command{
		Use:   "validate [--json] [--default-engine rkt|docker|podman] PATH...",
		Short: "Check unit files without touching etcd",
		Long: `Validate reads unit files (YAML, several documents per file allowed, or JSON)
and directories (recursively, every *.yaml and *.yml) and checks every unit.
Checks that span files look only at the files given: a domain claimed twice, and
dependsOn (every name a unit of the files, no cycle). Each secret is checked
as kaylee sync checks it (kaylee secret check) against the .kaylee/recipients
at the root of the git repository holding the first PATH (when the PATH is in
no git repository: the one in the current directory, or at the root of its
repository): its recipients must be in the file, and one of them on every
machine its unit may run on. Without a recipients file, each secret is an
error, as in kaylee sync.

Each problem is printed on stderr as FILE:LINE: FIELD: MESSAGE. The exit code is
0 when every unit is valid and 1 otherwise. With --json, stdout holds the
canonical JSON of each valid unit, one per line (what kaylee stores in etcd),
also when other files fail; without, stdout says which engine each valid unit
runs with: "web: engine docker (the cluster default)", "db: engine podman (its
own)". A unit that names no engine runs with the cluster's default engine (the
scheduler's --default-engine, rkt unless set): give the same --default-engine
here to validate it as it runs. The stored JSON never holds the default.

Local files obey a git source's rules. In a directory, a symlink is followed
only when it stays inside the directory given (one leading out is refused
without being opened) and symlinked directories are not entered; a file named
explicitly is followed wherever its symlinks lead. Only regular files are read
(a FIFO, device or socket is refused without waiting on it), up to 1 MiB each.
kaylee render and kaylee run read files the same way.`,
		Example: `  kaylee validate units/
  kaylee validate --json api.yaml | etcdctl put /kaylee2/units/api`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, paths []string) error {
			if err := checkDefaultEngine(defaultEngine); err != nil {
				return err
			}
			docs, bad, err := loadPaths(cmd.Context(), cmd.ErrOrStderr(), paths, defaultEngine)
			if err != nil {
				return err
			}
			if secretsBad, err := checkSecretsAgainst(cmd.Context(), cmd.ErrOrStderr(), docs, paths); err != nil {
				return err
			} else if secretsBad {
				bad = true
			}
			for _, d := range docs {
				switch {
				case d.Err != nil:
				case asJSON:
					fmt.Fprintf(cmd.OutOrStdout(), "%s\n", d.Spec.CanonicalJSON())
				default:
					fmt.Fprintln(cmd.OutOrStdout(), view.UnitLine(&d.Spec, defaultEngine))
				}
			}
			if bad {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each valid unit's canonical JSON on stdout, one per line")
	cmd.Flags().StringVar(&defaultEngine, "default-engine", deploy.EngineRkt, defaultEngineUsage+": give the scheduler's to validate a unit that names none as it runs")
	return cmd
}

// loadPaths loads every unit file under paths (read by localtree: a
// directory's files must stay inside it, only regular files up to
// deploy.MaxFileSize are read), printing each problem on w as
// FILE:LINE: FIELD: MESSAGE; bad says whether there was any. Documents
// with errors are returned too, with Err set.
//
// defaultEngine is the engine a unit that names none runs with ("" is
// rkt): such a unit is validated as it runs (deploy.Document.
// ValidateWithDefaultEngine), its errors then marked so.
func loadPaths(ctx context.Context, w io.Writer, paths []string, defaultEngine string) (docs []*deploy.Document, bad bool, err error) {
	docs, bad, err = loadPathsWarning(ctx, w, paths, defaultEngine, true)
	if err == nil && refuseDependsOn(w, docs, nil, "the given files") {
		bad = true
	}
	return docs, bad, err
}

// loadPathsWarning is loadPaths, printing the valid units' warnings only
// if warn (kaylee run prints them once it knows the cluster's default
// engine).
func loadPathsWarning(ctx context.Context, w io.Writer, paths []string, defaultEngine string, warn bool) (docs []*deploy.Document, bad bool, err error) {
	files, err := localtree.Read(ctx, paths)
	if err != nil {
		return nil, false, err
	}
	for _, f := range files {
		var fdocs []*deploy.Document
		if f.Err != nil {
			err = &deploy.FieldError{File: f.Path, Msg: f.Err.Err.Error()}
		} else {
			fdocs, err = deploy.Load(f.Path, f.Data)
		}
		for _, fe := range deploy.FieldErrors(err) {
			bad = true
			fmt.Fprintln(w, fe)
		}
		for _, d := range fdocs {
			if d.Err == nil {
				if err := defaultEngineErrors(w, d, defaultEngine, "the default engine"); err != nil {
					d.Err, bad = err, true
				}
			}
			if warn {
				printWarnings(w, d, defaultEngine)
			}
		}
		docs = append(docs, fdocs...)
	}
	if refuseDomainClashes(w, docs) {
		bad = true
	}
	return docs, bad, nil
}

// refuseDomainClashes prints an error for each valid document that claims
// a domain another unit of docs claims (deploy.DomainClashes), sets its
// Err, and says whether there was any.
func refuseDomainClashes(w io.Writer, docs []*deploy.Document) (bad bool) {
	clashes := deploy.DomainClashes(docs)
	for _, d := range docs {
		if err := clashes[d]; err != nil {
			for _, fe := range deploy.FieldErrors(err) {
				fmt.Fprintln(w, fe)
			}
			d.Err, bad = err, true
		}
	}
	return bad
}

// defaultEngineErrors validates a valid document that names no engine as
// a cluster whose default engine is engine runs it, printing its errors
// marked so ("… (web names no engine: it runs with WHOSE ENGINE)"); the
// error, nil when none. Under rkt (or "") the document runs as it was
// validated when it was decoded: nothing to do.
func defaultEngineErrors(w io.Writer, d *deploy.Document, engine, whose string) error {
	if d.Spec.WithDefaultEngine(engine) == &d.Spec {
		return nil
	}
	err := d.ValidateWithDefaultEngine(engine)
	for _, fe := range deploy.FieldErrors(err) {
		fmt.Fprintf(w, "%s (%s names no engine: it runs with %s %s)\n", fe, d.Spec.Name, whose, engine)
	}
	return err
}

// printWarnings prints a document's warnings on a cluster whose default
// engine is defaultEngine.
func printWarnings(w io.Writer, d *deploy.Document, defaultEngine string) {
	for _, fe := range d.WarningsWithDefaultEngine(defaultEngine) {
		fmt.Fprintf(w, "warning: %s\n", fe)
	}
}
