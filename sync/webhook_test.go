package sync

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/store"
)

func githubSig(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func TestSameRepo(t *testing.T) {
	tests := []struct {
		a, b string
		same bool
	}{
		{"git@github.com:org/units.git", "https://github.com/org/units", true},
		{"ssh://git@github.com/org/units.git", "https://github.com/org/units.git", true},
		{"ssh://git@git.example.com:2222/team-a/units.git", "git@git.example.com:team-a/units.git", true},
		{"https://kaylee:tok@GitHub.com/org/units/", "git://github.com/org/units.git", true},
		{"https://github.com/org/units", "https://github.com/org/units-b", false},
		{"https://github.com/org/units", "https://gitlab.com/org/units", false},
		{"https://github.com/org/units", "https://github.com/other/units", false},
		{"file:///srv/git/units.git", "/srv/git/units", true},
		{"", "", false},
	}
	for _, tt := range tests {
		if got := SameRepo(tt.a, tt.b); got != tt.same {
			t.Errorf("SameRepo(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.same)
		}
	}
}

// Payloads of GitHub, GitLab and Gitea name the repository; the handler
// triggers the sources following it, and 404s when none does.
func TestWebhookRoutes(t *testing.T) {
	const secret = "s"
	tests := []struct {
		name      string
		body      string
		triggered string
		code      int
	}{
		{"github", `{"after":"","repository":{"clone_url":"https://github.com/org/a.git","ssh_url":"git@github.com:org/a.git","html_url":"https://github.com/org/a"}}`,
			"a", 202},
		{"gitlab", `{"project":{"git_http_url":"https://gitlab.com/org/b.git","git_ssh_url":"git@gitlab.com:org/b.git","web_url":"https://gitlab.com/org/b"}}`,
			"b", 202},
		{"naming no repository: every source", `{}`, "a b", 202},
		{"a repository no source follows", `{"repository":{"clone_url":"https://github.com/org/zzz.git"}}`, "", 404},
	}
	sources := []WebhookSource{{Name: "a", URL: "git@github.com:org/a.git"}, {Name: "b", URL: "https://gitlab.com/org/b"}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			h := &Webhooks{Secret: []byte(secret), Sources: sources, Trigger: func(_ context.Context, source, _ string) error {
				got = append(got, source)
				return nil
			}}
			req := httptest.NewRequest("POST", "/hooks/git", strings.NewReader(tt.body))
			req.Header.Set("X-Hub-Signature-256", githubSig(secret, tt.body))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.code || strings.Join(got, " ") != tt.triggered {
				t.Fatalf("code %d triggered %q; want %d %q (%s)", rec.Code, got, tt.code, tt.triggered, rec.Body)
			}
			if tt.code == 404 && !strings.Contains(rec.Body.String(), "no source of this agent follows https://github.com/org/zzz.git") {
				t.Errorf("404 body %q", rec.Body)
			}
		})
	}
}

func TestWebhookHandler(t *testing.T) {
	const secret = "hook-secret"
	commit := strings.Repeat("ab", 20)
	body := `{"ref":"refs/heads/main","after":"` + commit + `"}`
	tests := []struct {
		name      string
		method    string
		headers   map[string]string
		body      string
		secret    string
		wantCode  int
		wantAfter []string // triggers seen
	}{
		{"github signed", "POST", map[string]string{"X-Hub-Signature-256": githubSig(secret, body), "X-GitHub-Event": "push"}, body, secret, 202, []string{commit}},
		{"github wrong signature", "POST", map[string]string{"X-Hub-Signature-256": githubSig("other", body)}, body, secret, 401, nil},
		{"github signature of another body", "POST", map[string]string{"X-Hub-Signature-256": githubSig(secret, "{}")}, body, secret, 401, nil},
		{"github ping", "POST", map[string]string{"X-Hub-Signature-256": githubSig(secret, "{}"), "X-GitHub-Event": "ping"}, "{}", secret, 200, nil},
		{"gitlab token", "POST", map[string]string{"X-Gitlab-Token": secret}, body, secret, 202, []string{commit}},
		{"gitlab wrong token", "POST", map[string]string{"X-Gitlab-Token": "nope"}, body, secret, 401, nil},
		{"unsigned", "POST", nil, body, secret, 401, nil},
		{"no secret configured", "POST", map[string]string{"X-Gitlab-Token": ""}, body, "", 401, nil},
		{"GET", "GET", nil, "", secret, 405, nil},
		{"payload over 5 MiB", "POST", map[string]string{"X-Gitlab-Token": secret}, `{"after":"` + strings.Repeat(" ", 5<<20) + `"}`, secret, 413, nil},
		{"not JSON", "POST", map[string]string{"X-Gitlab-Token": secret}, `after=1`, secret, 400, nil},
		{"branch deleted: sync without a commit", "POST", map[string]string{"X-Gitlab-Token": secret}, `{"ref":"refs/heads/main","after":"` + strings.Repeat("0", 40) + `"}`, secret, 202, []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen []string
			h := &Webhooks{Secret: []byte(tt.secret), Sources: []WebhookSource{{Name: "units", URL: "https://github.com/org/units", Ref: "main"}},
				Trigger: func(_ context.Context, _, after string) error {
					seen = append(seen, after)
					return nil
				}}
			req := httptest.NewRequest(tt.method, "/hooks/git", strings.NewReader(tt.body))
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantCode || strings.Join(seen, ",") != strings.Join(tt.wantAfter, ",") || len(seen) != len(tt.wantAfter) {
				t.Fatalf("code %d, triggers %q; want %d, %q (body %s)", rec.Code, seen, tt.wantCode, tt.wantAfter, rec.Body)
			}
		})
	}
}

// A webhook that names a commit the git server does not have yet: the loop
// keeps fetching (bounded) until the commit is there, then applies it.
func TestLoopWaitsForWebhookCommit(t *testing.T) {
	e := newEnv(t)
	e.commit(map[string]string{"web.yaml": webV1})
	src, err := gitsource.New(gitsource.Config{URL: e.repo.ServeHTTP("", ""), Path: "units", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	triggers := make(chan string, 1)
	loop := &Loop{Fetcher: src, Store: e.store, Options: Options{Source: "units"}, Interval: time.Hour,
		Triggers:   func(context.Context) <-chan string { return triggers },
		RetryFirst: 200 * time.Millisecond, Retries: 20}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- loop.Run(ctx, store.Fence{}) }()
	defer func() {
		cancel()
		<-done
	}()
	waitRecord(t, e, func(r *store.SyncRecord) bool { return r.Created == 1 })

	// The push lands on the server a second after its webhook arrives.
	e.repo.Write(map[string]string{"units/web.yaml": webV2})
	e.repo.Git("add", "-A")
	e.repo.Git("commit", "-q", "-m", "v2")
	next := e.repo.Git("rev-parse", "HEAD")
	e.repo.Git("reset", "-q", "--hard", "HEAD~1")
	triggers <- next
	time.Sleep(time.Second)
	e.repo.Git("reset", "-q", "--hard", next)

	rec := waitRecord(t, e, func(r *store.SyncRecord) bool { return r.Revision == next })
	if rec.Updated != 1 || !strings.Contains(e.stored()["web"], `"replicas":3`) {
		t.Fatalf("after the late commit: record %+v, web %s", rec, e.stored()["web"])
	}
}

func waitRecord(t *testing.T, e *env, ok func(*store.SyncRecord) bool) *store.SyncRecord {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := e.store.GetSyncRecord(context.Background(), "units")
		if err == nil && ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("sync record never matched: %+v %v", r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The agent's loop under leader election, through faults: the git server
// goes away (nothing is pruned, nothing written), then etcd stops. Once
// each fault clears, the newest commit is applied.
func TestLoopConvergesAfterFaults(t *testing.T) {
	e := newEnv(t)
	e.commit(map[string]string{"web.yaml": webV1, "api.yaml": apiDB})
	hidden := e.repo.Dir + ".away"
	src, err := gitsource.New(gitsource.Config{URL: e.repo.Dir, Path: "units", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	loop := &Loop{Fetcher: src, Store: e.store, Options: Options{Source: "units"}, Interval: 300 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- e.store.Lead(ctx, store.SourceElection("t"), "t", 2*time.Second, slog.New(slog.DiscardHandler), loop.Run)
	}()
	defer func() {
		cancel()
		<-done
	}()
	waitRecord(t, e, func(r *store.SyncRecord) bool { return r.Created == 3 })

	// Git away: passes fail, and nothing is pruned or written.
	if err := os.Rename(e.repo.Dir, hidden); err != nil {
		t.Fatal(err)
	}
	before, _ := e.store.GetSyncRecord(ctx, "units")
	time.Sleep(1500 * time.Millisecond)
	after, _ := e.store.GetSyncRecord(ctx, "units")
	if len(e.stored()) != 3 || after.Time != before.Time {
		t.Fatalf("with git unreachable the loop wrote: record %v → %v, units %v", before.Time, after.Time, e.stored())
	}
	attempts, err := e.store.ListSyncAttempts(ctx)
	if a := attempts["units"]; err != nil || a == nil || a.Result != store.AttemptFailed || !strings.Contains(a.Message, "nothing was written") || a.Revision != "" {
		t.Fatalf("the attempt with git away: %+v %v", a, err)
	}
	if err := os.Rename(hidden, e.repo.Dir); err != nil {
		t.Fatal(err)
	}
	rev := e.commit(map[string]string{"web.yaml": webV2})
	waitRecord(t, e, func(r *store.SyncRecord) bool { return r.Revision == rev })

	// etcd stops while a commit lands; it is applied once etcd is back.
	e.etcd.Stop()
	rev = e.commit(map[string]string{"api.yaml": "name: api\napps:\n- image: docker://api\n"})
	time.Sleep(time.Second)
	if err := e.etcd.Restart(); err != nil {
		t.Fatal(err)
	}
	rec := waitRecord(t, e, func(r *store.SyncRecord) bool { return r.Revision == rev })
	if _, ok := e.stored()["worker"]; ok || rec.Pruned != 1 || !strings.Contains(e.stored()["web"], `"replicas":3`) {
		t.Fatalf("after etcd came back: record %+v, units %v", rec, e.stored())
	}
}

func TestRecent(t *testing.T) {
	r := &Recent{Window: time.Second}
	t0 := time.Unix(1000, 0)
	steps := []struct {
		source, after string
		at            time.Duration
		fresh         bool
	}{
		{"a", "c1", 0, true},
		{"a", "c1", 500 * time.Millisecond, false}, // the same push again
		{"b", "c1", 500 * time.Millisecond, true},  // another source
		{"a", "c2", 600 * time.Millisecond, true},  // another push
		{"a", "", 700 * time.Millisecond, true},    // no commit named: never dropped
		{"a", "", 800 * time.Millisecond, true},
		{"a", "c1", 1100 * time.Millisecond, true}, // the window has passed
	}
	for i, s := range steps {
		if got := r.Fresh(s.source, s.after, t0.Add(s.at)); got != s.fresh {
			t.Errorf("step %d (%s %q at %s): fresh %v, want %v", i, s.source, s.after, s.at, got, s.fresh)
		}
	}
}

// countingObserver counts passes.
type countingObserver struct {
	mu     gosync.Mutex
	passes int
}

func (c *countingObserver) Synced(string, *Result, error, time.Duration) {
	c.mu.Lock()
	c.passes++
	c.mu.Unlock()
}

func (c *countingObserver) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.passes
}

// A storm of triggers is coalesced: 1,000 triggers over 3 s for the new
// commit (and some, late, for the commit applied before) make a pass or
// two, and the newest commit is applied.
func TestLoopCoalescesTriggers(t *testing.T) {
	e := newEnv(t)
	old := e.commit(map[string]string{"web.yaml": webV1})
	triggers := make(chan string)
	obs := &countingObserver{}
	loop := &Loop{Fetcher: e.src, Store: e.store, Options: Options{Source: "units"}, Interval: time.Hour, Observer: obs,
		Triggers: func(context.Context) <-chan string { return triggers }, RetryFirst: 50 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- loop.Run(ctx, store.Fence{}) }()
	defer func() {
		cancel()
		<-done
	}()
	waitRecord(t, e, func(r *store.SyncRecord) bool { return r.Revision == old })
	head := e.commit(map[string]string{"web.yaml": webV2})
	start := obs.count()
	t0 := time.Now()
	for i := range 1000 {
		after := head
		if i%100 == 13 {
			after = old
		}
		triggers <- after
		time.Sleep(time.Until(t0.Add(time.Duration(i+1) * 3 * time.Millisecond)))
	}
	waitRecord(t, e, func(r *store.SyncRecord) bool { return r.Revision == head })
	time.Sleep(500 * time.Millisecond) // let any queued pass run
	passes := obs.count() - start
	t.Logf("1000 triggers: %d passes", passes)
	if passes > 3 {
		t.Fatalf("1000 triggers made %d passes; they should coalesce into a handful", passes)
	}
}

// GitHub's "Redeliver" after a pass that failed for the pushed commit
// (here refused: it would remove every unit) runs a pass at once; a
// trigger for a commit applied stays dropped.
func TestLoopRedeliveryAfterFailedPass(t *testing.T) {
	e := newEnv(t)
	applied := e.commit(map[string]string{"web.yaml": webV1})
	triggers := make(chan string, 4)
	obs := &countingObserver{}
	loop := &Loop{Fetcher: e.src, Store: e.store, Options: Options{Source: "units"}, Interval: time.Hour, Observer: obs,
		Triggers: func(context.Context) <-chan string { return triggers }, RetryFirst: 50 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- loop.Run(ctx, store.Fence{}) }()
	defer func() {
		cancel()
		<-done
	}()
	waitRecord(t, e, func(r *store.SyncRecord) bool { return r.Revision == applied })
	waitPasses := func(n int, within time.Duration) int {
		deadline := time.Now().Add(within)
		for obs.count() < n && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		return obs.count()
	}
	e.repo.Git("rm", "-q", "units/web.yaml")
	e.repo.Write(map[string]string{"units/NOTES.md": "nothing here\n"})
	refused := e.repo.Commit("remove every unit")
	triggers <- refused
	if got := waitPasses(2, 10*time.Second); got != 2 {
		t.Fatalf("the webhook for %s made %d passes", refused, got-1)
	}
	attempts, err := e.store.ListSyncAttempts(ctx)
	if a := attempts["units"]; err != nil || a == nil || a.Result != store.AttemptRefused || a.Revision != refused {
		t.Fatalf("the pass for the commit removing every unit: %+v %v", a, err)
	}
	triggers <- refused // Redeliver
	if got := waitPasses(3, 3*time.Second); got != 3 {
		t.Fatalf("a redelivery after the failed pass for %s made %d passes, want 1", refused, got-2)
	}
	triggers <- applied // late webhook for the commit applied before: nothing to do
	if got := waitPasses(4, time.Second); got != 3 {
		t.Fatalf("a trigger for the commit applied before made %d passes, want 0", got-3)
	}
}

// Which pushes move the ref a source follows, and the commit to wait for.
func TestWebhookRefMatch(t *testing.T) {
	c := strings.Repeat("c", 40)
	tests := []struct {
		name          string
		sourceRef     string
		ref, after    string
		defaultBranch string
		match         bool
		wait          string
	}{
		{"branch", "main", "refs/heads/main", c, "", true, c},
		{"another branch", "main", "refs/heads/dev", c, "", false, ""},
		{"a tag named like the branch", "main", "refs/tags/main", c, "", true, ""},
		{"tag: no commit to wait for", "v1", "refs/tags/v1", c, "", true, ""},
		{"another tag", "v1", "refs/tags/v2", c, "", false, ""},
		{"full ref", "refs/heads/main", "refs/heads/main", c, "", true, c},
		{"full ref, another", "refs/heads/main", "refs/heads/mainline", c, "", false, ""},
		{"HEAD, the default branch", "", "refs/heads/trunk", c, "trunk", true, c},
		{"HEAD, another branch", "", "refs/heads/dev", c, "trunk", false, ""},
		{"HEAD, default branch unknown: sync without a commit", "", "refs/heads/dev", c, "", true, ""},
		{"HEAD, a tag", "", "refs/tags/v1", c, "trunk", false, ""},
		{"a fixed commit follows no push", c, "refs/heads/main", c, "main", false, ""},
		{"payload without a ref", "main", "", c, "", true, c},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := &hookEvent{ref: tt.ref, after: tt.after, defaultBranch: tt.defaultBranch}
			wait, match := ev.matches(WebhookSource{Name: "s", Ref: tt.sourceRef})
			if match != tt.match || match && wait != tt.wait {
				t.Fatalf("matches = %q, %v; want %q, %v", wait, match, tt.wait, tt.match)
			}
		})
	}
}

// The loop's pass for a webhook tells the fetch the webhook's commit
// (gitsource.WithAfter): over smart HTTP, its pack is asked for while the
// refs are listed. The server holds the listing until a pack request was
// answered (up to 10s): the pass's requests show the pack first, and the
// commit is applied.
func TestLoopAsksForWebhookCommitWhileListing(t *testing.T) {
	e := newEnv(t)
	e.commit(map[string]string{"web.yaml": webV1})
	var mu gosync.Mutex
	var requests []string
	var posted chan struct{} // set: the next listing waits for a POST answered
	url := e.repo.ServeHTTPAround("", "", func(req *http.Request, serve func()) {
		mu.Lock()
		wait := posted
		mu.Unlock()
		line := req.Method
		if req.Method == http.MethodGet && wait != nil {
			select {
			case <-wait:
			case <-time.After(10 * time.Second):
				line += " (no POST came while it was held)"
			}
		}
		mu.Lock()
		requests = append(requests, line)
		mu.Unlock()
		serve()
		mu.Lock()
		if req.Method == http.MethodPost && posted != nil {
			close(posted)
			posted = nil
		}
		mu.Unlock()
	})
	src, err := gitsource.New(gitsource.Config{URL: url, Path: "units", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	triggers := make(chan string, 1)
	loop := &Loop{Fetcher: src, Store: e.store, Options: Options{Source: "units"}, Interval: time.Hour,
		Triggers: func(context.Context) <-chan string { return triggers }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- loop.Run(ctx, store.Fence{}) }()
	defer func() {
		cancel()
		<-done
	}()
	waitRecord(t, e, func(r *store.SyncRecord) bool { return r.Created == 1 })

	next := e.commit(map[string]string{"web.yaml": webV2})
	mu.Lock()
	requests, posted = nil, make(chan struct{})
	mu.Unlock()
	triggers <- next
	waitRecord(t, e, func(r *store.SyncRecord) bool { return r.Revision == next })
	mu.Lock()
	got := strings.Join(requests, ", ")
	mu.Unlock()
	if want := "POST, GET"; got != want {
		t.Errorf("the webhook's pass asked %q, want %q", got, want)
	}
}
