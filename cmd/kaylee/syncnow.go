package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kaylee-gitops/kaylee/store"
)

// syncNow is kaylee sync --now: it writes each source's trigger key (the
// one webhooks write), after an override when forced, so that the
// process leading its sync makes a pass at once.
func (a *app) syncNow(cmd *cobra.Command, names []string, force bool) error {
	ctx := cmd.Context()
	return a.withStore(ctx, func(s *store.Store) error {
		leaders, err := s.SourceLeaders(ctx)
		if err != nil {
			return err
		}
		if len(names) == 0 {
			names = slices.Sorted(maps.Keys(leaders))
			if len(names) == 0 {
				return fmt.Errorf("no process syncs any source now (kaylee agent or kaylee sync without --once): nothing would fetch; kaylee sync --once syncs here")
			}
		}
		var missing []string
		for _, n := range names {
			if leaders[n] == "" {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			known := "none"
			if len(leaders) > 0 {
				known = strings.Join(slices.Sorted(maps.Keys(leaders)), ", ")
			}
			return fmt.Errorf("no process syncs %s now (sources with a leader: %s): nothing would fetch it; kaylee sync --once --config FILE %s syncs here",
				strings.Join(missing, ", "), known, strings.Join(missing, " "))
		}
		who := a.who()
		for _, n := range names {
			msg := "sync now: " + leaders[n] + " fetches at once"
			if force {
				if err := s.PutFreezeOverride(ctx, n, who); err != nil {
					return err
				}
				msg += ", through its freezes (--force)"
			}
			if err := s.Trigger(ctx, n, ""); err != nil {
				return err
			}
			_ = s.AppendEvents(ctx, store.Fence{}, store.Event{Kind: store.EventSyncRequested, Source: n, By: who, Message: msg})
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", n, msg)
		}
		return nil
	})
}
