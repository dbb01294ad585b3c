package fleet

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/store"
)

// TestFailedRolloutRestoresPreviousVersion (issue 21, item 9): an old
// replica is down when a rollout starts (stopped or destroyed by hand
// through fleet's registry), and the rollout then fails (a crash-looping
// image). The previous version must come back to full strength, 4 of 4
// running, and stay so, with a status that says failed with 4 running and
// names the failed rollout. It used to stay at "failed, running 3 of 4"
// for good: retire had destroyed the old replica, fail removed the new
// ones, and nothing brought the old one back.
func TestFailedRolloutRestoresPreviousVersion(t *testing.T) {
	t.Parallel() // its own etcd and fleet (newHarness): it waits on fleet's engine, not the CPU
	tests := []struct {
		name string
		down func(h *harness, unit string) error // takes one old replica down through fleet
	}{
		{"an old replica stopped through fleet", func(h *harness, unit string) error {
			return h.api.SetUnitTargetState(unit, "inactive")
		}},
		{"an old replica destroyed through fleet", func(h *harness, unit string) error {
			return h.api.DestroyUnit(unit)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // each case has its own etcd and fleet
			h := newHarness(t, fleetsim.Machines(3))
			h.serve(h.api, testOptions)

			v1 := h.put(replicated(4, "docker://web:1"))
			h.waitStatus("web", store.PhaseRunning, v1, 60*time.Second)
			h.waitUnits("web", v1, 4, 30*time.Second)
			var names []string
			for n := range h.view("web").units {
				names = append(names, n)
			}
			sort.Strings(names)

			// Throughout, never more than desired + maxSurge (4 + 1) fleet
			// units up or starting.
			surge := h.sample("web", func(v fleetView) string {
				if v.launched > 5 {
					return fmt.Sprintf("%d fleet units launched, more than 4 + maxSurge 1: %v", v.launched, v)
				}
				return ""
			})
			// One old replica down, then at once an update that crash-loops.
			if err := tt.down(h, names[3]); err != nil {
				t.Fatal(err)
			}
			bad := h.put(replicated(4, "docker://sim-fail/web:2"))
			st := h.waitStatus("web", store.PhaseFailed, bad, 90*time.Second)
			t.Logf("failed: %q", st.Message)

			// The previous version comes back to 4 of 4, in fleet and in the
			// status, which still names the failed rollout.
			full := func(v fleetView) string {
				if v.runningWithHash(v1) != 4 || len(v.units) != 4 || v.launched != 4 {
					return fmt.Sprintf("%d of 4 replicas of the previous version running, %d fleet units, %d launched: %v",
						v.runningWithHash(v1), len(v.units), v.launched, v)
				}
				return ""
			}
			eventually(t, 30*time.Second, func() (bool, string) {
				msg := full(h.view("web"))
				st := h.status("web")
				if msg == "" && (st.Phase != store.PhaseFailed || st.Running != 4 || st.Desired != 4) {
					msg = fmt.Sprintf("status %s %d of %d: %q", st.Phase, st.Running, st.Desired, st.Message)
				}
				return msg == "", msg
			})
			// ... and stays so, with the failed spec not retried.
			check := h.sample("web", full)
			time.Sleep(10 * time.Second)
			if msg := check(); msg != "" {
				t.Fatalf("after the previous version was back: %s", msg)
			}
			if msg := surge(); msg != "" {
				t.Fatalf("surge: %s", msg)
			}
			st = h.status("web")
			if st.Phase != store.PhaseFailed || st.SpecHash != bad || st.Running != 4 || st.Desired != 4 ||
				!strings.Contains(st.Message, "rollout of "+bad+" failed") || !strings.Contains(st.Message, "the previous version (if any) keeps running") {
				t.Fatalf("status: %s %s %d of %d: %q", st.Phase, st.SpecHash, st.Running, st.Desired, st.Message)
			}
		})
	}
}
