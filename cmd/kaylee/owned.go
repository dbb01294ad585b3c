package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/kaylee-gitops/kaylee/store"
)

// What each command would undo or break on a unit git owns, and what to
// do instead.
var ownedAdvice = map[string]string{
	"run": "the next sync puts the file's version back. Commit the change to %[1]s instead; " +
		"or pass --force to change it anyway until the next sync, or kaylee suspend %[2]s to keep the scheduler off it",
	"rm": "removing it stops every replica, and the next sync creates it again. Delete %[1]s in git instead (the sync prunes it); " +
		"or pass --force to remove it anyway until the next sync, or kaylee suspend %[2]s to keep the scheduler off it",
	"restart": "git owns how it runs. Commit a change to %[1]s to roll it; or pass --force to restart it anyway",
}

// refuseOwned returns an error for the first of names a git source owns,
// unless force; with force, it warns. Nothing has been written when it
// refuses.
func (a *app) refuseOwned(ctx context.Context, s *store.Store, verb string, names []string, force bool) error {
	records, err := s.ListSyncRecords(ctx)
	if err != nil {
		return err
	}
	owners := store.Owners(records)
	var msgs []string
	for _, n := range names {
		o, ok := owners[n]
		if !ok {
			continue
		}
		msg := fmt.Sprintf("unit %q is owned by %s: %s", n, o.Where(), fmt.Sprintf(ownedAdvice[verb], o.File, n))
		if force {
			fmt.Fprintf(a.io.err, "warning: %s\n", strings.Replace(msg, "; or pass --force", "; --force given", 1))
			continue
		}
		msgs = append(msgs, msg)
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%s; nothing was changed", strings.Join(msgs, "\n"))
	}
	return nil
}
