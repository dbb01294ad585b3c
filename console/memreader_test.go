package console

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coreos/fleet/machine"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/view"
	"github.com/kaylee-gitops/kaylee/view/viewtest"
)

// memReader is a console Reader in memory: no etcd, no fleet. The views'
// reads are viewtest.Mem's.
type memReader struct {
	viewtest.Mem
	history   map[string][]*store.HistoryEntry
	instances map[string]*store.Instance
	events    []store.Event
	leader    string
	leaderOf  error // LeaderID's error
}

var _ Reader = (*memReader)(nil)

func (m *memReader) LeaderID(context.Context, store.Election) (string, error) {
	return m.leader, m.leaderOf
}

// ListInstancesAt has one revision to answer with: the one in memory.
func (m *memReader) ListInstancesAt(context.Context, int64) (map[string]*store.Instance, error) {
	return m.instances, nil
}

func (m *memReader) History(_ context.Context, name string) ([]*store.HistoryEntry, error) {
	return m.history[name], nil
}

func (m *memReader) ListEvents(_ context.Context, name string, limit int) ([]store.Event, int64, error) {
	var out []store.Event
	for _, e := range m.events {
		if name == "" || e.Unit == name {
			out = append(out, e)
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, 7, nil
}

func (m *memReader) WatchChanges(ctx context.Context) <-chan int64 { return make(chan int64) }

func (m *memReader) WatchEvents(ctx context.Context, name string, rev int64) <-chan store.Event {
	return make(chan store.Event)
}

type machineList []machine.MachineState

func (l machineList) Machines() ([]machine.MachineState, error) { return l, nil }

// The console serves its state from any Reader: here one in memory, with
// no etcd and no fleet. What it shows is what view decides.
func TestStateFromMemoryReader(t *testing.T) {
	at := time.Date(2026, 12, 2, 17, 0, 0, 0, time.UTC)
	r := &memReader{
		Mem: viewtest.Mem{
			Units: []string{"adhoc", "web"},
			Statuses: map[string]*store.Status{"web": {Name: "web", Phase: store.PhaseRunning, SpecHash: "aa", Deployed: "aa", Desired: 1, Running: 1,
				Message: "1 of 1 running", Units: []store.UnitStatus{{Name: "k2:web:aa:0:0.service", MachineID: "m1", MachineIP: "10.0.0.1", ActiveState: "active", SubState: "running"}}}},
			Records: map[string]*store.SyncRecord{"team-a": {Source: "team-a", URL: "https://tok@git.example.com/u.git", Ref: "main", Revision: "9c2d11f0000",
				Inventory: map[string]string{"web": "units/web.yaml"}}},
			Attempts:  map[string]*store.SyncAttempt{"team-a": {Source: "team-a", Result: store.AttemptSynced}},
			Leaders:   map[string]string{"team-a": "agent-1"},
			Suspended: map[string]*store.Suspension{"adhoc": {Unit: "adhoc", Time: at, By: "ops@laptop"}},
		},
		history: map[string][]*store.HistoryEntry{"web": {{Unit: "web", Revision: 1, SpecHash: "aa", Outcome: store.OutcomeDeployed}}},
		events:  []store.Event{{Kind: store.EventStored, Unit: "web"}, {Kind: store.EventStored, Unit: "adhoc"}},
		leader:  "sched-1",
	}
	mux := http.NewServeMux()
	New(Config{Reader: r, Token: []byte("t0ken"), Hosts: []string{"example.com"}, Machines: machineList{{ID: "m1", PublicIP: "10.0.0.1", Metadata: map[string]string{"az": "a"}}}}).Register(mux)
	get := func(path string, v any) int {
		t.Helper()
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
			t.Fatalf("GET %s: %d %s: %v", path, rec.Code, rec.Body, err)
		}
		return rec.Code
	}

	var st State
	if code := get("/api/v1/state", &st); code != http.StatusOK {
		t.Fatalf("GET state: %d", code)
	}
	type row struct{ Name, State, Mark, Note string }
	var got []row
	for _, u := range st.Units {
		got = append(got, row{u.Name, u.State, u.GitMark(), u.StateNote})
	}
	want := []row{
		{"adhoc", store.PhaseSuspended, "-", "suspended by ops@laptop at 2026-12-02T17:00:00Z; no scheduler has taken it up yet (its last status follows)"},
		{"web", store.PhaseRunning, "team-a", ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("state's units\n got %q\nwant %q", got, want)
	}
	if st.Units[0].Message != view.NoSchedulerYet {
		t.Errorf("adhoc's message %q, want the pending one", st.Units[0].Message)
	}
	if len(st.Machines) != 1 || !st.Machines[0].Known || len(st.Machines[0].Replicas) != 1 || st.Machines[0].Replicas[0].State != "active/running" {
		t.Errorf("machines %+v, want m1 with web's replica", st.Machines)
	}
	if len(st.Sources) != 1 || st.Sources[0].Repo != "https://***@git.example.com/u.git" || st.Sources[0].Leader != "agent-1" {
		t.Errorf("sources %+v", st.Sources)
	}
	if st.Scheduler != "sched-1" || len(st.Problems) != 0 {
		t.Errorf("scheduler %q, problems %q", st.Scheduler, st.Problems)
	}

	var one unitDetail
	if code := get("/api/v1/units/web", &one); code != http.StatusOK || one.Source != "team-a" || !strings.Contains(string(one.Spec), `"name": "web"`) {
		t.Errorf("GET units/web: %d %+v", code, one)
	}
	var e apiError
	if code := get("/api/v1/units/nope", &e); code != http.StatusNotFound {
		t.Errorf("GET units/nope: %d %q, want 404", code, e.Error)
	}
	var hist []store.HistoryEntry
	if code := get("/api/v1/units/adhoc/history", &hist); code != http.StatusOK || len(hist) != 0 {
		t.Errorf("GET adhoc's history: %d %+v, want none", code, hist)
	}
	var evs []store.Event
	if code := get("/api/v1/units/web/events", &evs); code != http.StatusOK || len(evs) != 1 {
		t.Errorf("GET web's events: %d %+v", code, evs)
	}
	// Without a store, the API is read-only whatever the token.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/api/v1/units/web/restart", nil)
	req.Header.Set("Authorization", "Bearer t0ken")
	mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("POST restart without a store: %d, want 403", rec.Code)
	}

	// What cannot be read degrades to a problem noted.
	r.leaderOf = errors.New("etcd: no leader")
	if code := get("/api/v1/state", &st); code != http.StatusOK || len(st.Problems) != 1 || st.Problems[0] != "scheduler leader: etcd: no leader" {
		t.Errorf("GET state, leader unreadable: %d problems %q", code, st.Problems)
	}
}

// The stream, too, serves from a Reader in memory: its first message is
// the whole state.
func TestStreamFromMemoryReader(t *testing.T) {
	r := &memReader{Mem: viewtest.Mem{Units: []string{"web"}}, leader: "sched-1"}
	mux := http.NewServeMux()
	New(Config{Reader: r}).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/v1/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	if !sc.Scan() || sc.Text() != "event: state" || !sc.Scan() {
		t.Fatalf("first line %q, want event: state (%v)", sc.Text(), sc.Err())
	}
	var st State
	if err := json.Unmarshal([]byte(strings.TrimPrefix(sc.Text(), "data: ")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Units) != 1 || st.Units[0].State != store.PhasePending || st.Scheduler != "sched-1" {
		t.Errorf("streamed state: %+v", st)
	}
}
