package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// githubExamples reads GitHub's payload examples from the npm package
// @octokit/webhooks-examples, where .ci/run installs it (or
// KAYLEE_WEBHOOK_EXAMPLES, its api.github.com/index.json), by event.
func githubExamples(t *testing.T) map[string][]json.RawMessage {
	t.Helper()
	file := os.Getenv("KAYLEE_WEBHOOK_EXAMPLES")
	if file == "" {
		file = "/var/cache/kaylee/npm/node_modules/@octokit/webhooks-examples/api.github.com/index.json"
	}
	b, err := os.ReadFile(file)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI must run this test: GitHub's webhook payloads (.ci/run installs @octokit/webhooks-examples): %v", err)
		}
		t.Skipf("GitHub's webhook payloads (npm install @octokit/webhooks-examples@7.6.1 --prefix /var/cache/kaylee/npm, as .ci/run does): %v", err)
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
	return out
}

var webhooksTotal = regexp.MustCompile(`(?m)^kaylee_webhooks_total\{event="(\w+)",result="(\w+)",source="([\w-]*)"\} (\d+)$`)

// webhookCounts reads kaylee_webhooks_total from an agent's /metrics, by
// "event/result/source".
func webhookCounts(t *testing.T, addr string) map[string]int {
	t.Helper()
	_, m := get(addr, "/metrics")
	out := map[string]int{}
	for _, c := range webhooksTotal.FindAllStringSubmatch(m, -1) {
		n, _ := strconv.Atoi(c[4])
		out[c[1]+"/"+c[2]+"/"+c[3]] = n
	}
	return out
}

// GitHub's own payloads to a running agent, signed, in both content
// types: the answer, kaylee_webhooks_total and kaylee_sync_total in
// /metrics say what each did. Only the repository's clone_url, ref and
// after are rewritten.
func TestWebhookMetrics(t *testing.T) {
	t.Parallel()
	gh := githubExamples(t)
	e := etcdtest.New(t)
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"web.yaml": unitWeb})
	repo.Commit("first")
	repoURL := repo.ServeHTTP("", "")
	const secret = "s3cret"
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	startKaylee(t, map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}, "agent", "--repo", repoURL, "--ref", "main", "--source", "units",
		"--cache-dir", t.TempDir(), "--interval", "1h", "--listen", addr, "--webhook-secret-file", secretFile, "--lease-ttl", "2s")
	startFleet(t, e, 1)
	waitFor(t, 30*time.Second, "agent ready", func() bool { code, _ := get(addr, "/readyz"); return code == 200 })

	rewrite := func(raw json.RawMessage, repoURL, ref, after string) string {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		if r, ok := m["repository"].(map[string]any); ok && repoURL != "" {
			r["clone_url"] = repoURL
		}
		if ref != "" {
			m["ref"] = ref
		}
		if after != "" {
			m["after"] = after
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	commit := func(branch string) string {
		if branch != "main" {
			repo.Git("checkout", "-q", "-B", branch)
			defer repo.Git("checkout", "-q", "main")
		}
		repo.Write(map[string]string{"web.yaml": strings.Replace(unitWeb2, "nginx:2", "nginx:"+strconv.FormatInt(time.Now().UnixNano()%1000, 10), 1)})
		return repo.Commit("on " + branch)
	}
	tests := []struct {
		name, event string
		body        func() string
		code        int
		answer      string
		pass        bool
		counted     string // event/result/source
	}{
		{"push to the followed branch", "push", func() string { return rewrite(gh["push"][4], repoURL, "refs/heads/main", commit("main")) },
			202, `"triggered":["units"]`, true, "push/triggered/units"},
		{"push to another branch", "push", func() string { return rewrite(gh["push"][4], repoURL, "refs/heads/feature", commit("feature")) },
			200, `"ignored":"push to refs/heads/feature: units follows main"`, false, "push/ignored/units"},
		{"pull_request", "pull_request", func() string { return rewrite(gh["pull_request"][0], repoURL, "", "") },
			200, `"ignored":"pull_request events do not trigger a sync`, false, "pull_request/ignored/"},
		{"ping for the followed repository", "ping", func() string { return rewrite(gh["ping"][0], repoURL, "", "") },
			200, "pong", false, "ping/pong/"},
		{"ping for a repository no source follows", "ping", func() string { return rewrite(gh["ping"][0], "", "", "") },
			404, "no source of this agent follows https://github.com/Octocoders/Hello-World.git", false, "ping/unfollowed/"},
	}
	for _, form := range []bool{false, true} {
		for _, tt := range tests {
			name := tt.name
			if form {
				name += " (form-encoded)"
			}
			t.Run(name, func(t *testing.T) {
				counts, before := webhookCounts(t, addr), passes(t, addr)
				body, ctype := tt.body(), "application/json"
				if form {
					body, ctype = url.Values{"payload": {body}}.Encode(), "application/x-www-form-urlencoded"
				}
				req, _ := http.NewRequest("POST", "http://"+addr+"/hooks/git", strings.NewReader(body))
				m := hmac.New(sha256.New, []byte(secret))
				m.Write([]byte(body))
				req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
				req.Header.Set("X-GitHub-Event", tt.event)
				req.Header.Set("Content-Type", ctype)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				answer, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tt.code || !strings.Contains(string(answer), tt.answer) {
					t.Errorf("answer %d %s; want %d with %s", resp.StatusCode, answer, tt.code, tt.answer)
				}
				if tt.pass {
					waitFor(t, 15*time.Second, "a sync pass", func() bool { return passes(t, addr) > before })
				}
				time.Sleep(time.Second)
				if made, want := passes(t, addr)-before, map[bool]int{true: 1, false: 0}[tt.pass]; made != want {
					t.Errorf("%d sync passes, want %d", made, want)
				}
				if got := webhookCounts(t, addr)[tt.counted] - counts[tt.counted]; got != 1 {
					t.Errorf("kaylee_webhooks_total %s went up by %d, want 1 (now %v)", tt.counted, got, webhookCounts(t, addr))
				}
			})
		}
	}
}
