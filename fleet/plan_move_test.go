package fleet

import (
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// moveMachines are m1..m4, role=db, m1 and m3 in az=a, m2 and m4 in az=b.
func moveMachines() []deploy.Machine {
	var out []deploy.Machine
	for i, az := range []string{"a", "b", "a", "b"} {
		out = append(out, deploy.Machine{ID: "m" + string(rune('1'+i)), Metadata: map[string]string{"role": "db", "az": az}})
	}
	return out
}

// onMachineLoss: member 1 (on m2, az=b) of a 2-member unit whose machine
// is gone waits for it the grace, then moves to a live machine of its
// zone: its old fleet unit is destroyed, its new one created there. With
// no machine in its zone it waits, and says why; with wait it waits
// whatever the time.
func TestPlanStatefulMove(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	opts := Options{}.withDefaults()
	ips := map[string]string{"m1": "10.0.0.2", "m2": "10.0.0.3", "m3": "10.0.0.4", "m4": "10.0.0.5"}
	spec := func(policy string, spread bool) *deploy.Spec {
		s := stateful(2, 1, "docker://db:1")
		s.OnMachineLoss = policy
		if spread {
			s.Spread = &deploy.Spread{Key: "az"}
		}
		return s
	}
	move, wait := spec(deploy.MachineLossMove, true), spec(deploy.MachineLossWait, true)
	// Members 0 and 1 of s run on m1 and m2 (or on the machines given).
	running := func(s *deploy.Spec, on ...string) func(t *testing.T) *world {
		return func(t *testing.T) *world {
			if len(on) == 0 {
				on = []string{"m1", "m2"}
			}
			w := (&world{t: t, spec: s}).with(members(t, s, on...), "launched", "active", "running")
			w.prev = &store.Status{Name: "db", Phase: store.PhaseRunning, SpecHash: s.Hash(0), Deployed: s.Hash(0)}
			return w
		}
	}
	tests := []struct {
		name   string
		world  func(t *testing.T) *world
		live   []string      // machines in fleet; default all but m2
		gone   time.Duration // m2 gone for
		noMeta bool          // m2's metadata was never seen
		moving bool          // member 1 moved to m4 in an earlier pass (its old unit is gone)
		want   string
		pinned string // machines of the units created
		phase  string
		msg    string
		wake   time.Time // the wake-up asked for, zero for none
		event  string    // the member-moved event's message, "" for none
	}{{
		name:  "gone less than the grace: it waits, and a wake-up is set for the grace's end",
		world: running(move), gone: 2 * time.Minute,
		want: "", phase: store.PhaseProgressing,
		msg:  "1 of 2 running the current spec, 1 ready; member 1 waits for machine m2 (10.0.0.3), its data is there (onMachineLoss move: it moves once its machine is gone 5m0s)",
		wake: now.Add(3 * time.Minute),
	}, {
		name:  "gone for the grace: its old unit is destroyed (nothing to stop: its machine is gone), the member moves to m4, in its zone",
		world: running(move), gone: 5 * time.Minute,
		want: "destroy:1", phase: store.PhaseProgressing,
		msg:   "1 of 2 running the current spec, 1 ready; 1 old still to replace; member 1 moved from machine m2 (gone 5m0s) to m4",
		event: "member 1 moved from machine m2 (gone 5m0s) to m4",
	}, {
		name: "the old unit gone: the new one is created on m4, pinned",
		world: func(t *testing.T) *world {
			w := running(move)(t)
			w.act = w.act[:1]
			return w
		},
		gone: 5*time.Minute + 2*time.Second, moving: true,
		want: "create:1", pinned: "m4", phase: store.PhaseProgressing,
		msg: "1 of 2 running the current spec, 1 ready; member 1 moved from machine m2 (gone 5m0s) to m4",
	}, {
		name:  "without spread: any machine that matches, fewest members first (m3)",
		world: running(spec(deploy.MachineLossMove, false)), gone: 6 * time.Minute,
		want: "destroy:1", phase: store.PhaseProgressing,
		msg:   "1 of 2 running the current spec, 1 ready; 1 old still to replace; member 1 moved from machine m2 (gone 6m0s) to m3",
		event: "member 1 moved from machine m2 (gone 6m0s) to m3",
	}, {
		name:  "no machine in its zone: it waits, and the status says why",
		world: running(move), gone: 10 * time.Minute, live: []string{"m1", "m3"},
		want: "", phase: store.PhaseProgressing,
		msg: "1 of 2 running the current spec, 1 ready; member 1 cannot move: no machine in az=b; it waits for machine m2 (10.0.0.3)",
	}, {
		name:  "its zone not known (its machine left before this scheduler saw it): it waits, and says why",
		world: running(move), gone: 10 * time.Minute, noMeta: true,
		want: "", phase: store.PhaseProgressing,
		msg: "1 of 2 running the current spec, 1 ready; member 1 cannot move: the az of machine m2 is not known (it left before this scheduler started); it waits for machine m2 (10.0.0.3)",
	}, {
		name:  "onMachineLoss wait: it waits however long, no wake-up",
		world: running(wait), gone: time.Hour,
		want: "", phase: store.PhaseProgressing,
		msg: "1 of 2 running the current spec, 1 ready; member 1 waits for machine m2 (10.0.0.3), its data is there",
	}, {
		// During an update member 1's only fleet unit is the old version's,
		// pinned to the gone machine: it goes too, or the machine coming
		// back would start a second copy of member 1 under the old name.
		name: "gone for the grace during an update: the old version's unit on the gone machine is destroyed",
		world: func(t *testing.T) *world {
			v2 := spec(deploy.MachineLossMove, true)
			v2.Apps[0].Image = "docker://db:2"
			w := (&world{t: t, spec: v2}).with(members(t, move, "m1", "m2"), "launched", "active", "running")
			w.prev = &store.Status{Name: "db", Phase: store.PhaseProgressing, SpecHash: v2.Hash(0), Deployed: move.Hash(0)}
			return w
		},
		gone: 5 * time.Minute,
		want: "destroy:old1", phase: store.PhasePending,
		msg:   "rolling out: each member stops before its new version starts; 1 of 2 serving the old version; member 1 moved from machine m2 (gone 5m0s) to m4; replacing 1 member at a time (update.maxUnavailable)",
		event: "member 1 moved from machine m2 (gone 5m0s) to m4",
	}, {
		name:  "m2 comes back after the move: member 1 stays on m4, nothing goes back to m2",
		world: running(move, "m1", "m4"), live: []string{"m1", "m2", "m3", "m4"},
		want: "", phase: store.PhaseRunning,
		msg: "2 of 2 running",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := map[string]string{}
			liveIDs := tt.live
			if liveIDs == nil {
				liveIDs = []string{"m1", "m3", "m4"}
			}
			var ms []deploy.Machine
			for _, m := range moveMachines() {
				for _, id := range liveIDs {
					if m.ID == id {
						l[id] = ips[id]
						ms = append(ms, m)
					}
				}
			}
			mem := newMemory()
			for id, ip := range ips {
				mem.ips[id] = ip
			}
			for _, m := range moveMachines() {
				if m.ID != "m2" || !tt.noMeta {
					mem.meta[m.ID] = m.Metadata
				}
			}
			w := tt.world(t).pinned(l)
			if _, live := l["m2"]; !live {
				mem.goneSince["m2"] = now.Add(-tt.gone)
			}
			if tt.moving {
				mem.moves["db"] = map[int]*memberMove{1: {from: "m2", to: "m4", gone: 5 * time.Minute}}
			}
			pp := &passPlanner{opts: opts, mem: mem, now: now}
			w.placedWith(ms, pp.lossOf("db", w.spec))
			p := &planner{opts: opts, mem: mem, now: now, machines: l}
			for _, a := range w.act {
				if a.running() {
					mem.readySince[a.name()] = now.Add(-time.Minute)
				}
			}
			ops, st := p.plan(w.input())
			if got := opsString(ops, w.d.hash); got != tt.want {
				t.Errorf("ops = %q, want %q (%s)", got, tt.want, st.Message)
			}
			var on []string
			for _, o := range ops {
				if o.kind == opCreate {
					on = append(on, pinnedMachine(o.unit))
				}
			}
			if got := strings.Join(on, " "); got != tt.pinned {
				t.Errorf("created on %q, want %q", got, tt.pinned)
			}
			if st.Phase != tt.phase {
				t.Errorf("phase %s (%s), want %s", st.Phase, st.Message, tt.phase)
			}
			if st.Message != tt.msg {
				t.Errorf("message %q,\nwant    %q", st.Message, tt.msg)
			}
			if !p.next.Equal(tt.wake) {
				t.Errorf("wake-up at %s, want %s", p.next, tt.wake)
			}
			var evs []string
			for _, e := range p.events {
				evs = append(evs, e.Kind+": "+e.Message)
			}
			want := ""
			if tt.event != "" {
				want = store.EventMemberMoved + ": " + tt.event
			}
			if got := strings.Join(evs, "\n"); got != want {
				t.Errorf("events %q, want %q", got, want)
			}
		})
	}
}
