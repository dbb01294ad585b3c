package fleet

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/notify"
	"github.com/kaylee-gitops/kaylee/store"
)

// notifications is a real HTTP receiver of Kaylee's notifications.
type notifications struct {
	URL string
	mu  sync.Mutex
	got []notify.Event
}

func newNotifications(t *testing.T) *notifications {
	n := &notifications{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var e notify.Event
		if err := json.Unmarshal(b, &e); err != nil {
			t.Errorf("notification: %v: %s", err, b)
		}
		n.mu.Lock()
		n.got = append(n.got, e)
		n.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	n.URL = srv.URL
	return n
}

func (n *notifications) find(unit, result string) (notify.Event, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, e := range n.got {
		if e.Unit == unit && e.Result == result {
			return e, true
		}
	}
	return notify.Event{}, false
}

// putEvidence writes, as each machine's `kaylee evidence` would, what the
// replicas of spec left there when they stopped.
func (h *harness) putEvidence(spec *deploy.Spec, hash string, journal ...string) {
	h.t.Helper()
	h.putEvidenceAt(spec, hash, time.Now().UTC(), journal...)
}

// putEvidenceAt is putEvidence with the time the replicas stopped.
func (h *harness) putEvidenceAt(spec *deploy.Spec, hash string, at time.Time, journal ...string) {
	h.t.Helper()
	ms, err := h.api.Machines()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, u := range render(h.t, spec) {
		if !strings.Contains(u.Name, ":"+hash+":") {
			h.t.Fatalf("rendered %s, the scheduler's spec hash is %s", u.Name, hash)
		}
		for _, m := range ms {
			e := &store.Evidence{Unit: spec.Name, FleetUnit: u.Name, Machine: m.ID, Result: "exit-code", ExitCode: "exited", ExitStatus: "125",
				Restarts: 2, Journal: journal, Time: at}
			if err := h.store.PutEvidence(context.Background(), e, clientv3.NoLease); err != nil {
				h.t.Fatal(err)
			}
		}
	}
}

// A rollout that fails by a restart loop on fleet's engine: the failing
// replica's evidence, as its machine's publisher wrote it, reaches the
// status (message and JSON), the rollout-failed event and a notification
// receiver, with the unit's env values hidden.
func TestRolloutFailureCarriesEvidence(t *testing.T) {
	t.Parallel() // its own etcd and fleet (newHarness): it waits on fleet's engine, not the CPU
	h := newHarness(t, fleetsim.Machines(3))
	h.serve(h.api, testOptions)
	rcv := newNotifications(t)
	f, err := notify.NewFollower(h.store, []notify.Target{{Endpoint: notify.Endpoint{URL: rcv.URL}}}, notify.FollowOptions{ID: "n", TTL: 2 * time.Second,
		FlushEvery: 50 * time.Millisecond, Notifier: notify.Options{Log: slog.New(slog.DiscardHandler), FirstBackoff: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	v1 := h.put(replicated(3, "docker://web:1"))
	h.waitStatus("web", store.PhaseRunning, v1, 60*time.Second)

	bad := replicated(3, "docker://sim-fail/web:2")
	bad.Env = []deploy.EnvVar{{Name: "TOKEN", Value: "s3cret-token"}}
	badHash := bad.Hash(0)
	const last = "docker: Unable to find image 'sim-fail/web:2' locally"
	h.putEvidence(bad, badHash, "starting web 2", "using token s3cret-token", last)
	h.put(bad)
	st := h.waitStatus("web", store.PhaseFailed, badHash, 90*time.Second)
	want := `is in a restart loop: systemd restarted it 2 times (activating/auto-restart); on the machine: exit status 125; last line: "` + last + `"; the new replicas are removed`
	if !strings.Contains(st.Message, want) {
		t.Errorf("failed status message:\n%s\nwant it to hold:\n%s", st.Message, want)
	}
	b, _ := json.Marshal(st)
	if st.Evidence == nil {
		t.Fatalf("status JSON has no evidence: %s", b)
	}
	if st.Evidence.ExitStatus != "125" || !strings.Contains(string(b), `"journal":["starting web 2","using token ***","docker: Unable`) {
		t.Errorf("status JSON's evidence: %s", b)
	}
	if strings.Contains(string(b), "s3cret") {
		t.Errorf("the status holds the env value: %s", b)
	}
	if !strings.Contains(st.Evidence.FleetUnit, ":"+badHash+":") || st.Evidence.Machine == "" {
		t.Errorf("evidence of %s on %q, want a replica of %s", st.Evidence.FleetUnit, st.Evidence.Machine, badHash)
	}

	// The event, and the notification made of it.
	evs, _, err := h.store.ListEvents(context.Background(), "web", 100)
	if err != nil {
		t.Fatal(err)
	}
	var failed *store.Event
	for i := range evs {
		if evs[i].Kind == store.EventRolloutFailed {
			failed = &evs[i]
		}
	}
	if failed == nil || failed.Evidence == nil || failed.Evidence.ExitStatus != "125" || !strings.Contains(failed.Message, last) {
		t.Fatalf("rollout-failed event: %+v", failed)
	}
	var n notify.Event
	eventually(t, 15*time.Second, func() (bool, string) {
		var ok bool
		n, ok = rcv.find("web", "failed")
		return ok, "no rollout failed notification"
	})
	nb, _ := json.Marshal(n)
	if n.Evidence == nil || n.Evidence.ExitStatus != "125" || len(n.Evidence.Journal) != 3 || n.Evidence.Journal[2] != last ||
		!strings.Contains(n.Reason, "exit status 125") || strings.Contains(string(nb), "s3cret") {
		t.Errorf("notification: %s", nb)
	}
}

// Evidence published after the scheduler saw the rollout fail (the
// publisher reads its directory every second) still reaches the status.
func TestRolloutFailureEvidenceLate(t *testing.T) {
	t.Parallel() // its own etcd and fleet (newHarness): it waits on fleet's engine, not the CPU
	h := newHarness(t, fleetsim.Machines(3))
	h.serve(h.api, testOptions)
	v1 := h.put(replicated(2, "docker://web:1"))
	h.waitStatus("web", store.PhaseRunning, v1, 60*time.Second)
	bad := replicated(2, "docker://sim-fail/web:2")
	// What an earlier rollout of the same spec left under the same fleet
	// unit names, two hours ago, is not this rollout's evidence.
	h.putEvidenceAt(bad, bad.Hash(0), time.Now().Add(-2*time.Hour).UTC(), "an earlier rollout's line")
	badHash := h.put(bad)
	st := h.waitStatus("web", store.PhaseFailed, badHash, 90*time.Second)
	if st.Evidence != nil || !strings.Contains(st.Message, "see its journal on that machine") {
		t.Fatalf("failed with no evidence of this rollout published: %+v %q", st.Evidence, st.Message)
	}
	h.putEvidence(bad, badHash, "late line")
	eventually(t, 20*time.Second, func() (bool, string) {
		st, err := h.store.GetStatus(context.Background(), "web")
		if err != nil {
			return false, err.Error()
		}
		return st.Evidence != nil && strings.Contains(st.Message, `on the machine: exit status 125; last line: "late line"`), st.Message
	})
}
