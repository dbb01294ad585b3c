package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/view"
)

// How to force each verb on a unit git owns, or do without it.
var forceHint = map[string]string{
	"run":     "; or pass --force to change it anyway until the next sync, or kaylee suspend %[1]s to keep the scheduler off it",
	"rm":      "; or pass --force to remove it anyway until the next sync, or kaylee suspend %[1]s to keep the scheduler off it",
	"restart": "; or pass --force to restart %[1]s anyway",
}

// refuseOwned returns an error for the units of names a git source owns,
// unless force; with force, it warns. Nothing has been written when it
// refuses.
func (a *app) refuseOwned(ctx context.Context, s *store.Store, verb string, names []string, force bool) error {
	records, err := s.ListSyncRecords(ctx)
	if err != nil {
		return err
	}
	var msgs []string
	for _, oe := range view.OwnedErrors(records, verb, names) {
		msg := oe.Error() + fmt.Sprintf(forceHint[verb], oe.Unit)
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
