package view

import (
	"fmt"

	"github.com/kaylee-gitops/kaylee/store"
)

// Ownership names the git source that owns a unit and the file defining it.
type Ownership struct {
	Source string
	File   string
	Record *store.SyncRecord
}

// Owners maps each unit a git source owns (its inventory) to its owner.
func Owners(records map[string]*store.SyncRecord) map[string]Ownership {
	out := map[string]Ownership{}
	for src, r := range records {
		for name, file := range r.Inventory {
			out[name] = Ownership{Source: src, File: file, Record: r}
		}
	}
	return out
}

// Where is "prod/web.yaml in git source team-a (https://…, main@3f2a9c1)".
func (o Ownership) Where() string {
	s := fmt.Sprintf("%s in git source %q", o.File, o.Source)
	if r := o.Record; r != nil && r.URL != "" {
		s += fmt.Sprintf(" (%s, %s@%s)", store.RedactURL(r.URL), r.Ref, short(r.Revision))
	}
	return s
}

// OwnedError refuses a change to a unit a git source owns, which the next
// sync would undo (run, rm) or which git decides (restart). Callers that
// allow forcing it say how.
type OwnedError struct {
	Unit  string
	Verb  string // run, rm, restart
	Owner Ownership
}

// What each verb would undo or break on a unit git owns, and what to do
// instead (%[1]s is the file).
var ownedAdvice = map[string]string{
	"run":     "the next sync puts the file's version back. Commit the change to %[1]s instead",
	"rm":      "removing it stops every replica, and the next sync creates it again. Delete %[1]s in git instead (the sync prunes it)",
	"restart": "git owns how it runs. Commit a change to %[1]s to roll it",
}

func (e *OwnedError) Error() string {
	advice, ok := ownedAdvice[e.Verb]
	if !ok {
		advice = "change %[1]s in git instead"
	}
	return fmt.Sprintf("unit %q is owned by %s: %s", e.Unit, e.Owner.Where(), fmt.Sprintf(advice, e.Owner.File))
}

// OwnedErrors are the refusals of verb for those of names a git source
// owns, in the order of names.
func OwnedErrors(records map[string]*store.SyncRecord, verb string, names []string) []*OwnedError {
	owners := Owners(records)
	var out []*OwnedError
	for _, n := range names {
		if o, ok := owners[n]; ok {
			out = append(out, &OwnedError{Unit: n, Verb: verb, Owner: o})
		}
	}
	return out
}
