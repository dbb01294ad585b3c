package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	gosync "sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// The secrets of the repository URLs below: a password, and a token given
// as the user name (GitHub's style) with no password.
const (
	credPassword = "s3cretPW"
	credToken    = "ghp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
)

// rawReceiver is a notification endpoint that keeps every body it gets.
type rawReceiver struct {
	mu     gosync.Mutex
	bodies []string
	URL    string
}

func newRawReceiver(t *testing.T) *rawReceiver {
	r := &rawReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, req.URL.String()+"\n"+fmt.Sprint(req.Header)+"\n"+string(b))
		r.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

func (r *rawReceiver) all() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.bodies, "\n")
}

// readStream reads the console's server-sent events for d.
func readStream(t *testing.T, url string, d time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body) // ends with the context
	return string(b)
}

// Repository credentials in source URLs are shown nowhere: a password
// (user:s3cretPW@) and a token given as the user name (ghp_…@), with the
// git server down (a closed loopback port), answering 401 (other
// credentials) or 404 (no such repository), and working. Every output
// path is grepped for them: the console's API (sources, one source,
// state, events, the SSE stream), /metrics and /readyz, every key under
// the etcd prefix (sync records, attempts, events), kaylee sources (text,
// one source, -o json), kaylee events, the agent's log, the bodies the
// notification receiver gets, and kaylee sync --once's output for each
// URL given with --repo. What is shown still names the host and path.
func TestRepoCredentialsNeverShown(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close() // nothing listens here any more: connection refused

	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"a/web.yaml": unitWeb, "b/api.yaml": unitAPI})
	rev := repo.Commit("web")
	hostOf := func(u string) string { return strings.TrimPrefix(u, "http://") }
	pwOK := hostOf(repo.ServeHTTP("kaylee", credPassword))   // host/<repo>
	tokOK := hostOf(repo.ServeHTTP(credToken, ""))           // host/<repo>
	other := hostOf(repo.ServeHTTP("admin", "other-secret")) // 401 for ours
	open := hostOf(repo.ServeHTTP("", ""))                   // no auth
	openHost, _, _ := strings.Cut(open, "/")

	urls := map[string]string{
		"pw-down":  "http://kaylee:" + credPassword + "@" + down + "/units.git",
		"tok-down": "http://" + credToken + "@" + down + "/units.git",
		"pw-401":   "http://kaylee:" + credPassword + "@" + other,
		"tok-401":  "http://" + credToken + "@" + other,
		"pw-404":   "http://kaylee:" + credPassword + "@" + openHost + "/nope.git",
		"tok-404":  "http://" + credToken + "@" + openHost + "/nope.git",
		"pw-ok":    "http://kaylee:" + credPassword + "@" + pwOK,
		"tok-ok":   "http://" + credToken + "@" + tokOK,
	}
	names := make([]string, 0, len(urls))
	for n := range urls {
		names = append(names, n)
	}
	sort.Strings(names)
	rcv := newRawReceiver(t)
	var cfg strings.Builder
	cfg.WriteString("sources:\n")
	path := map[string]string{"pw-ok": "a", "tok-ok": "b"} // each its own unit
	for _, n := range names {
		fmt.Fprintf(&cfg, "- name: %s\n  repo: %s\n  interval: 1h\n  timeout: 20s\n", n, urls[n])
		if path[n] != "" {
			fmt.Fprintf(&cfg, "  path: %s\n", path[n])
		}
	}
	fmt.Fprintf(&cfg, "notifications:\n- url: %s/hook\n  events: [sync]\n", rcv.URL)
	cfgFile := writeConfig(t, t.TempDir(), "kaylee.yaml", cfg.String())

	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	addr := freePort(t)
	agent := startKaylee(t, env, "agent", "--config", cfgFile, "--cache-dir", t.TempDir(), "--listen", addr,
		"--interval", "1h", "--lease-ttl", "2s")
	s := store.New(e.Client(t), store.DefaultPrefix)
	waitFor(t, 60*time.Second, "every source made a pass", func() bool {
		a, err := s.ListSyncAttempts(context.Background())
		return err == nil && len(a) == len(urls)
	})
	attempts, _ := s.ListSyncAttempts(context.Background())
	for _, n := range names {
		want := store.AttemptFailed
		if strings.HasSuffix(n, "-ok") {
			want = store.AttemptSynced
		}
		if a := attempts[n]; a.Result != want {
			t.Errorf("source %s: %s (%s), want %s", n, a.Result, a.Message, want)
		}
	}
	if r, err := s.GetSyncRecord(context.Background(), "tok-ok"); err != nil || r.Revision != rev {
		t.Fatalf("tok-ok's record: %+v %v", r, err)
	}
	// Sources with no notification yet: the follower tells events in
	// batches, after its own election (a busy machine takes its time).
	unnotified := func() []string {
		all := rcv.all()
		var out []string
		for _, n := range names {
			if !strings.Contains(all, `"source":"`+n+`"`) {
				out = append(out, n)
			}
		}
		return out
	}
	if !eventually(60*time.Second, func() bool { return len(unnotified()) == 0 }) {
		t.Fatalf("not after 60s: a notification for sources %v; the receiver got:\n%s", unnotified(), rcv.all())
	}

	// kaylee sync --once with each URL as --repo, with the config file, and
	// with a URL whose source name would come from the user info.
	outputs := map[string]string{}
	for _, n := range names {
		r := kaylee(t, env, "sync", "--once", "--repo", urls[n], "--path", path[n], "--source", n, "--cache-dir", t.TempDir())
		outputs["kaylee sync --once --repo <"+n+">"] = fmt.Sprintf("exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	r := kaylee(t, env, "sync", "--once", "--repo", "http://kaylee:"+credPassword+"@127.0.0.1", "--cache-dir", t.TempDir())
	outputs["kaylee sync --once --repo <no path>"] = fmt.Sprintf("exit %d\n%s%s", r.code, r.stdout, r.err)
	r = kaylee(t, env, "sync", "--once", "--config", cfgFile, "--cache-dir", t.TempDir())
	outputs["kaylee sync --once --config"] = fmt.Sprintf("exit %d\n%s%s", r.code, r.stdout, r.err)
	if r.code != exitUnreachable {
		t.Errorf("kaylee sync --once --config: exit %d, want %d", r.code, exitUnreachable)
	}

	for _, p := range []string{"/api/v1/sources", "/api/v1/state", "/api/v1/events", "/metrics", "/readyz"} {
		code, body := get(addr, p)
		if code == 0 {
			t.Fatalf("GET %s: %s", p, body)
		}
		outputs["GET "+p] = body
	}
	for _, n := range names {
		_, outputs["GET /api/v1/sources/"+n] = get(addr, "/api/v1/sources/"+n)
		outputs["kaylee sources "+n] = kaylee(t, env, "sources", n).stdout
	}
	outputs["GET /api/v1/stream"] = readStream(t, "http://"+addr+"/api/v1/stream", 2*time.Second)
	for _, args := range [][]string{{"sources"}, {"sources", "-o", "json"}, {"events"}, {"events", "-o", "json"}} {
		r := kaylee(t, env, args...)
		outputs["kaylee "+strings.Join(args, " ")] = r.stdout + r.err
	}
	kvs, err := e.Client(t).Get(context.Background(), store.DefaultPrefix+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range kvs.Kvs {
		outputs["etcd key and value "+string(kv.Key)] = string(kv.Key) + " " + string(kv.Value)
	}
	if _, err := agent.Stop(); err != nil {
		t.Fatal(err)
	}
	outputs["the agent's log"] = agent.errb.String()
	outputs["notification bodies"] = rcv.all()

	for _, what := range sortedKeys(outputs) {
		out := outputs[what]
		for _, secret := range []string{credPassword, credToken} {
			// Any case: a source name made from the URL is lower-cased.
			if i := strings.Index(strings.ToLower(out), strings.ToLower(secret)); i >= 0 {
				t.Errorf("%s shows the secret %q: …%s…", what, secret, out[max(i-160, 0):min(i+len(secret)+80, len(out))])
			}
		}
	}

	for _, what := range []string{"kaylee sync --once --repo <pw-down>", "kaylee sync --once --repo <tok-401>", "kaylee sync --once --repo <pw-404>", "kaylee sources"} {
		t.Logf("%s:\n%s", what, outputs[what])
	}

	// What is shown still says where: the host and path, the secret
	// replaced.
	var src struct {
		Repo        string
		LastAttempt struct{ Result, Message string }
	}
	if err := json.Unmarshal([]byte(outputs["GET /api/v1/sources/pw-down"]), &src); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(src.LastAttempt.Message, down+"/units.git") || !strings.Contains(src.LastAttempt.Message, "***@") {
		t.Errorf("pw-down's last attempt should name the host and path with *** for the secret: %q", src.LastAttempt.Message)
	}
	if err := json.Unmarshal([]byte(outputs["GET /api/v1/sources/tok-ok"]), &src); err != nil {
		t.Fatal(err)
	}
	if want := "http://***@" + tokOK; src.Repo != want {
		t.Errorf("tok-ok's repo = %q, want %q", src.Repo, want)
	}
	if out := outputs["kaylee sync --once --repo <pw-401>"]; !strings.Contains(out, "authentication required") || !strings.Contains(out, other) {
		t.Errorf("sync --once against the 401 server should say authentication required and name %s:\n%s", other, out)
	}
	if out := outputs["kaylee sync --once --repo <tok-404>"]; !strings.Contains(out, "repository not found") || !strings.Contains(out, openHost+"/nope.git") {
		t.Errorf("sync --once against the 404 server should say repository not found and name %s/nope.git:\n%s", openHost, out)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// kaylee dev names its repository without the credentials in the URL,
// in its banner and in its log.
func TestDevHidesRepoCredentials(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()
	for _, repo := range []string{"http://kaylee:" + credPassword + "@" + down + "/units.git", "http://" + credToken + "@" + down + "/units.git"} {
		p := startKaylee(t, nil, "dev", "--repo", repo, "--listen-client", "http://"+freePort(t), "--data-dir", t.TempDir(),
			"--machines", "1", "--listen", "", "--cache-dir", t.TempDir())
		waitOutput(t, p.out, "ready:", 60*time.Second)
		waitFor(t, 30*time.Second, "the first pass failed", func() bool { return strings.Contains(p.out.String()+p.errb.String(), "connection refused") })
		if _, err := p.Stop(); err != nil {
			t.Fatal(err)
		}
		out := p.out.String() + p.errb.String()
		if !strings.Contains(out, "git: http://***@"+down+"/units.git") {
			t.Errorf("dev's banner should name the repository masked:\n%s", out)
		}
		for _, secret := range []string{credPassword, credToken} {
			if strings.Contains(out, secret) {
				t.Errorf("kaylee dev shows the secret %q:\n%s", secret, out)
			}
		}
	}
}
