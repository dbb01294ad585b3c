package console

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/view"
)

const (
	unitWeb = "name: web\nreplicas: 3\nmaxReplicasPerHost: 1\napps:\n- image: docker://nginx:1\n"
	unitDB  = "name: db\napps:\n- image: docker://postgres:16\n"
)

// The read API: units with status, fleet units, machines and git source;
// one unit with its spec; history; machines with metadata; sources; events.
func TestReadAPI(t *testing.T) {
	w := newWorld(t)
	rev := w.commit(map[string]string{"units/web.yaml": unitWeb, "units/db.yaml": unitDB})
	w.waitPhase("web", store.PhaseRunning, 60*time.Second)
	w.waitPhase("db", store.PhaseRunning, 60*time.Second)

	var units []view.Unit
	if code := w.get("/api/v1/units", &units); code != http.StatusOK || len(units) != 2 {
		t.Fatalf("GET units: %d, %d units", code, len(units))
	}
	web := units[1]
	if web.Name != "web" || web.Running != 3 || web.Desired != 3 || web.Source != "team-a" || web.File != "units/web.yaml" || web.Revision != rev {
		t.Errorf("web = %+v (source %q file %q revision %q), want 3/3 from team-a units/web.yaml at %s", web.Status, web.Source, web.File, web.Revision, rev)
	}
	ips := map[string]bool{}
	for _, u := range web.Units {
		if u.MachineIP == "" || u.ActiveState != "active" {
			t.Errorf("fleet unit %+v: want a machine and its state", u)
		}
		ips[u.MachineIP] = true
	}
	if len(ips) != 3 {
		t.Errorf("web's replicas on %v, want 3 machines (maxReplicasPerHost 1)", ips)
	}

	var one unitDetail
	if code := w.get("/api/v1/units/web", &one); code != http.StatusOK || !strings.Contains(string(one.Spec), `"image": "docker://nginx:1"`) {
		t.Errorf("GET units/web: %d spec %s", code, one.Spec)
	}
	var e apiError
	if code := w.get("/api/v1/units/nope", &e); code != http.StatusNotFound || !strings.Contains(e.Error, `"nope"`) {
		t.Errorf("GET units/nope: %d %q, want 404 naming it", code, e.Error)
	}
	var hist []store.HistoryEntry
	if code := w.get("/api/v1/units/web/history", &hist); code != http.StatusOK || len(hist) != 1 || hist[0].Outcome != store.OutcomeDeployed || hist[0].GitRevision != rev {
		t.Errorf("GET history: %d %+v, want one deployed entry from %s", code, hist, rev)
	}
	if code := w.get("/api/v1/units/nope/history", &e); code != http.StatusNotFound {
		t.Errorf("GET units/nope/history: %d, want 404", code)
	}

	var ms []Machine
	if code := w.get("/api/v1/machines", &ms); code != http.StatusOK || len(ms) != 3 {
		t.Fatalf("GET machines: %d %+v", code, ms)
	}
	for _, m := range ms {
		if !m.Known || m.Metadata["az"] == "" || len(m.Replicas) == 0 {
			t.Errorf("machine %+v: want fleet's machine with its az and replicas", m)
		}
	}

	var srcs []view.Source
	if code := w.get("/api/v1/sources", &srcs); code != http.StatusOK || len(srcs) != 1 || srcs[0].Revision != rev || srcs[0].Attempt.Result != store.AttemptSynced {
		t.Errorf("GET sources: %d %+v", code, srcs)
	}
	var src view.Source
	if code := w.get("/api/v1/sources/team-a", &src); code != http.StatusOK || len(src.Units) != 2 {
		t.Errorf("GET sources/team-a: %d %+v", code, src)
	}

	var evs []store.Event
	if code := w.get("/api/v1/events?name=web", &evs); code != http.StatusOK {
		t.Fatalf("GET events: %d", code)
	}
	kinds := map[string]int{}
	for _, ev := range evs {
		kinds[ev.Kind]++
	}
	if kinds[store.EventStored] != 1 || kinds[store.EventCreated] != 3 || kinds[store.EventRolloutSucceeded] != 1 {
		t.Errorf("web's events: %v, want stored, 3 created, rollout-succeeded", kinds)
	}
	if code := w.get("/api/v1/events?limit=x", &e); code != http.StatusBadRequest {
		t.Errorf("limit=x: %d, want 400", code)
	}
	var st State
	if code := w.get("/api/v1/state", &st); code != http.StatusOK || len(st.Units) != 2 || len(st.Machines) != 3 || st.Scheduler != "sched-1" {
		t.Errorf("GET state: %d units %d machines %d scheduler %q", code, len(st.Units), len(st.Machines), st.Scheduler)
	}
	if code := w.get("/api/v2/units", &e); code != http.StatusNotFound || !strings.Contains(e.Error, "GET /api/v1/") {
		t.Errorf("GET /api/v2/units: %d %q", code, e.Error)
	}

	// A page of another site that rebinds its name to the console's address
	// reads nothing: only IP addresses, localhost and configured names pass.
	for host, want := range map[string]int{"evil.example:80": http.StatusMisdirectedRequest, "localhost:9520": http.StatusOK,
		"127.0.0.1": http.StatusOK, "[::1]:9520": http.StatusOK} {
		req, _ := http.NewRequest("GET", w.srv.URL+"/api/v1/units", nil)
		req.Host = host
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, r.StatusCode, want)
		}
	}
	mux := http.NewServeMux()
	New(Config{Store: w.store, Hosts: []string{"kaylee.example.com"}}).Register(mux)
	req := httptest.NewRequest("GET", "/api/v1/units", nil)
	req.Host = "kaylee.example.com"
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("a configured host name: %d %s", rec.Code, rec.Body.String())
	}
}

// Actions need the token, and a unit git owns is refused as the CLI
// refuses it, unless forced.
func TestActions(t *testing.T) {
	w := newWorld(t)
	w.commit(map[string]string{"units/web.yaml": unitWeb})
	w.waitPhase("web", store.PhaseRunning, 60*time.Second)
	ctx := context.Background()
	if _, err := w.store.PutUnit(ctx, &mustSpec(t, unitDB).Spec, store.Fence{}); err != nil { // a unit of kaylee run
		t.Fatal(err)
	}

	var e apiError
	if code := w.do("POST", "/api/v1/units/db/restart", "", &e); code != http.StatusUnauthorized {
		t.Errorf("restart without a token: %d %q, want 401", code, e.Error)
	}
	if code := w.do("POST", "/api/v1/units/db/restart", "wrong", &e); code != http.StatusUnauthorized {
		t.Errorf("restart with a wrong token: %d, want 401", code)
	}
	if n, _ := w.store.RestartCounters(ctx); n["db"] != 0 {
		t.Fatalf("refused restarts changed the counter: %v", n)
	}

	var res actionResult
	if code := w.do("POST", "/api/v1/units/db/restart", token, &res); code != http.StatusAccepted || !strings.Contains(res.Message, "restart 1") {
		t.Errorf("restart db: %d %+v", code, res)
	}
	if code := w.do("POST", "/api/v1/units/web/restart", token, &e); code != http.StatusConflict ||
		!strings.Contains(e.Error, `unit "web" is owned by units/web.yaml in git source "team-a"`) || !strings.Contains(e.Error, "force=true") {
		t.Errorf("restart of a git-owned unit: %d %q, want 409 naming the source and force=true", code, e.Error)
	}
	if n, _ := w.store.RestartCounters(ctx); n["web"] != 0 || n["db"] != 1 {
		t.Errorf("restart counters %v, want db 1, web untouched", n)
	}
	if code := w.do("POST", "/api/v1/units/web/restart?force=true", token, &res); code != http.StatusAccepted {
		t.Errorf("forced restart: %d %+v", code, res)
	}

	if code := w.do("POST", "/api/v1/units/web/suspend", token, &res); code != http.StatusOK || !strings.Contains(res.Message, "suspended") {
		t.Errorf("suspend: %d %+v", code, res)
	}
	if sus, _ := w.store.Suspensions(ctx); sus["web"] == nil || !strings.HasPrefix(sus["web"].By, "api@") {
		t.Errorf("suspensions %v: want web, by the API's client", sus)
	}
	if code := w.do("POST", "/api/v1/units/web/resume", token, &res); code != http.StatusOK || res.Message != "web resumed" {
		t.Errorf("resume: %d %+v", code, res)
	}
	if code := w.do("POST", "/api/v1/units/nope/suspend", token, &e); code != http.StatusNotFound {
		t.Errorf("suspend nope: %d, want 404", code)
	}
	if code := w.do("POST", "/api/v1/units/web/rollback", token, &e); code != http.StatusConflict || !strings.Contains(e.Error, "no earlier revision") {
		t.Errorf("rollback with one revision: %d %q, want 409", code, e.Error)
	}

	// Sync now needs a leader of the source's sync to fetch.
	if code := w.do("POST", "/api/v1/sources/team-a/sync", token, &e); code != http.StatusConflict || !strings.Contains(e.Error, "no process leads the sync of team-a") {
		t.Errorf("sync now without a leader: %d %q, want 409", code, e.Error)
	}
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	leading := make(chan struct{})
	go func() {
		_ = w.store.Lead(tctx, store.SourceElection("team-a"), "sync-1", 2*time.Second, slog.New(slog.DiscardHandler), func(lctx context.Context, _ store.Fence) error {
			close(leading)
			<-lctx.Done()
			return nil
		})
	}()
	<-leading
	// Sync now writes the trigger the source's leader watches.
	triggers := w.store.WatchTriggers(tctx, "team-a")
	time.Sleep(200 * time.Millisecond) // the watch is set up
	if code := w.do("POST", "/api/v1/sources/team-a/sync", token, &res); code != http.StatusAccepted {
		t.Errorf("sync now: %d %+v", code, res)
	}
	select {
	case <-triggers:
	case <-tctx.Done():
		t.Error("sync now wrote no trigger")
	}
	// force=true: through the freezes, once, as kaylee sync --now --force.
	if code := w.do("POST", "/api/v1/sources/team-a/sync?force=true", token, &res); code != http.StatusAccepted {
		t.Errorf("sync now, forced: %d %+v", code, res)
	}
	if ov, err := w.store.FreezeOverrides(context.Background()); err != nil || ov["team-a"] == nil || !strings.HasPrefix(ov["team-a"].By, "api@") {
		t.Errorf("sync now, forced: overrides %v %v", ov, err)
	}
	if code := w.do("POST", "/api/v1/sources/nope/sync", token, &e); code != http.StatusNotFound {
		t.Errorf("sync nope: %d, want 404", code)
	}

	// What people asked for is in the event log, with who asked.
	var evs []store.Event
	w.get("/api/v1/events?name=web", &evs)
	asked := map[string]string{}
	for _, ev := range evs {
		asked[ev.Kind] = ev.By
	}
	var srcEvs []store.Event
	w.get("/api/v1/events?name=team-a", &srcEvs)
	for _, ev := range srcEvs {
		if ev.Kind == store.EventSyncRequested {
			asked[ev.Kind] = ev.By
		}
	}
	for _, k := range []string{store.EventRestartRequested, store.EventSuspended, store.EventResumed, store.EventSyncRequested} {
		if !strings.HasPrefix(asked[k], "api@") {
			t.Errorf("no %s event by the API's client: %v", k, asked)
		}
	}

	// Without a token the API is read-only.
	mux := http.NewServeMux()
	New(Config{Store: w.store}).Register(mux)
	req, _ := http.NewRequest("POST", "/api/v1/units/db/restart", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "read-only") {
		t.Errorf("action on a console without a token: %d %s", rec.Code, rec.Body.String())
	}
}

// The stream sends the state at once, again after each change, and each
// new event.
func TestStream(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", w.srv.URL+"/api/v1/stream", nil)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if ct := r.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	sse := bufio.NewScanner(r.Body)
	sse.Buffer(make([]byte, 1<<20), 1<<20)
	next := func() (string, string) {
		var event, data string
		for sse.Scan() {
			line := sse.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = line[7:]
			case strings.HasPrefix(line, "data: "):
				data = line[6:]
			case line == "" && event != "":
				return event, data
			}
		}
		t.Fatalf("stream ended: %v", sse.Err())
		return "", ""
	}
	if ev, data := next(); ev != "state" || !strings.Contains(data, `"units":[]`) {
		t.Fatalf("first message %s %s, want the empty state", ev, data)
	}
	w.commit(map[string]string{"units/db.yaml": unitDB})
	sawUnit, sawEvent := false, false
	for !sawUnit || !sawEvent {
		ev, data := next()
		switch ev {
		case "state":
			var st State
			if err := json.Unmarshal([]byte(data), &st); err != nil {
				t.Fatal(err)
			}
			sawUnit = sawUnit || len(st.Units) == 1 && st.Units[0].Name == "db"
		case "event":
			var e store.Event
			if err := json.Unmarshal([]byte(data), &e); err != nil {
				t.Fatal(err)
			}
			sawEvent = sawEvent || e.Kind == store.EventStored && e.Unit == "db"
		}
	}
}
