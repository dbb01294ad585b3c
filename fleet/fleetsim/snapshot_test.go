package fleetsim

import (
	"fmt"
	"testing"
	"time"
)

// UnitStates is the simulated systemd's word at once: the unit fleet
// reports running is there, on its machine, with fleet's hash, and a stop
// on its machine shows in the very next read, before fleet's agent
// publishes it.
func TestUnitStatesNow(t *testing.T) {
	c := startCluster(t, Machines(2))
	api := c.API()
	if err := api.CreateUnit(svc("now.service")); err != nil {
		t.Fatal(err)
	}
	var on, hash string
	eventually(t, 20*time.Second, "fleet reports now.service running", func() (bool, string) {
		states, err := api.UnitStates()
		if err != nil {
			return false, err.Error()
		}
		for _, s := range states {
			if s.Name == "now.service" && s.SystemdActiveState == "active" && s.SystemdSubState == "running" {
				on, hash = s.MachineID, s.Hash
				return true, ""
			}
		}
		return false, fmt.Sprintf("states %v", states)
	})
	state := func() string {
		out := ""
		for _, s := range c.UnitStates() {
			if s.Name == "now.service" {
				out += fmt.Sprintf("%s/%s on %s hash %s;", s.SystemdActiveState, s.SystemdSubState, s.MachineID, s.Hash)
			}
		}
		return out
	}
	if got, want := state(), fmt.Sprintf("active/running on %s hash %s;", on, hash); got != want {
		t.Fatalf("systemd says %q, want %q", got, want)
	}
	if err := c.Machine(on).Systemd().TriggerStop("now.service"); err != nil {
		t.Fatal(err)
	}
	if got, want := state(), fmt.Sprintf("inactive/dead on %s hash %s;", on, hash); got != want {
		t.Fatalf("after the stop systemd says %q, want %q", got, want)
	}
}
