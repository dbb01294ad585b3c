package fleet

import (
	"sort"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// The fleet units of monder/kaylee, the program Kaylee descends from, are
// named <prefix>:<name>:<hash6>:<group6>:<i>.service (see
// deploy.ParseOriginalUnitName). When Kaylee's scheduler takes over a
// cluster where the original ran, the original's units of a stored unit
// are that unit's previous version: an ordinary rollout replaces them
// (adoption). The original's units of a name that is not stored are left
// alone: only the operator removes them.

// OriginalUnits sorts the fleet unit names that monder/kaylee rendered with
// prefix by the unit they belong to: adopt holds those of the stored units
// (stored[name]), which the scheduler replaces; leftAlone those of every
// other name, which it never touches. Names of the original's units only
// are kept (Kaylee's own and any other are ignored); each list is sorted.
// It makes no call.
func OriginalUnits(prefix string, fleetUnitNames []string, stored map[string]bool) (adopt, leftAlone map[string][]string) {
	adopt, leftAlone = map[string][]string{}, map[string][]string{}
	for _, n := range fleetUnitNames {
		id, ok := deploy.ParseOriginalUnitName(prefix, n)
		if !ok {
			continue
		}
		if stored[id.Name] {
			adopt[id.Name] = append(adopt[id.Name], n)
		} else {
			leftAlone[id.Name] = append(leftAlone[id.Name], n)
		}
	}
	for _, m := range []map[string][]string{adopt, leftAlone} {
		for _, ns := range m {
			sort.Strings(ns)
		}
	}
	return adopt, leftAlone
}
