package fleet

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/store"
)

// Issue 25: maxReplicasPerHost holds through Kaylee's own rolling
// updates. On fleet's engine, 3 machines: a unit is rolled out, the
// machines that run fewer than the limit of it get other units (fleet's
// least-loaded engine would then put a new replica on a full machine),
// and the unit is updated. A sampler of what the machines' systemd runs
// (every 20ms, see sampleAdoption) never sees more running replicas of
// the unit on one machine than the limit, nor more than desired + surge;
// a sampler of fleet never sees fewer serving than the case allows
// (desired when some machine has room for one more, desired - 1 on a
// packed cluster, where one replica at a time is replaced in place).
func TestRollingUpdateHoldsMaxPerHost(t *testing.T) {
	t.Parallel() // as its cases (each its own etcd and fleet): beside the other tests, not before them
	cases := []struct {
		name     string
		spec     func(t *testing.T) *deploy.Spec
		perHost  int
		minUp    int
		wantNote string // in a status seen during the update
	}{
		{name: "the seed's countly: 4 replicas, 2 per machine, room for one more",
			spec:    func(t *testing.T) *deploy.Spec { return loadSpec(t, "../deploy/testdata/countly.yaml", nil) },
			perHost: 2, minUp: 4},
		{name: "packed: 3 replicas, 1 per machine, on 3 machines",
			spec: func(t *testing.T) *deploy.Spec {
				return storedUnitSpec(t, `{"name":"web","replicas":3,"maxReplicasPerHost":1,"apps":[{"image":"docker://web:1"}]}`)
			},
			perHost: 1, minUp: 2, wantNote: "no machine has room"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, fleetsim.Machines(3, map[string]string{"ssd": "false"}))
			h.serve(h.api, testOptions)
			s := tc.spec(t)
			v1 := h.put(s)
			h.waitStatus(s.Name, store.PhaseRunning, v1, 60*time.Second)
			if tc.minUp == s.Instances() {
				h.loadOtherMachines(s.Name, tc.perHost, 3)
			}
			limits := map[string]adoptLimits{s.Name: {running: s.Instances() + 1, perMachine: tc.perHost}}
			check := h.sampleAdoption(limits)
			// The floor is read on the machines' systemd too: fleet's
			// lagging states would show a stopped replica serving.
			low := sampleEvery(20*time.Millisecond, func() (string, bool) {
				var up []string
				for _, st := range h.cluster.UnitStates() {
					if id, ok := deploy.ParseUnitName("k2", st.Name); ok && id.Name == s.Name && st.SystemdActiveState == "active" && st.SystemdSubState == "running" {
						up = append(up, fmt.Sprintf("%s on %.8s", st.Name, st.MachineID))
					}
				}
				if len(up) < tc.minUp {
					return fmt.Sprintf("%d running: %s", len(up), strings.Join(up, ", ")), true
				}
				return "", true
			})
			notes := h.sampleMessages(s.Name)
			s.Env = append(s.Env, deploy.EnvVar{Name: "V", Value: "2"})
			v2 := h.put(s)
			h.waitStatus(s.Name, store.PhaseRunning, v2, 120*time.Second)
			h.waitUnits(s.Name, v2, s.Instances(), 30*time.Second)
			if msg, _ := check(); msg != "" {
				t.Errorf("during the update: %s", msg)
			}
			if msg, _ := low(); msg != "" {
				t.Errorf("fewer than %d serving during the update: %s", tc.minUp, msg)
			}
			if seen := notes(); tc.wantNote != "" && !strings.Contains(seen, tc.wantNote) {
				t.Errorf("no status during the update said %q; they said:\n%s", tc.wantNote, seen)
			}
		})
	}
}

func storedUnitSpec(t *testing.T, raw string) *deploy.Spec {
	t.Helper()
	return &storedUnit(t, raw).Spec
}

// sampleMessages reads the unit's status every 100ms until stopped and
// returns every distinct message seen, one per line.
func (h *harness) sampleMessages(name string) (stop func() string) {
	quit, done := make(chan struct{}), make(chan string, 1)
	go func() {
		seen := map[string]bool{}
		var all []string
		for {
			select {
			case <-quit:
				done <- strings.Join(all, "\n")
				return
			case <-time.After(100 * time.Millisecond):
			}
			st, err := h.store.GetStatus(context.Background(), name)
			if err != nil || st == nil || seen[st.Message] {
				continue
			}
			seen[st.Message] = true
			all = append(all, st.Message)
		}
	}()
	return func() string { close(quit); return <-done }
}
