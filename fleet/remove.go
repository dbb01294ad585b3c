package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/coreos/fleet/client"
)

// StopAndDestroy removes fleet units as the scheduler does: it sets each
// one's target state to loaded (stopped), waits until none of them is
// active on any machine (or timeout passes: fleet may never report a
// state for a unit whose machine is gone), then destroys them. done is
// told of each unit stopped (destroyed false: its target state set), then
// of each destroyed. It is for the operator's say-so (kaylee
// migrate --remove-original), not for the scheduler's own units.
func StopAndDestroy(ctx context.Context, api client.API, names []string, timeout time.Duration, done func(name string, destroyed bool)) error {
	for _, n := range names {
		if err := api.SetUnitTargetState(n, targetLoaded); err != nil {
			return fmt.Errorf("stopping fleet unit %s: %w", n, err)
		}
		if done != nil {
			done(n, false)
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		active, err := activeUnits(api, names)
		if err != nil {
			return err
		}
		if len(active) == 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	for _, n := range names {
		if err := api.DestroyUnit(n); err != nil {
			return fmt.Errorf("destroying fleet unit %s: %w", n, err)
		}
		if done != nil {
			done(n, true)
		}
	}
	return nil
}

// activeUnits are those of names that systemd still runs (or starts, or
// stops) on some machine.
func activeUnits(api client.API, names []string) (map[string]bool, error) {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	states, err := api.UnitStates()
	if err != nil {
		return nil, fmt.Errorf("fleet unit states: %w", err)
	}
	out := map[string]bool{}
	for _, s := range states {
		switch s.SystemdActiveState {
		case "active", "activating", "deactivating", "reloading":
			if want[s.Name] {
				out[s.Name] = true
			}
		}
	}
	return out, nil
}
