package sync

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
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
		{"branch deleted: sync without a commit", "POST", map[string]string{"X-Gitlab-Token": secret}, `{"after":"` + strings.Repeat("0", 40) + `"}`, secret, 202, []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen []string
			h := WebhookHandler([]byte(tt.secret), func(_ context.Context, after string) error {
				seen = append(seen, after)
				return nil
			}, nil)
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
		done <- e.store.Lead(ctx, "t", 2*time.Second, slog.New(slog.DiscardHandler), loop.Run)
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
	before := e.revision()
	time.Sleep(1500 * time.Millisecond)
	if e.revision() != before || len(e.stored()) != 3 {
		t.Fatalf("with git unreachable the loop wrote: %d revisions, units %v", e.revision()-before, e.stored())
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
