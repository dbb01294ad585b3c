package realfleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/fleet/realfleet"
	"github.com/kaylee-gitops/kaylee/notify"
	"github.com/kaylee-gitops/kaylee/store"
)

// installEvidence runs the evidence publisher on every machine as
// contrib/systemd/kaylee-evidence.service runs it: the kaylee binary in
// /usr/local/bin, etcd's address (and this env's prefix) in
// /etc/default/kaylee. It is stopped and removed when the test ends.
func (e *env) installEvidence() {
	e.t.Helper()
	unit, err := os.ReadFile(filepath.Join(realfleet.Root(), "contrib", "systemd", "kaylee-evidence.service"))
	if err != nil {
		e.t.Fatal(err)
	}
	self, err := os.ReadFile(bin)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx := context.Background()
	for _, m := range e.c.Machines {
		root := e.c.Root(m)
		for path, f := range map[string]struct {
			body []byte
			mode os.FileMode
		}{
			"usr/local/bin/kaylee":                       {self, 0o755},
			"etc/default/kaylee":                         {[]byte("KAYLEE_ETCD_ENDPOINTS=" + e.c.Endpoint + "\nKAYLEE_ETCD_PREFIX=" + e.prefix + "\n"), 0o644},
			"etc/systemd/system/kaylee-evidence.service": {unit, 0o644},
		} {
			if err := os.WriteFile(filepath.Join(root, path), f.body, f.mode); err != nil {
				e.t.Fatalf("%s: %v", m.Name, err)
			}
		}
		if out, err := e.c.Exec(ctx, m, "/bin/sh", "-c", "systemctl daemon-reload && systemctl restart kaylee-evidence.service"); err != nil {
			e.t.Fatalf("%s: starting kaylee evidence: %v\n%s", m.Name, err, out)
		}
	}
	e.t.Cleanup(func() {
		for _, m := range e.c.Machines {
			if e.t.Failed() {
				out, _ := e.c.Exec(ctx, m, "journalctl", "-u", "kaylee-evidence", "-n", "30", "--no-pager")
				e.t.Logf("--- kaylee evidence on %s:\n%s", m.Name, out)
			}
			_, _ = e.c.Exec(ctx, m, "systemctl", "stop", "kaylee-evidence.service")
			root := e.c.Root(m)
			for _, p := range []string{"etc/systemd/system/kaylee-evidence.service", "etc/default/kaylee", "usr/local/bin/kaylee"} {
				_ = os.Remove(filepath.Join(root, p))
			}
			_, _ = e.c.Exec(ctx, m, "systemctl", "daemon-reload")
		}
	})
	for _, m := range e.c.Machines {
		e.waitFor("kaylee evidence active on "+m.Name, 30*time.Second, func() (bool, string) {
			out, _ := e.c.Exec(ctx, m, "systemctl", "is-active", "kaylee-evidence.service")
			return strings.TrimSpace(out) == "active", out
		})
	}
}

// receiver is a real HTTP endpoint for Kaylee's notifications.
type receiver struct {
	url string
	mu  sync.Mutex
	got []notify.Event
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var n notify.Event
		if err := json.Unmarshal(b, &n); err != nil {
			t.Errorf("notification: %v: %s", err, b)
		}
		r.mu.Lock()
		r.got = append(r.got, n)
		r.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

func (r *receiver) failed(specHash string) (notify.Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.got {
		if n.Kind == notify.KindRollout && n.Result == "failed" && n.SpecHash == specHash {
			return n, true
		}
	}
	return notify.Event{}, false
}

// TestRealFailureEvidence: a version whose process prints a line and
// exits 3, then one whose image exists nowhere. Each rollout fails on
// its restart loop, and what the replica's machine saw — gathered there
// by the unit's own ExecStopPost and published by kaylee evidence
// (contrib's systemd unit) — is in `kaylee status` and the notification:
// the exit status and the journal line, with the unit's env value that
// the process printed hidden. Then a version whose health check gets 500:
// the check's last answer is told too.
func TestRealFailureEvidence(t *testing.T) {
	shareable(t) // t.Parallel, longest first: see newEnv
	e := newEnv(t, "ev")
	e.installEvidence()
	rcv := newReceiver(t)
	cfg := filepath.Join(e.dir, "server.yaml")
	if err := os.WriteFile(cfg, []byte("notifications:\n- url: "+rcv.url+"\n  events: [rollout]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// --min-ready 20s: v2 exits at once and v3's docker run fails its
	// pull, and neither may count as ready (which forgets the restarts
	// seen, so the rollout never fails on its restart loop). At the
	// default 3s one did: on a loaded machine (the shareable tests and two
	// CPU hogs beside them) docker run took more than 3s to start the
	// container and exit, its unit active/running meanwhile.
	e.server("--config", cfg, "--rollout-timeout", "5m", "--min-ready", "20s")
	e.must("run", "--wait", "--timeout", "3m", e.unit("web", webUnit("web", 2, 1, "v1")))
	e.waitContainers("web", 2, "v1", 30*time.Second)

	// v2 prints its --version, which holds the env value, and exits 3.
	const secret = "s3cret-token-42"
	start := time.Now()
	e.must("run", e.unit("web", webUnit("web", 2, 1, "v2", "'--version=${TOKEN}'", "--exit=3")+"env:\n- {name: TOKEN, value: "+secret+"}\n"))
	st, took := e.waitPhase("web", "failed", 3*time.Minute)
	t.Logf("exit 3: failed after %s: %s", took.Round(100*time.Millisecond), st.Message)
	out := e.must("status", "web")
	t.Logf("kaylee status web:\n%s", out)
	for _, want := range []string{"on the machine: exit status 3; last line: \"testimage ***: exiting 3 at once\"",
		"Evidence from the machine", "exit status 3 (systemd: exit-code)", "    testimage ***: exiting 3 at once"} {
		if !strings.Contains(out, want) {
			t.Errorf("kaylee status web lacks %q", want)
		}
	}
	if strings.Contains(out, secret) {
		t.Errorf("kaylee status shows the env value %q", secret)
	}
	var n notify.Event
	e.waitFor("the rollout failed notification", 30*time.Second, func() (bool, string) {
		var ok bool
		n, ok = rcv.failed(st.SpecHash)
		return ok, fmt.Sprint(len(rcv.got), " notifications")
	})
	nb, _ := json.Marshal(n)
	t.Logf("notification: %s", nb)
	if n.Evidence == nil || n.Evidence.ExitStatus != "3" || !strings.Contains(strings.Join(n.Evidence.Journal, "\n"), "testimage ***: exiting 3 at once") ||
		strings.Contains(string(nb), secret) {
		t.Errorf("notification's evidence: %s", nb)
	}
	e.waitContainers("web", 2, "v1", time.Minute) // the old version serves on
	t.Logf("v2 failed and told in %s", time.Since(start).Round(100*time.Millisecond))

	// v3: an image that exists nowhere (docker run pulls it and fails).
	e.must("run", e.unit("web", strings.Replace(webUnit("web", 2, 1, "v3"), realfleet.Image+":v3", "kaylee-nowhere/web:3", 1)))
	e.waitFor("v3's rollout to fail", 3*time.Minute, func() (bool, string) {
		st2, _ := e.status("web")
		return st2.Phase == "failed" && st2.SpecHash != st.SpecHash, st2.Phase + ": " + st2.Message
	})
	st3, _ := e.status("web")
	out = e.must("status", "web")
	t.Logf("kaylee status web (image nowhere):\n%s", out)
	// The last line that tells something is docker's error, not its
	// "See 'docker run --help'." after it.
	if st3.Evidence == nil || st3.Evidence.ExitStatus != "125" || !strings.Contains(out, `on the machine: exit status 125; last line: "docker: Error response from daemon`) ||
		!strings.Contains(out, "    Unable to find image 'kaylee-nowhere/web:3' locally") {
		t.Errorf("status of an image that exists nowhere: %+v\n%s", st3.Evidence, out)
	}
	e.waitFor("the second rollout failed notification", 30*time.Second, func() (bool, string) {
		n, ok := rcv.failed(st3.SpecHash)
		return ok && n.Evidence != nil && n.Evidence.ExitStatus == "125", fmt.Sprint(len(rcv.got), " notifications")
	})

	// v3 with --unhealthy serves, but its health check gets 500: the check's last answer
	// is in the evidence.
	e.must("run", e.unit("web", healthUnit("web", 2, "v3", "--unhealthy")))
	var st4 store.Status
	e.waitFor("the unhealthy version's rollout to fail with the health check's answer", 3*time.Minute, func() (bool, string) {
		st4, _ = e.status("web")
		return st4.Phase == "failed" && st4.SpecHash != st3.SpecHash && st4.Evidence != nil, st4.Phase + ": " + st4.Message
	})
	out = e.must("status", "web")
	t.Logf("kaylee status web (health check):\n%s", out)
	if !strings.Contains(st4.Message, "did not become healthy") || !strings.HasPrefix(st4.Evidence.Probe, "HTTP 500 from ") ||
		!strings.Contains(out, "  Health check:  HTTP 500 from ") || !strings.Contains(out, "not healthy within 12s (last: HTTP 500 from ") {
		t.Errorf("status of a failed health check: %q\n%s", st4.Evidence.Probe, out)
	}
}
