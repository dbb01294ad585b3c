package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// refuseDependsOn prints an error for each valid document whose dependsOn
// names a unit that is neither of docs nor of stored (name → its
// dependsOn), or closes a cycle (deploy.DependsOnProblems); scope says
// where units were looked for. It sets each such document's Err and says
// whether there was any.
func refuseDependsOn(w io.Writer, docs []*deploy.Document, stored map[string][]string, scope string) (bad bool) {
	probs := deploy.DependsOnProblems(docs, stored, scope)
	for _, d := range docs {
		if err := probs[d]; err != nil {
			for _, fe := range deploy.FieldErrors(err) {
				fmt.Fprintln(w, fe)
			}
			d.Err, bad = err, true
		}
	}
	return bad
}

// refuseStoredDependsOn is refuseDependsOn for kaylee run: the units
// stored in etcd count as known.
func refuseStoredDependsOn(ctx context.Context, s *store.Store, w io.Writer, docs []*deploy.Document) error {
	units, _, err := s.ListUnits(ctx)
	if err != nil {
		return err
	}
	given := map[string]bool{}
	for _, d := range docs {
		given[d.Spec.Name] = true
	}
	stored := map[string][]string{}
	for _, u := range units {
		if given[u.Name] {
			continue
		}
		stored[u.Name] = nil
		if u.Err == nil {
			stored[u.Name] = u.Spec.DependsOn
		}
	}
	if refuseDependsOn(w, docs, stored, "the given files or of etcd") {
		fmt.Fprintln(w, "nothing stored: fix the errors above")
		return exitError{code: 1}
	}
	return nil
}

// dependsLine is a status's dependsOn for kaylee status NAME: "db, cache
// (its rollout waits for db)".
func dependsLine(st *store.Status) string {
	line := strings.Join(st.DependsOn, ", ")
	if st.WaitingFor != "" {
		line += " (its rollout waits for " + strings.ReplaceAll(st.WaitingFor, ",", ", ") + ")"
	}
	return line
}
