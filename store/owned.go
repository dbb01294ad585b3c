package store

import "fmt"

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
func OwnedErrors(records map[string]*SyncRecord, verb string, names []string) []*OwnedError {
	owners := Owners(records)
	var out []*OwnedError
	for _, n := range names {
		if o, ok := owners[n]; ok {
			out = append(out, &OwnedError{Unit: n, Verb: verb, Owner: o})
		}
	}
	return out
}
