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

// Issue 27, part 5: a newer spec ends a doomed rollout. web runs v1 (3
// replicas, a rolling global unit on 3 machines, or 3 stateful members); the rollout of B is failing (a restart loop under a
// MaxRestarts too high to fail it soon) or stuck (its replicas fit no
// machine, under an Unschedulable wait of minutes), with a 5-minute
// progress deadline. C arrives: the scheduler moves to C at once (it
// runs well within the deadline, B's status never says failed), B's
// fleet units go, a sampler never sees fewer than 3 replicas serving
// (v1's and C's; 2 for a rolling global unit or stateful members,
// replaced one at a time), and the history marks B superseded.
func TestNewerSpecEndsDoomedRollout(t *testing.T) {
	t.Parallel() // as its cases (each its own etcd and fleet): beside the other tests, not before them
	statefulWeb := func(image string) *deploy.Spec {
		return &deploy.Spec{Name: "web", Replicas: 3, Stateful: true, Apps: []deploy.App{{Image: image}}}
	}
	rollingGlobal := func(image string) *deploy.Spec {
		return &deploy.Spec{Name: "web", Global: true, Apps: []deploy.App{{Image: image}}, Update: &deploy.Update{Strategy: deploy.StrategyRolling}}
	}
	cases := []struct {
		name  string
		spec  func(image string) *deploy.Spec // v1's and C's; replicated(3, image) when nil
		minUp int                             // replicas serving throughout; 3 when 0
		bad   func() *deploy.Spec
		doing func(h *harness, hash string) (bool, string) // B's rollout is under way and doomed
	}{{
		name: "restart loop",
		bad:  func() *deploy.Spec { return replicated(3, "docker://sim-fail/web:2") },
		doing: func(h *harness, hash string) (bool, string) {
			st := h.status("web")
			return st != nil && st.SpecHash == hash && strings.Contains(st.Message, "is restarting"), fmt.Sprintf("%+v", st)
		},
	}, {
		name: "unschedulable",
		bad: func() *deploy.Spec {
			s := replicated(3, "docker://web:2")
			s.Machine = []string{"role=none"}
			return s
		},
		doing: func(h *harness, hash string) (bool, string) {
			v := h.view("web")
			n := 0
			for u := range v.units {
				if strings.Contains(u, ":"+hash+":") {
					n++
				}
			}
			return n > 0, v.String()
		},
	}, {
		// One machine at a time (maxUnavailable 1): 2 of 3 serve while
		// a machine is replaced, by design.
		name: "rolling global, restart loop", spec: rollingGlobal, minUp: 2,
		bad: func() *deploy.Spec { return rollingGlobal("docker://sim-fail/web:2") },
		doing: func(h *harness, hash string) (bool, string) {
			st := h.status("web")
			return st != nil && st.SpecHash == hash && strings.Contains(st.Message, "restart"), fmt.Sprintf("%+v", st)
		},
	}, {
		// A member stops before its new version starts: 2 of 3 serve
		// while one is replaced, by design.
		name: "stateful, restart loop", spec: statefulWeb, minUp: 2,
		bad: func() *deploy.Spec { return statefulWeb("docker://sim-fail/web:2") },
		doing: func(h *harness, hash string) (bool, string) {
			st := h.status("web")
			return st != nil && st.SpecHash == hash && strings.Contains(st.Message, "restart"), fmt.Sprintf("%+v", st)
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, fleetsim.Machines(3))
			opts := testOptions
			opts.RolloutTimeout, opts.Unschedulable, opts.MaxRestarts = 5*time.Minute, 5*time.Minute, 1000
			h.serve(h.api, opts)
			spec, minUp := tc.spec, tc.minUp
			if spec == nil {
				spec = func(image string) *deploy.Spec { return replicated(3, image) }
			}
			if minUp == 0 {
				minUp = 3
			}
			v1 := h.put(spec("docker://web:1"))
			h.waitStatus("web", store.PhaseRunning, v1, 60*time.Second)

			b := h.put(tc.bad())
			eventually(t, 30*time.Second, func() (bool, string) { return tc.doing(h, b) })
			c := spec("docker://web:3")
			ch := c.Hash(0)
			serving := func(v fleetView) string {
				if n := v.runningWithHash(v1) + v.runningWithHash(ch); n < minUp {
					return fmt.Sprintf("%d replicas serving (v1 and C): %v", n, v)
				}
				return ""
			}
			// On the machines' systemd: fleet's states of a replica that
			// runs can expire on a loaded machine (the scheduler holds
			// them), and then read as a replica down.
			low := h.sampleMachines("web", serving)
			msgs := h.samplePhases("web")
			start := time.Now()
			h.put(c)
			h.waitStatus("web", store.PhaseRunning, ch, 60*time.Second)
			h.waitUnits("web", ch, 3, 30*time.Second)
			took := time.Since(start)
			if msg := low(); msg != "" {
				t.Errorf("during the move to C: %s", msg)
			}
			if seen := msgs(); strings.Contains(seen, store.PhaseFailed) {
				t.Errorf("the status said failed on the way to C (B was waited out):\n%s", seen)
			}
			if took > time.Minute {
				t.Errorf("C ran %s after it was stored", took)
			}
			hist, err := h.store.History(context.Background(), "web")
			if err != nil {
				t.Fatal(err)
			}
			var outcomes []string
			for _, e := range hist {
				outcomes = append(outcomes, e.SpecHash+" "+e.Outcome)
			}
			want := []string{v1 + " " + store.OutcomeDeployed, b + " " + store.OutcomeSuperseded, ch + " " + store.OutcomeDeployed}
			if strings.Join(outcomes, "\n") != strings.Join(want, "\n") {
				t.Errorf("history:\n%s\nwant:\n%s", strings.Join(outcomes, "\n"), strings.Join(want, "\n"))
			}
			t.Logf("C ran %s after it was stored (progress deadline %s)", took.Round(100*time.Millisecond), opts.RolloutTimeout)
		})
	}
}

// samplePhases reads the unit's status every 100ms until stopped and
// returns each distinct "phase specHash: message" seen, one per line.
func (h *harness) samplePhases(name string) (stop func() string) {
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
			if err != nil || st == nil {
				continue
			}
			line := st.Phase + " " + st.SpecHash + ": " + st.Message
			if !seen[line] {
				seen[line] = true
				all = append(all, line)
			}
		}
	}()
	return func() string { close(quit); return <-done }
}
