package deploy

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// A conflicts entry names the units a unit must not share a machine with.
// It renders as Conflicts=<prefix>:<entry>:*.service, and fleet matches
// it against every unit on the cluster, whoever made it, so an entry is
// held to two shapes:
//
//   - a unit name (db), the unit-name grammar;
//   - a family of units: a name prefix ending in a dash segment, then one
//     trailing * (db-*, mongo-n*), as the seed's example.
//
// Anything broader (*, ?*, *-db, k*, web*) is refused: it reaches units
// of other teams. Whose units an entry may name is the sync's business
// (a source names only its own units, unless its config allows more).
var conflictFamilyRe = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*-[a-z0-9]*\*$`)

// checkConflict is the validation message for a conflicts entry, "" when
// it is a name or a family.
func checkConflict(p string) string {
	switch {
	case len(strings.TrimSuffix(p, "*")) > MaxNameLen:
		return fmt.Sprintf("%q is %d characters; a unit name is at most %d", p, len(p), MaxNameLen)
	case nameRe.MatchString(p) || conflictFamilyRe.MatchString(p):
		return ""
	case !conflictRe.MatchString(p):
		return fmt.Sprintf("%q must be a unit name (lowercase letters, digits and -), or a family of them as db-* (a name prefix ending in -, then *)", p)
	case strings.Trim(p, "*?") == "":
		return fmt.Sprintf("%q would conflict with every unit on the cluster, other teams' too; name the units (conflicts: [db, cache])", p)
	}
	lit, _, _ := strings.Cut(p, "*")
	lit, _, _ = strings.Cut(lit, "?")
	if lit == "" {
		return fmt.Sprintf("%q is too broad: it matches units of any name, other teams' too; name the units (conflicts: [db, cache]), or a family of them as db-* (a name prefix ending in -, then *)", p)
	}
	return fmt.Sprintf("%q is too broad: it matches every unit whose name starts with %q, other teams' too; name the units (conflicts: [db, cache]), or a family of them as db-* (a name prefix ending in -, then *)", p, lit)
}

// ConflictMatches reports whether a valid conflicts entry (a name or a
// family such as db-*) matches the unit named name, as fleet matches
// its rendering.
func ConflictMatches(entry, name string) bool {
	if prefix, family := strings.CutSuffix(entry, "*"); family {
		return strings.HasPrefix(name, prefix)
	}
	return entry == name
}

// ConflictCovers reports whether every unit entry matches is also matched
// by allow (both valid entries): allow is entry, a family that holds
// entry's name, or a family that holds entry's family.
func ConflictCovers(allow, entry string) bool {
	prefix, family := strings.CutSuffix(allow, "*")
	if !family {
		return allow == entry
	}
	return strings.HasPrefix(strings.TrimSuffix(entry, "*"), prefix)
}

// ValidConflict checks one conflicts entry (or a pattern of the same
// grammar elsewhere, as a source's conflictsWith), returning nil or an
// error saying why not.
func ValidConflict(p string) error {
	if msg := checkConflict(p); msg != "" {
		return errors.New(msg)
	}
	return nil
}
