package sync

import (
	"sort"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// refuseDependsOn is the dependsOn phase of a plan: a desired unit whose
// dependsOn names a unit that is neither of this revision nor stored in
// etcd (another source's, one made with kaylee run; not one this pass
// prunes), or that closes a cycle, becomes a file error and is held (it
// keeps its stored value, or is not created: safety rule 1).
func refuseDependsOn(p *parsed, desired map[string]*deploy.Document, held inventory, sc *conflictScope, res *Result) {
	var docs []*deploy.Document
	for _, d := range desired {
		docs = append(docs, d)
	}
	sort.Slice(docs, func(i, j int) bool {
		if docs[i].File != docs[j].File {
			return docs[i].File < docs[j].File
		}
		return docs[i].Line < docs[j].Line
	})
	stored := map[string][]string{}
	for name, u := range sc.units {
		if _, ok := desired[name]; ok {
			continue
		}
		if u.Err == nil {
			stored[name] = u.Spec.DependsOn
		} else {
			stored[name] = nil
		}
	}
	// The revision's other units (held, or another source's) are units
	// too, whatever becomes of them in this pass.
	for name := range p.defs {
		if _, ok := stored[name]; !ok && desired[name] == nil {
			stored[name] = nil
		}
	}
	for name := range p.held {
		if _, ok := stored[name]; !ok && desired[name] == nil {
			stored[name] = nil
		}
	}
	probs := deploy.DependsOnProblems(docs, stored, "this source or of etcd")
	var errs []store.SyncError
	for _, d := range docs {
		fes := deploy.FieldErrors(probs[d])
		for _, fe := range fes {
			errs = append(errs, store.SyncError{File: fe.File, Line: fe.Line, Message: fe.Field + ": " + fe.Msg})
		}
		if len(fes) > 0 {
			delete(desired, d.Spec.Name)
			held[d.Spec.Name] = d.File
		}
	}
	res.Errors = append(res.Errors, errs...)
}
