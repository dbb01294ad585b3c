package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/notify"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// receiver is a real HTTP endpoint that records the notifications it gets
// and checks their signature.
type receiver struct {
	t      *testing.T
	secret []byte
	mu     gosync.Mutex
	events []notify.Event
	bad    int
	URL    string
}

func newReceiver(t *testing.T, secret string) *receiver {
	r := &receiver{t: t, secret: []byte(secret)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if !notify.Verify(r.secret, body, req.Header.Get(notify.SignatureHeader)) {
			r.bad++
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var e notify.Event
		if err := json.Unmarshal(body, &e); err != nil {
			r.bad++
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.events = append(r.events, e)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// has waits for an event matching ok.
func (r *receiver) has(what string, ok func(notify.Event) bool) notify.Event {
	r.t.Helper()
	var found notify.Event
	waitFor(r.t, 60*time.Second, "notification: "+what, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, e := range r.events {
			if ok(e) {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// leads waits until p logs that it became leader of election e.
func leads(t *testing.T, p *proc, e store.Election) bool {
	return strings.Contains(p.errb.String(), `msg="became leader" election=`+string(e)+" ")
}

// Roles coexist: a scheduler (kaylee server), two sync loops for two team
// repositories and an agent with both sources in a config file, all on one
// etcd, all converge; when the leader of one role stops, another process
// takes that role over while the other roles' leaders go on.
func TestRolesCoexist(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	startFleet(t, e, 2)
	repoA, repoB := gittest.NewRepo(t), gittest.NewRepo(t)
	repoA.Write(map[string]string{"units/web.yaml": unitWeb})
	repoA.Commit("a1")
	repoB.Write(map[string]string{"api.yaml": unitAPI})
	repoB.Commit("b1")
	urlA, urlB := repoA.ServeHTTP("", ""), repoB.ServeHTTP("", "")
	dir := t.TempDir()
	rcv := newReceiver(t, "notify-secret")
	rcvServer := newReceiver(t, "notify-secret")
	files := map[string]string{
		"server.yaml":   "notifications:\n- url: " + rcvServer.URL + "\n  secretFile: notify.secret\n  events: [rollout]\n",
		"hook.secret":   "hook-secret\n",
		"notify.secret": "notify-secret\n",
		"kaylee.yaml": fmt.Sprintf(`sources:
- name: team-a
  repo: %s
  path: units
  interval: 1s
- name: team-b
  repo: %s
  interval: 1h
notifications:
- url: %s
  secretFile: notify.secret
`, urlA, urlB, rcv.URL),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	server := startKaylee(t, env, "server", "--min-ready", "300ms", "--lease-ttl", "2s", "--config", filepath.Join(dir, "server.yaml"))
	waitFor(t, 20*time.Second, "server leads the scheduler", func() bool { return leads(t, server, store.SchedulerElection) })
	syncA := startKaylee(t, env, "sync", "--repo", urlA, "--path", "units", "--source", "team-a", "--interval", "1s", "--lease-ttl", "2s", "--cache-dir", t.TempDir())
	syncB := startKaylee(t, env, "sync", "--repo", urlB, "--source", "team-b", "--interval", "1s", "--lease-ttl", "2s", "--cache-dir", t.TempDir())
	waitFor(t, 20*time.Second, "each sync loop leads its source", func() bool {
		return leads(t, syncA, store.SourceElection("team-a")) && leads(t, syncB, store.SourceElection("team-b"))
	})
	addr := freePort(t)
	agent := startKaylee(t, env, "agent", "--config", filepath.Join(dir, "kaylee.yaml"), "--cache-dir", t.TempDir(), "--listen", addr,
		"--webhook-secret-file", filepath.Join(dir, "hook.secret"), "--min-ready", "300ms", "--lease-ttl", "2s")

	s := store.New(e.Client(t), store.DefaultPrefix)
	running := func(name, image string) {
		t.Helper()
		waitFor(t, 60*time.Second, name+" running "+image, func() bool {
			st, err := s.GetStatus(context.Background(), name)
			u, uerr := s.GetUnit(context.Background(), name)
			return err == nil && uerr == nil && st.Phase == store.PhaseRunning && st.SpecHash == u.Spec.Hash(0) && strings.Contains(string(u.Raw), image)
		})
	}
	running("web", "nginx:1")
	running("api", "docker://api")
	rcvServer.has("kaylee server tells of api's first rollout", func(e notify.Event) bool {
		return e.Kind == "rollout" && e.Unit == "api" && e.Result == "succeeded" && e.Source == "team-b"
	})
	waitFor(t, 30*time.Second, "the agent is ready", func() bool { code, _ := get(addr, "/readyz"); return code == 200 })
	for _, p := range []*proc{agent} {
		for _, el := range []store.Election{store.SchedulerElection, store.SourceElection("team-a"), store.SourceElection("team-b")} {
			if leads(t, p, el) {
				t.Fatalf("the agent leads %s although another process does", el)
			}
		}
	}

	// The scheduler's leader stops: the agent schedules, while the sync
	// loop of team-a goes on syncing its commits.
	if code, err := server.Stop(); code != 0 || err != nil {
		t.Fatalf("stopping the server: %d %v", code, err)
	}
	repoA.Write(map[string]string{"units/web.yaml": unitWeb2})
	revA := repoA.Commit("a2")
	running("web", "nginx:2")
	if !leads(t, agent, store.SchedulerElection) || leads(t, agent, store.SourceElection("team-a")) {
		t.Fatalf("after the server stopped, the agent should schedule and not sync team-a:\n%s", agent.errb.String())
	}
	if rec, err := s.GetSyncRecord(context.Background(), "team-a"); err != nil || rec.Revision != revA {
		t.Fatalf("team-a's record: %+v %v, want %s", rec, err, revA)
	}
	rcv.has("rollout of web started", func(e notify.Event) bool { return e.Kind == "rollout" && e.Unit == "web" && e.Result == "started" })
	ok := rcv.has("rollout of web succeeded", func(e notify.Event) bool {
		return e.Kind == "rollout" && e.Unit == "web" && e.Result == "succeeded" && e.Source == "team-a"
	})
	if ok.Revision != revA {
		t.Errorf("the rollout notification names git revision %q, want %s", ok.Revision, revA)
	}

	// team-b's sync loop stops: the agent takes team-b over; a webhook
	// naming team-b's repository triggers team-b only.
	if code, err := syncB.Stop(); code != 0 || err != nil {
		t.Fatalf("stopping sync b: %d %v", code, err)
	}
	waitFor(t, 20*time.Second, "the agent leads team-b", func() bool { return leads(t, agent, store.SourceElection("team-b")) })
	repoB.Write(map[string]string{"api.yaml": "name: api\nreplicas: 2\napps:\n- image: docker://api:2\n"})
	revB := repoB.Commit("b2")
	body := `{"after":"` + revB + `","repository":{"clone_url":"` + urlB + `"}}`
	if code := postHook(t, addr, "hook-secret", body); code != http.StatusAccepted {
		t.Fatalf("webhook for team-b: %d", code)
	}
	if code := postHook(t, addr, "hook-secret", `{"repository":{"clone_url":"https://example.com/nobody.git"}}`); code != http.StatusNotFound {
		t.Fatalf("webhook for a repository no source follows: %d, want 404", code)
	}
	running("api", "docker://api:2")
	rcv.has("team-b synced", func(e notify.Event) bool {
		return e.Kind == "sync" && e.Source == "team-b" && e.Revision == revB && e.Result == "synced" && e.Updated == 1
	})

	// team-a's sync loop stops too: the agent alone syncs both sources and
	// schedules.
	if code, err := syncA.Stop(); code != 0 || err != nil {
		t.Fatalf("stopping sync a: %d %v", code, err)
	}
	waitFor(t, 20*time.Second, "the agent leads team-a", func() bool { return leads(t, agent, store.SourceElection("team-a")) })
	repoA.Write(map[string]string{"units/web.yaml": unitWeb})
	revA = repoA.Commit("a3")
	running("web", "nginx:1")

	// kaylee sources shows both, with the revision each applied.
	r := kaylee(t, env, "sources")
	for _, want := range []string{"team-a", revA[:7], "team-b", revB[:7], "synced"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("kaylee sources lacks %q:\n%s", want, r.stdout)
		}
	}
	r = kaylee(t, env, "sources", "team-b", "-o", "json")
	var src struct {
		Name, Revision string
		Units          []string
		LastAttempt    struct{ Result, Leader string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &src); err != nil || src.Revision != revB || strings.Join(src.Units, ",") != "api" || src.LastAttempt.Result != "synced" {
		t.Fatalf("sources team-b -o json: %v\n%s%s", err, r.stdout, r.err)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if rcv.bad > 0 {
		t.Errorf("%d notifications had a bad signature or body", rcv.bad)
	}
}

// One source whose git server hangs delays no other: the good source is
// synced at once, the hanging one fails its pass at its timeout, and
// kaylee sources says so.
func TestSlowSourceDelaysNoOther(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var hung []net.Conn
	var mu gosync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			hung = append(hung, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range hung {
			c.Close()
		}
	})
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"web.yaml": unitWeb})
	rev := repo.Commit("first")
	cfg := writeConfig(t, t.TempDir(), "kaylee.yaml", fmt.Sprintf(`sources:
- name: hangs
  repo: http://%s/units.git
  timeout: 12s
  interval: 1h
- name: good
  repo: %s
  interval: 1h
- name: paused
  repo: %s
  suspend: true
`, ln.Addr(), repo.FileURL(), repo.FileURL()))
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	startKaylee(t, env, "sync", "--config", cfg, "--cache-dir", t.TempDir(), "--lease-ttl", "2s")
	s := store.New(e.Client(t), store.DefaultPrefix)
	waitFor(t, 10*time.Second, "the good source synced", func() bool {
		r, err := s.GetSyncRecord(context.Background(), "good")
		return err == nil && r.Revision == rev
	})
	waitFor(t, 40*time.Second, "the hanging source's pass failed at its timeout", func() bool {
		a, err := s.ListSyncAttempts(context.Background())
		return err == nil && a["hangs"] != nil && a["hangs"].Result == store.AttemptFailed
	})
	if r := kaylee(t, env, "sources", "paused"); !strings.Contains(r.stdout, "Suspended:     true") || !strings.Contains(r.stdout, "suspend: true in "+cfg+":11: sources[2].suspend") {
		t.Fatalf("kaylee sources paused:\n%s%s", r.stdout, r.err)
	}
	if _, err := s.GetSyncRecord(context.Background(), "paused"); err == nil {
		t.Fatal("a suspended source synced")
	}
	r := kaylee(t, env, "sources", "hangs")
	if !strings.Contains(r.stdout, "Last attempt:  failed") || !strings.Contains(r.stdout, "the pass took longer than its timeout of 12s") || !strings.Contains(r.stdout, "Applied:       nothing yet") {
		t.Fatalf("kaylee sources hangs:\n%s%s", r.stdout, r.err)
	}
}
