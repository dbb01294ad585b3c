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

// Issue 27 on fleet's engine and agents: web (3 replicas) dependsOn db,
// db slow to become ready (minReady 4s). Stored together, web's fleet
// units are created only once db's status is running, and web's status
// said it waited for db meanwhile. An update of db that fails holds an
// update of web with db's reason, web's old replicas serving. Both
// removed: web's replicas go while db still runs; db's go after.
func TestDependsOnOnFleet(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fleetsim.Machines(3))
	stops := &stopTimes{API: h.api, store: h.store, first: map[string]time.Time{}}
	h.serve(stops, testOptions)
	ctx := context.Background()
	db := func(image string) *deploy.Spec {
		return &deploy.Spec{Name: "db", Apps: []deploy.App{{Image: image}}, Update: &deploy.Update{MinReady: "4s"}}
	}
	web := func(image string) *deploy.Spec {
		s := replicated(3, image)
		s.DependsOn = []string{"db"}
		return s
	}

	// A sampler: a web fleet unit exists only once db's status is running.
	quit, violation := make(chan struct{}), make(chan string, 1)
	go func() {
		defer close(violation)
		for {
			select {
			case <-quit:
				return
			case <-time.After(100 * time.Millisecond):
			}
			st, _ := h.store.GetStatus(ctx, "db")
			units, err1 := h.api.Units()
			states, err2 := h.api.UnitStates()
			if err1 != nil || err2 != nil {
				continue
			}
			w := viewOf("web", units, states)
			if len(w.units) > 0 && len(w.running) == 0 && (st == nil || st.Phase != store.PhaseRunning) {
				violation <- fmt.Sprintf("web's fleet units %v exist while db's status is %+v", w, st)
				return
			}
		}
	}()
	notes := h.sampleMessages("web")

	d1, w1 := h.put(db("docker://db:1")), h.put(web("docker://web:1"))
	h.waitStatus("db", store.PhaseRunning, d1, 60*time.Second)
	h.waitStatus("web", store.PhaseRunning, w1, 60*time.Second)
	close(quit)
	if msg := <-violation; msg != "" {
		t.Fatal(msg)
	}
	if seen := notes(); !strings.Contains(seen, "waiting for db (") {
		t.Errorf("web's status never said it waited for db; it said:\n%s", seen)
	}

	// db's update fails; web's update is held with db's reason.
	dBad := h.put(db("docker://sim-fail/db:2"))
	failed := h.waitStatus("db", store.PhaseFailed, dBad, 90*time.Second)
	w2 := h.put(web("docker://web:2"))
	var st *store.Status
	eventually(t, 30*time.Second, func() (bool, string) {
		st = h.status("web")
		return st != nil && st.SpecHash == w2 && st.Phase == store.PhasePending && strings.HasPrefix(st.Message, "held: dependency db failed: "), fmt.Sprintf("%+v", st)
	})
	if !strings.Contains(st.Message, failed.Message) || !strings.Contains(st.Message, "the old version keeps running (3 serving) until then") || st.WaitingFor != "db" {
		t.Errorf("web held: %q (waitingFor %q); want db's message %q and the old version serving", st.Message, st.WaitingFor, failed.Message)
	}
	if v := h.view("web"); v.runningWithHash(w1) != 3 || len(v.units) != 3 {
		t.Errorf("web while held: %v; want its 3 old replicas, nothing new", v)
	}
	// db fixed: web's update goes on.
	d3 := h.put(db("docker://db:3"))
	h.waitStatus("db", store.PhaseRunning, d3, 60*time.Second)
	h.waitStatus("web", store.PhaseRunning, w2, 60*time.Second)

	// Both removed in one go: web's fleet units are stopped before db's.
	h.waitUnits("web", w2, 3, 30*time.Second)
	quit, violation = make(chan struct{}), make(chan string, 1)
	go func() {
		defer close(violation)
		for {
			select {
			case <-quit:
				return
			case <-time.After(100 * time.Millisecond):
			}
			units, err1 := h.api.Units()
			states, err2 := h.api.UnitStates()
			if err1 != nil || err2 != nil {
				continue
			}
			w, d := viewOf("web", units, states), viewOf("db", units, states)
			if n := len(w.running); n > 0 && len(d.running) == 0 {
				violation <- fmt.Sprintf("during the removal, %d web replica(s) ran while db ran nowhere: web %v; db %v", n, w, d)
				return
			}
		}
	}()
	// One transaction, as sync applies a commit that removes both files:
	// two deletes let a pass between them see db removed and web still
	// wanted, and db then goes at once (nothing removed depends on it).
	if err := h.store.ApplyUnits(ctx, nil, []string{"db", "web"}, store.Fence{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() (bool, string) {
		w, d := h.view("web"), h.view("db")
		return len(w.units) == 0 && len(d.units) == 0 && h.status("db") == nil, fmt.Sprintf("web %v; db %v; db's status %+v", w, d, h.status("db"))
	})
	close(quit)
	if msg := <-violation; msg != "" {
		t.Fatal(msg)
	}
	stops.mu.Lock()
	defer stops.mu.Unlock()
	var lastWeb, firstDB time.Time
	for name, at := range stops.first {
		switch {
		case strings.Contains(name, ":web:") && at.After(lastWeb):
			lastWeb = at
		case strings.Contains(name, ":db:"+d3+":") && (firstDB.IsZero() || at.Before(firstDB)):
			firstDB = at
		}
	}
	if lastWeb.IsZero() || firstDB.IsZero() || !firstDB.After(lastWeb) {
		t.Fatalf("db's fleet unit was told to stop at %s, web's last at %s: want db after web", firstDB.Format(time.StampMilli), lastWeb.Format(time.StampMilli))
	}
}
