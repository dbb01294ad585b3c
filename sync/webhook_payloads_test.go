package sync

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// webhookExamplesVersion is the @octokit/webhooks-examples release .ci/run
// installs (npm) under webhookExamplesDir.
const (
	webhookExamplesVersion = "7.6.1"
	webhookExamplesDir     = "/var/cache/kaylee/npm"
)

// skipOutsideCI skips a test whose outside input is missing, except in CI
// (CI=true), which installs it: there the test fails instead.
func skipOutsideCI(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI must run this test: "+format, args...)
	}
	t.Skipf(format, args...)
}

// githubExamples reads GitHub's payload examples from the npm package
// @octokit/webhooks-examples (KAYLEE_WEBHOOK_EXAMPLES names its
// api.github.com/index.json; by default where .ci/run installs it), by
// event name.
func githubExamples(t *testing.T) map[string][]json.RawMessage {
	t.Helper()
	file := os.Getenv("KAYLEE_WEBHOOK_EXAMPLES")
	if file == "" {
		file = filepath.Join(webhookExamplesDir, "node_modules/@octokit/webhooks-examples/api.github.com/index.json")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		skipOutsideCI(t, "GitHub's webhook payloads (npm install @octokit/webhooks-examples@%s --prefix %s, as .ci/run does): %v",
			webhookExamplesVersion, webhookExamplesDir, err)
	}
	var events []struct {
		Name     string            `json:"name"`
		Examples []json.RawMessage `json:"examples"`
	}
	if err := json.Unmarshal(b, &events); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	out := map[string][]json.RawMessage{}
	for _, e := range events {
		out[e.Name] = e.Examples
	}
	for _, name := range []string{"push", "ping", "create", "delete", "release", "pull_request"} {
		if len(out[name]) == 0 {
			t.Fatalf("%s has no %s examples", file, name)
		}
	}
	return out
}

// example is one payload with what the test may rewrite: the repository's
// URL (so that it names the test's git server), ref and after.
func example(t *testing.T, raw json.RawMessage, repoURL, ref, after string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if repoURL != "" {
		for _, k := range []string{"repository", "project"} {
			if r, ok := m[k].(map[string]any); ok {
				if _, ok := r["git_http_url"]; ok || k == "project" {
					r["git_http_url"] = repoURL
				} else {
					r["clone_url"] = repoURL
				}
			}
		}
	}
	if ref != "" {
		m["ref"] = ref
	}
	if after != "" {
		m["after"] = after
		if _, ok := m["checkout_sha"]; ok {
			m["checkout_sha"] = after
		}
	}
	return m
}

func gitlabExample(t *testing.T, name string) json.RawMessage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "gitlab", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hookEnv is an agent's webhook path for real: the handler, etcd's
// triggers, and two sync loops over one git repository served over HTTP,
// "branch" following master and "tag" following the annotated tag
// simple-tag (the names GitHub's examples use).
type hookEnv struct {
	t       *testing.T
	repo    *gittest.Repo
	url     string
	st      *store.Store
	h       http.Handler
	passes  map[string]*countingObserver
	mu      gosync.Mutex
	counted map[string]int // event/result → webhooks, as the handler counted them
}

func newHookEnv(t *testing.T, secret string) *hookEnv {
	e := &hookEnv{t: t, repo: gittest.NewRepo(t), passes: map[string]*countingObserver{}, counted: map[string]int{}}
	e.st = store.New(etcdtest.New(t).Client(t), store.DefaultPrefix)
	e.repo.Git("branch", "-m", "master")
	e.repo.Write(map[string]string{"units/web.yaml": webV1, "tagged/api.yaml": apiDB})
	e.repo.Commit("v1")
	e.repo.Git("tag", "-a", "-m", "release", "simple-tag")
	e.url = e.repo.ServeHTTP("", "")
	ctx, cancel := context.WithCancel(context.Background())
	var wg gosync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	sources := []hookSource{{"branch", "master", "units"}, {"tag", "simple-tag", "tagged"}}
	for _, s := range sources {
		src, err := gitsource.New(gitsource.Config{URL: e.url, Ref: s.ref, Path: s.path, CacheDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		obs := &countingObserver{}
		e.passes[s.name] = obs
		name := s.name
		loop := &Loop{Fetcher: src, Store: e.st, Options: Options{Source: name}, Interval: time.Hour, Observer: obs,
			Triggers:   func(ctx context.Context) <-chan string { return e.st.WatchTriggers(ctx, name) },
			RetryFirst: 100 * time.Millisecond}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = loop.Run(ctx, store.Fence{})
		}()
	}
	for _, s := range sources {
		e.waitPasses(t, s.name, 1)
	}
	e.h = hookHandler([]byte(secret), e.url, sources, e.st, func(source, event, result string) {
		e.mu.Lock()
		e.counted[event+"/"+result]++
		e.mu.Unlock()
	})
	return e
}

type hookSource struct{ name, ref, path string }

func (e *hookEnv) count(name string) int { return e.passes[name].count() }

func (e *hookEnv) waitPasses(t *testing.T, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for e.count(name) < n {
		if time.Now().After(deadline) {
			t.Fatalf("source %s: %d passes, want %d", name, e.count(name), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// send posts a payload signed as GitHub signs it (or with GitLab's
// token), as JSON or form-encoded (payload=<json>).
func (e *hookEnv) send(secret string, headers map[string]string, payload any, form bool) (int, string) {
	e.t.Helper()
	js, err := json.Marshal(payload)
	if err != nil {
		e.t.Fatal(err)
	}
	body, ctype := string(js), "application/json"
	if form {
		body, ctype = url.Values{"payload": {string(js)}}.Encode(), "application/x-www-form-urlencoded"
	}
	req := httptest.NewRequest("POST", "/hooks/git", strings.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if _, gitlab := headers["X-Gitlab-Event"]; gitlab {
		req.Header.Set("X-Gitlab-Token", secret)
	} else {
		req.Header.Set("X-Hub-Signature-256", githubSig(secret, body))
		req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("%d", time.Now().UnixNano()))
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	out, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, strings.TrimSpace(string(out))
}

// commitOn makes a commit on branch (master, or a new one) and returns it.
func (e *hookEnv) commitOn(branch, file string) string {
	e.t.Helper()
	if branch != "master" {
		e.repo.Git("checkout", "-q", "-B", branch)
		defer e.repo.Git("checkout", "-q", "master")
	}
	e.repo.Write(map[string]string{file: fmt.Sprintf("name: web\nreplicas: %d\napps:\n- image: docker://nginx:1\n", time.Now().UnixNano()%7+1)})
	return e.repo.Commit("change on " + branch)
}

// GitHub's and GitLab's own payloads, signed as they sign them, in both of
// GitHub's content types: the answer (code and body), which source's loop
// made a pass, and what the handler counted. Pushes to the followed ref
// trigger that source only; a tag push for a followed annotated tag makes
// one pass (the tag object in "after" is not waited for); pushes to other
// refs, and every other event, are answered and make no pass; a ping
// answers pong only for a followed repository.
func TestWebhookRealPayloads(t *testing.T) {
	const secret = "It's a Secret to Everybody"
	gh := githubExamples(t)
	e := newHookEnv(t, secret)
	github := func(event string) map[string]string { return map[string]string{"X-GitHub-Event": event} }
	gitlab := func(event string) map[string]string { return map[string]string{"X-Gitlab-Event": event} }
	type want struct {
		code   int
		body   string // a part of the answer
		passes string // the source that must make a pass ("" none)
	}
	tests := []struct {
		name    string
		headers map[string]string
		payload func() any
		want    want
	}{
		{"github push to the followed branch", github("push"), func() any {
			return example(t, gh["push"][4], e.url, "", e.commitOn("master", "units/web.yaml"))
		}, want{202, `"triggered":["branch"]`, "branch"}},
		{"github push to another branch", github("push"), func() any {
			return example(t, gh["push"][4], e.url, "refs/heads/feature", e.commitOn("feature", "units/web.yaml"))
		}, want{200, `"ignored":"push to refs/heads/feature`, ""}},
		{"github tag push for the followed annotated tag", github("push"), func() any {
			e.commitOn("master", "tagged/api.yaml")
			e.repo.Git("tag", "-f", "-a", "-m", "moved", "simple-tag")
			return example(t, gh["push"][0], e.url, "", e.repo.Git("rev-parse", "simple-tag")) // the tag object, as GitHub sends it
		}, want{202, `"triggered":["tag"]`, "tag"}},
		{"github push of another tag", github("push"), func() any {
			e.repo.Git("tag", "-f", "-a", "-m", "other", "other-tag")
			return example(t, gh["push"][0], e.url, "refs/tags/other-tag", e.repo.Git("rev-parse", "other-tag"))
		}, want{200, `"ignored":"push to refs/tags/other-tag`, ""}},
		{"github push deleting the followed tag", github("push"), func() any {
			return example(t, gh["push"][1], e.url, "", "") // after: all zeros
		}, want{202, `"triggered":["tag"]`, "tag"}},
		{"github ping for a followed repository", github("ping"), func() any { return example(t, gh["ping"][0], e.url, "", "") },
			want{200, "pong", ""}},
		{"github ping for a repository no source follows", github("ping"), func() any { return example(t, gh["ping"][0], "", "", "") },
			want{404, "no source of this agent follows https://github.com/Octocoders/Hello-World.git", ""}},
		{"github create", github("create"), func() any { return example(t, gh["create"][0], e.url, "", "") },
			want{200, `"ignored":"create events do not trigger a sync`, ""}},
		{"github delete", github("delete"), func() any { return example(t, gh["delete"][0], e.url, "", "") },
			want{200, `"ignored":"delete events do not trigger a sync`, ""}},
		{"github release", github("release"), func() any { return example(t, gh["release"][0], e.url, "", "") },
			want{200, `"ignored":"release events do not trigger a sync`, ""}},
		{"github pull_request", github("pull_request"), func() any { return example(t, gh["pull_request"][0], e.url, "", "") },
			want{200, `"ignored":"pull_request events do not trigger a sync`, ""}},
		{"github unknown event", github("zzz_unknown"), func() any { return example(t, gh["push"][4], e.url, "", e.commitOn("master", "units/web.yaml")) },
			want{200, `"ignored":"zzz_unknown events do not trigger a sync`, ""}},
		{"gitlab push to the followed branch", gitlab("Push Hook"), func() any {
			return example(t, gitlabExample(t, "push.json"), e.url, "", e.commitOn("master", "units/web.yaml"))
		}, want{202, `"triggered":["branch"]`, "branch"}},
		{"gitlab push to another branch", gitlab("Push Hook"), func() any {
			return example(t, gitlabExample(t, "push.json"), e.url, "refs/heads/feature", e.commitOn("feature", "units/web.yaml"))
		}, want{200, `"ignored":"push to refs/heads/feature`, ""}},
		{"gitlab tag push for the followed tag", gitlab("Tag Push Hook"), func() any {
			e.commitOn("master", "tagged/api.yaml")
			e.repo.Git("tag", "-f", "-a", "-m", "moved again", "simple-tag")
			return example(t, gitlabExample(t, "tag_push.json"), e.url, "refs/tags/simple-tag", e.repo.Git("rev-parse", "simple-tag"))
		}, want{202, `"triggered":["tag"]`, "tag"}},
		{"gitlab merge request", gitlab("Merge Request Hook"), func() any {
			return example(t, gitlabExample(t, "merge_request.json"), e.url, "", "")
		}, want{200, `"ignored":"merge_request events do not trigger a sync`, ""}},
	}
	for _, form := range []bool{false, true} {
		for _, tt := range tests {
			if form && tt.headers["X-Gitlab-Event"] != "" {
				continue // GitLab sends JSON only
			}
			name := tt.name
			if form {
				name += " (form-encoded)"
			}
			t.Run(name, func(t *testing.T) {
				before := map[string]int{"branch": e.count("branch"), "tag": e.count("tag")}
				code, body := e.send(secret, tt.headers, tt.payload(), form)
				if code != tt.want.code || !strings.Contains(body, tt.want.body) {
					t.Errorf("answer %d %s; want %d with %s", code, body, tt.want.code, tt.want.body)
				}
				if tt.want.passes != "" {
					e.waitPasses(t, tt.want.passes, before[tt.want.passes]+1)
				}
				time.Sleep(time.Second) // time for a pass nobody wants, and for retries
				for _, s := range []string{"branch", "tag"} {
					want := before[s]
					if s == tt.want.passes {
						want++
					}
					if got := e.count(s); got != want {
						t.Errorf("source %s made %d passes; want %d", s, got-before[s], want-before[s])
					}
				}
			})
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, n := range map[string]int{"push/triggered": 7, "push/ignored": 17, "tag_push/triggered": 1, "tag_push/ignored": 1, "ping/pong": 2, "ping/unfollowed": 2,
		"pull_request/ignored": 2, "release/ignored": 2, "create/ignored": 2, "delete/ignored": 2, "other/ignored": 2, "merge_request/ignored": 1} {
		if e.counted[k] != n {
			t.Errorf("webhooks counted as %s: %d, want %d (all: %v)", k, e.counted[k], n, e.counted)
		}
	}
}
