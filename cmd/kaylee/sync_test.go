package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

const (
	unitWeb  = "name: web\nreplicas: 2\napps:\n- image: docker://nginx:1\n"
	unitWeb2 = "name: web\nreplicas: 2\napps:\n- image: docker://nginx:2\n"
	unitAPI  = "name: api\napps:\n- image: docker://api\n"
)

func storedUnits(t *testing.T, e *etcdtest.Server) map[string]string {
	t.Helper()
	r, err := e.Client(t).Get(context.Background(), "/kaylee2/units/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range r.Kvs {
		out[strings.TrimPrefix(string(kv.Key), "/kaylee2/units/")] = string(kv.Value)
	}
	return out
}

// The CI use: kaylee sync --once, its summary, exit codes and safety.
func TestSyncOnce(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"units/web.yaml": unitWeb, "units/api.yaml": unitAPI})
	rev := repo.Commit("first")
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_CACHE_DIR": t.TempDir()}
	args := []string{"sync", "--once", "--repo", repo.FileURL(), "--path", "units"}

	r := kaylee(t, env, args...)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "main@"+rev[:7]+": 2 created, 0 updated, 0 pruned, 0 unchanged" {
		t.Fatalf("first sync: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	if got := storedUnits(t, e)["web"]; got != `{"name":"web","replicas":2,"apps":[{"image":"docker://nginx:1"}]}` {
		t.Fatalf("web in etcd: %s", got)
	}

	// A bad file among good changes: exit 1, the good change applied, the
	// broken unit kept, the error as FILE:LINE: message.
	repo.Write(map[string]string{"units/web.yaml": unitWeb2, "units/api.yaml": "name: api\nreplcas: 2\napps:\n- image: docker://api:2\n"})
	repo.Commit("second")
	r = kaylee(t, env, args...)
	if r.code != 1 || !strings.Contains(r.stdout, "1 updated") || !strings.Contains(r.stdout, "1 error") ||
		!strings.Contains(r.err, `units/api.yaml:2: unknown field "replcas" (did you mean "replicas"?)`) {
		t.Fatalf("bad file: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	if s := storedUnits(t, e); !strings.Contains(s["web"], "nginx:2") || s["api"] != `{"name":"api","apps":[{"image":"docker://api"}]}` {
		t.Fatalf("after a bad file: %v", s)
	}

	// Dry run: a plan with a field diff, nothing written.
	repo.Write(map[string]string{"units/web.yaml": unitWeb, "units/api.yaml": unitAPI})
	repo.Commit("third")
	before := storedUnits(t, e)
	r = kaylee(t, env, append(args, "--dry-run")...)
	if r.code != 0 || !strings.Contains(r.stdout, "update    web (units/web.yaml)") ||
		!strings.Contains(r.stdout, `~ apps: [{"image":"docker://nginx:2"}] → [{"image":"docker://nginx:1"}]`) || !strings.Contains(r.stdout, "dry run: nothing written") {
		t.Fatalf("dry run: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	if fmt.Sprint(storedUnits(t, e)) != fmt.Sprint(before) {
		t.Fatal("dry run wrote")
	}

	// Pruning everything is refused (exit 3) and writes nothing.
	repo.Write(map[string]string{"units/web.yaml": "", "units/api.yaml": "", "units/README.md": "empty for now\n"})
	repo.Commit("empty")
	r = kaylee(t, env, args...)
	if r.code != 3 || !strings.Contains(r.err, "--allow-empty") || len(storedUnits(t, e)) != 2 {
		t.Fatalf("emptying: exit %d\n%s%s", r.code, r.stdout, r.err)
	}

	// Unreachable repository or etcd: exit 2, nothing written.
	r = kaylee(t, env, "sync", "--once", "--repo", "file:///nowhere/repo.git")
	if r.code != 2 || !strings.Contains(r.err, "cannot read the repository") || !strings.Contains(r.err, "nothing was written") {
		t.Fatalf("unreachable repo: exit %d\n%s", r.code, r.err)
	}
	r = kaylee(t, map[string]string{"KAYLEE_ETCD_ENDPOINTS": "http://127.0.0.1:1", "KAYLEE_CACHE_DIR": t.TempDir()}, args...)
	if r.code != 2 || !strings.Contains(r.err, "does not answer") || !strings.Contains(r.err, "nothing was written") {
		t.Fatalf("unreachable etcd: exit %d\n%s", r.code, r.err)
	}
	if len(storedUnits(t, e)) != 2 {
		t.Fatal("a failed sync wrote")
	}
}

// Auth: https with a password file or KAYLEE_GIT_PASSWORD, ssh with a key
// and known_hosts. No secret is ever a flag.
func TestSyncOnceAuth(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"web.yaml": unitWeb})
	repo.Commit("first")
	httpURL := repo.ServeHTTP("ci", "t0ken")
	key := gittest.NewKey(t)
	ssh := repo.ServeSSH(key.Public)
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyKnownHosts := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(emptyKnownHosts, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	base := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	with := func(kv ...string) map[string]string {
		m := map[string]string{"KAYLEE_CACHE_DIR": t.TempDir()}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tt := range []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		want     string
	}{
		{"https, password file", with(), []string{"--repo", httpURL, "--git-username", "ci", "--git-password-file", pwFile, "--source", "h1"}, 0, "1 created"},
		{"https, token in env", with("KAYLEE_GIT_PASSWORD", "t0ken"), []string{"--repo", httpURL, "--git-username", "ci", "--source", "h2"}, 1, "belongs to git source"},
		{"https, no credentials", with(), []string{"--repo", httpURL, "--source", "h3"}, 2, "--git-username"},
		{"ssh, key and known_hosts", with(), []string{"--repo", ssh.URL, "--ssh-key", key.File, "--known-hosts", ssh.KnownHosts, "--source", "h1"}, 0, "1 unchanged"},
		{"ssh, unknown host", with(), []string{"--repo", ssh.URL, "--ssh-key", key.File, "--known-hosts", emptyKnownHosts, "--source", "h1"}, 2, "cannot read the repository"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := kaylee(t, tt.env, append([]string{"sync", "--once"}, tt.args...)...)
			if r.code != tt.wantCode || !strings.Contains(r.stdout+r.err, tt.want) {
				t.Fatalf("exit %d, want %d with %q:\n%s%s", r.code, tt.wantCode, tt.want, r.stdout, r.err)
			}
		})
	}
}

func postHook(t *testing.T, addr, secret, body string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+addr+"/hooks/git", strings.NewReader(body))
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	req.Header.Set("X-GitHub-Event", "push")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func get(addr, path string) (int, string) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	if !eventually(timeout, ok) {
		t.Fatalf("not after %s: %s", timeout, what)
	}
}

// eventually polls ok every 100ms until it holds (true) or timeout
// passes (false).
func eventually(timeout time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// Two agents on one etcd and fleet: readiness, a webhook taken by any
// agent and synced by the leader, units running in fleet, metrics, and a
// failover when the leader stops.
func TestAgents(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	startFleet(t, e, 2)
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"units/web.yaml": unitWeb})
	repo.Commit("first")
	url := repo.ServeHTTP("", "")
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("hook-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addrA, addrB := freePort(t), freePort(t)
	agent := func(addr string) *proc {
		return startKaylee(t, map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_REPO": url},
			"agent", "--path", "units", "--source", "team-units", "--cache-dir", t.TempDir(), "--interval", "1h", "--listen", addr,
			"--webhook-secret-file", secretFile, "--min-ready", "500ms", "--lease-ttl", "2s")
	}
	a := agent(addrA)
	waitFor(t, 30*time.Second, "agent a ready", func() bool { code, _ := get(addrA, "/readyz"); return code == 200 })
	b := agent(addrB)
	waitFor(t, 30*time.Second, "agent b ready", func() bool { code, _ := get(addrB, "/readyz"); return code == 200 })
	if code, body := get(addrB, "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz: %d %q", code, body)
	}

	s := store.New(e.Client(t), store.DefaultPrefix)
	waitStatus := func(name, phase, image string) {
		t.Helper()
		waitFor(t, 60*time.Second, name+" "+phase+" with "+image, func() bool {
			st, err := s.GetStatus(context.Background(), name)
			u, uerr := s.GetUnit(context.Background(), name)
			return err == nil && uerr == nil && st.Phase == phase && st.SpecHash == u.Spec.Hash(0) && strings.Contains(string(u.Raw), image)
		})
	}
	waitStatus("web", store.PhaseRunning, "nginx:1")

	// A push, announced to the agent that does not lead.
	repo.Write(map[string]string{"units/web.yaml": unitWeb2, "units/api.yaml": unitAPI})
	rev := repo.Commit("second")
	if code := postHook(t, addrB, "hook-secret", `{"after":"`+rev+`"}`); code != http.StatusAccepted {
		t.Fatalf("webhook: %d", code)
	}
	if code := postHook(t, addrB, "wrong", `{"after":"`+rev+`"}`); code != http.StatusUnauthorized {
		t.Fatalf("webhook with a wrong secret: %d", code)
	}
	waitStatus("web", store.PhaseRunning, "nginx:2")
	waitStatus("api", store.PhaseRunning, "docker://api")

	// Metrics: each role's leader reports its work and its leadership;
	// the other agent says it follows. The roles may be led by either.
	const syncLeads, schedLeads = `kaylee_leader{role="sync",source="team-units"} 1`, `kaylee_leader{role="scheduler",source=""} 1`
	_, metricsA := get(addrA, "/metrics")
	_, metricsB := get(addrB, "/metrics")
	pick := func(lead string) (leader, other string) {
		if strings.Contains(metricsA, lead) {
			return metricsA, metricsB
		}
		return metricsB, metricsA
	}
	syncM, syncOther := pick(syncLeads)
	schedM, schedOther := pick(schedLeads)
	for _, want := range []string{syncLeads, `kaylee_sync_total{result="ok",source="team-units"}`, `kaylee_sync_revision_info{revision="` + rev + `",source="team-units"} 1`, "kaylee_sync_duration_seconds_bucket"} {
		if !strings.Contains(syncM, want) {
			t.Errorf("the sync leader's metrics lack %s", want)
		}
	}
	for _, want := range []string{schedLeads, `kaylee_fleet_operations_total{op="create",result="ok"}`, `kaylee_units_phase{phase="running"} 2`} {
		if !strings.Contains(schedM, want) {
			t.Errorf("the scheduler leader's metrics lack %s", want)
		}
	}
	if !strings.Contains(syncOther, `kaylee_leader{role="sync",source="team-units"} 0`) || !strings.Contains(schedOther, `kaylee_leader{role="scheduler",source=""} 0`) {
		t.Errorf("the other agent's metrics do not say it follows")
	}

	// The sync leader stops; the other takes over and syncs the next push.
	leader, followerAddr := a, addrB
	if strings.Contains(metricsB, syncLeads) {
		leader, followerAddr = b, addrA
	}
	if code, err := leader.Stop(); code != 0 || err != nil {
		t.Fatalf("stopping the leader: %d %v", code, err)
	}
	repo.Write(map[string]string{"units/api.yaml": ""})
	rev = repo.Commit("third")
	waitFor(t, 30*time.Second, "follower leads", func() bool { _, m := get(followerAddr, "/metrics"); return strings.Contains(m, syncLeads) })
	if code := postHook(t, followerAddr, "hook-secret", `{"after":"`+rev+`"}`); code != http.StatusAccepted {
		t.Fatalf("webhook to the new leader: %d", code)
	}
	waitFor(t, 60*time.Second, "api pruned from etcd and fleet", func() bool {
		_, err := s.GetUnit(context.Background(), "api")
		_, serr := s.GetStatus(context.Background(), "api")
		return err != nil && serr != nil
	})
}

// hangingGitServer listens on loopback, accepts every connection and
// never answers: a git server that hangs. It returns its address.
func hangingGitServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   gosync.Mutex
		hung []net.Conn
	)
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
	return ln.Addr().String()
}

// One pass, one classifier: a pass that times out says the same in
// kaylee sync --once (its exit status and stderr, the attempt it records)
// as in the loop of kaylee sync (the attempt it records, kaylee sources).
func TestSyncOnceTimeoutAsTheLoop(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	cfg := writeConfig(t, t.TempDir(), "kaylee.yaml", fmt.Sprintf(`sources:
- name: hangs
  repo: http://%s/units.git
  timeout: 2s
  interval: 1h
`, hangingGitServer(t)))
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	s := store.New(e.Client(t), store.DefaultPrefix)
	ctx := context.Background()

	once := kaylee(t, env, "sync", "--once", "--config", cfg, "--cache-dir", t.TempDir())
	attempts, err := s.ListSyncAttempts(ctx)
	onceAt := attempts["hangs"]
	if err != nil || onceAt == nil {
		t.Fatalf("kaylee sync --once recorded no attempt (%v): exit %d\n%s%s", err, once.code, once.stdout, once.err)
	}

	startKaylee(t, env, "sync", "--config", cfg, "--cache-dir", t.TempDir(), "--lease-ttl", "2s")
	var loopAt *store.SyncAttempt
	waitFor(t, 30*time.Second, "the loop's pass failed at its timeout", func() bool {
		a, err := s.ListSyncAttempts(ctx)
		if err != nil || a["hangs"] == nil || strings.HasPrefix(a["hangs"].Leader, "sync --once") {
			return false
		}
		loopAt = a["hangs"]
		return true
	})
	sources := kaylee(t, env, "sources", "hangs")

	if once.code != exitUnreachable || onceAt.Result != store.AttemptFailed || loopAt.Result != store.AttemptFailed {
		t.Fatalf("kaylee sync --once: exit %d, attempt %s; the loop's attempt %s; want exit %d and %s for both",
			once.code, onceAt.Result, loopAt.Result, exitUnreachable, store.AttemptFailed)
	}
	const took = "the pass took longer than its timeout of 2s"
	for _, c := range []struct{ what, text string }{
		{"kaylee sync --once's stderr", once.err},
		{"kaylee sync --once's attempt", onceAt.Message},
		{"the loop's attempt", loopAt.Message},
		{"kaylee sources", sources.stdout},
	} {
		if !strings.Contains(c.text, took) {
			t.Errorf("%s does not say %q:\n%s", c.what, took, c.text)
		}
	}
	if !strings.Contains(once.err, onceAt.Message) {
		t.Errorf("kaylee sync --once's stderr does not tell its attempt %q:\n%s", onceAt.Message, once.err)
	}
}
