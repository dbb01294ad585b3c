package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/notify"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

const (
	appVulnerable = "name: app\napps:\n- image: docker://app:1.0-vulnerable\n"
	appFixed      = "name: app\napps:\n- image: docker://app:1.1-fixed\n"
)

// kaylee sync --once after the branch was moved back (git push --force
// origin A:main after B), over smart HTTP: exit 3 with both revisions,
// what to do, and nothing written; kaylee sources and kaylee events say
// so; --allow-rewind applies it for that run, and says so.
func TestSyncOnceRewind(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	repo := gittest.NewRepo(t)
	url := repo.ServeHTTP("", "")
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_CACHE_DIR": t.TempDir()}
	args := []string{"sync", "--once", "--repo", url, "--path", "units", "--source", "team"}

	repo.Write(map[string]string{"units/app.yaml": appVulnerable})
	a := repo.Commit("A")
	if r := kaylee(t, env, args...); r.code != 0 {
		t.Fatalf("A: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	repo.Write(map[string]string{"units/app.yaml": appFixed})
	b := repo.Commit("B: the fix")
	if r := kaylee(t, env, args...); r.code != 0 || !strings.Contains(r.stdout, "1 updated") {
		t.Fatalf("B: exit %d\n%s%s", r.code, r.stdout, r.err)
	}

	repo.Git("reset", "-q", "--hard", a) // what git push --force origin A:main does to the server
	r := kaylee(t, env, args...)
	want := fmt.Sprintf(`kaylee: sync refused: source "team": main@%s (%s) does not descend from main@%s (%s), the revision last applied; `+
		`the ref was moved back or its history rewritten (or the source now follows another ref or repository): allow rewinds for this source to apply it; `+
		`nothing was written; --allow-rewind applies it (this run only), if that is what you want`, a[:7], a, b[:7], b)
	if r.code != exitRefused || strings.TrimSpace(r.err) != want || r.stdout != "" {
		t.Fatalf("moved back: exit %d\nstdout %q\nstderr %s\nwant exit 3 and\n%s", r.code, r.stdout, r.err, want)
	}
	if got := storedUnits(t, e)["app"]; got != `{"name":"app","apps":[{"image":"docker://app:1.1-fixed"}]}` {
		t.Fatalf("app in etcd after the refusal: %s", got)
	}
	if r := kaylee(t, env, "sources", "team"); !strings.Contains(r.stdout, "Last attempt:  refused") || !strings.Contains(r.stdout, "does not descend from main@"+b[:7]) ||
		!strings.Contains(r.stdout, b[:7]) {
		t.Fatalf("kaylee sources team:\n%s%s", r.stdout, r.err)
	}
	if r := kaylee(t, env, "events", "team"); !strings.Contains(r.stdout, "sync-failed") || !strings.Contains(r.stdout, "refused: sync refused") {
		t.Fatalf("kaylee events team:\n%s%s", r.stdout, r.err)
	}

	// Allowed for one run: applied, and the summary says what happened.
	r = kaylee(t, env, append(args, "--allow-rewind")...)
	wantSummary := fmt.Sprintf("main@%s: 0 created, 1 updated, 0 pruned, 0 unchanged; rewound from main@%s (%s) to main@%s (%s), which does not descend from it; allowed by --allow-rewind",
		a[:7], b[:7], b, a[:7], a)
	if r.code != 0 || strings.TrimSpace(r.stdout) != wantSummary {
		t.Fatalf("--allow-rewind: exit %d\n%s%s\nwant %s", r.code, r.stdout, r.err, wantSummary)
	}
	if got := storedUnits(t, e)["app"]; !strings.Contains(got, "app:1.0-vulnerable") {
		t.Fatalf("app after the allowed rewind: %s", got)
	}
	if r := kaylee(t, env, "events", "team"); !strings.Contains(r.stdout, "rewound") || !strings.Contains(r.stdout, "allowed by --allow-rewind") {
		t.Fatalf("kaylee events team after the allowed rewind:\n%s%s", r.stdout, r.err)
	}
	// The flag was for that run; A is now what was applied.
	if r := kaylee(t, env, args...); r.code != 0 || !strings.Contains(r.stdout, "0 updated") {
		t.Fatalf("after: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
}

// With verify: on, an older signed commit is still refused: a signature
// proves who signed, not that the commit is the newest. allowRewind: true
// in the file allows it per source, --allow-rewind beside --config for
// one kaylee sync --once run, and a process that keeps running refuses
// the flag.
func TestSyncConfigRewindSigned(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	alice := gittest.NewSSHSigner(t, "alice@example.com")
	repo := gittest.NewRepo(t)
	url := repo.ServeHTTP("", "")
	dir := t.TempDir()
	writeConfig(t, dir, "team.signers", alice.AllowedSigner("")+"\n")
	config := func(allow bool) string {
		extra := ""
		if allow {
			extra = "  allowRewind: true\n"
		}
		return writeConfig(t, dir, "kaylee.yaml", fmt.Sprintf("sources:\n- name: team\n  repo: %s\n  path: units\n  verify: {mode: HEAD, allowedSigners: team.signers}\n%s", url, extra))
	}
	cfg := config(false)
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_CACHE_DIR": t.TempDir()}
	args := []string{"sync", "--once", "--config", cfg}

	repo.Write(map[string]string{"units/app.yaml": appVulnerable})
	a := repo.CommitSigned("A", alice)
	repo.Write(map[string]string{"units/app.yaml": appFixed})
	if r := kaylee(t, env, args...); r.code != 0 {
		t.Fatalf("A: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	b := repo.CommitSigned("B: the fix", alice)
	if r := kaylee(t, env, args...); r.code != 0 || !strings.Contains(r.stdout, "1 updated") {
		t.Fatalf("B: exit %d\n%s%s", r.code, r.stdout, r.err)
	}

	repo.Git("reset", "-q", "--hard", a)
	r := kaylee(t, env, args...)
	if r.code != exitRefused || !strings.HasPrefix(r.err, `kaylee: source team: sync refused: source "team": main@`+a[:7]) ||
		!strings.Contains(r.err, "does not descend from main@"+b[:7]) ||
		!strings.HasSuffix(strings.TrimSpace(r.err), "; allowRewind: true on the source in the config file, or --allow-rewind for one run, applies it, if that is what you want") {
		t.Fatalf("signed A after signed B: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	if got := storedUnits(t, e)["app"]; !strings.Contains(got, "app:1.1-fixed") {
		t.Fatalf("app in etcd after the refusal: %s", got)
	}

	for _, cmd := range [][]string{{"agent"}, {"sync"}} {
		r := kaylee(t, env, append(cmd, "--config", cfg, "--allow-rewind")...)
		if r.code == 0 || !strings.Contains(r.err, "--allow-rewind with --config allows rewinds for one run of kaylee sync --once") {
			t.Fatalf("kaylee %s --config --allow-rewind: exit %d\n%s", cmd[0], r.code, r.err)
		}
	}

	r = kaylee(t, env, append(args, "--allow-rewind")...)
	if r.code != 0 || !strings.Contains(r.stdout, "team: main@"+a[:7]+": 0 created, 1 updated") || !strings.Contains(r.stdout, "allowed by --allow-rewind") {
		t.Fatalf("--config --allow-rewind: exit %d\n%s%s", r.code, r.stdout, r.err)
	}

	// B' (B amended, on A) descends from A, now applied: nothing to allow.
	// Back to B, which B' does not hold: refused, then allowed per source
	// by the file.
	repo.Write(map[string]string{"units/app.yaml": appFixed + "replicas: 2\n"})
	amended := repo.CommitSigned("B': the fix, amended", alice)
	if r := kaylee(t, env, args...); r.code != 0 || strings.Contains(r.stdout, "rewound") {
		t.Fatalf("B' on A: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	repo.Git("reset", "-q", "--hard", b)
	if r := kaylee(t, env, args...); r.code != exitRefused || !strings.Contains(r.err, "does not descend from main@"+amended[:7]) {
		t.Fatalf("B after B', not allowed: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	config(true)
	r = kaylee(t, env, args...)
	if r.code != 0 || !strings.Contains(r.stdout, "allowed by "+cfg+":6: sources[0].allowRewind: true") {
		t.Fatalf("allowRewind: true: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
}

// The agent (here kaylee sync without --once, with --config) tells a
// refused rewind to the notification endpoints, with the revision and the
// reason, and an allowed one with the summary saying it rewound.
func TestRewindNotified(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	repo := gittest.NewRepo(t)
	dir := t.TempDir()
	rcv := newReceiver(t, "notify-secret")
	writeConfig(t, dir, "notify.secret", "notify-secret\n")
	config := func(allow bool) string {
		extra := ""
		if allow {
			extra = "  allowRewind: true\n"
		}
		return writeConfig(t, dir, "kaylee.yaml", fmt.Sprintf("sources:\n- name: team\n  repo: %s\n  interval: 1s\n%snotifications:\n- url: %s\n  secretFile: notify.secret\n",
			repo.FileURL(), extra, rcv.URL))
	}
	cfg := config(false)
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	cache := t.TempDir()
	s := store.New(e.Client(t), store.DefaultPrefix)
	applied := func(rev string) {
		t.Helper()
		waitFor(t, 30*time.Second, "record at "+rev[:7], func() bool {
			r, err := s.GetSyncRecord(context.Background(), "team")
			return err == nil && r.Revision == rev
		})
	}

	repo.Write(map[string]string{"app.yaml": appVulnerable})
	a := repo.Commit("A")
	p := startKaylee(t, env, "sync", "--config", cfg, "--cache-dir", cache, "--lease-ttl", "2s")
	applied(a)
	repo.Write(map[string]string{"app.yaml": appFixed})
	b := repo.Commit("B")
	applied(b)
	repo.Git("reset", "-q", "--hard", a)
	got := rcv.has("the rewind refused", func(e notify.Event) bool { return e.Kind == notify.KindSync && e.Result == store.AttemptRefused })
	if got.Revision != a || got.Ref != "main" || got.RewoundFrom != b || !strings.Contains(got.Reason, "main@"+a[:7]+" ("+a+") does not descend from main@"+b[:7]) {
		t.Fatalf("notification %+v", got)
	}
	if !strings.Contains(p.errb.String(), "does not descend from") {
		t.Fatalf("the log does not say why:\n%s", p.errb.String())
	}
	if _, err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if u, err := s.GetUnit(context.Background(), "app"); err != nil || !strings.Contains(string(u.Raw), "app:1.1-fixed") {
		t.Fatalf("app while refused: %s %v", u.Raw, err)
	}

	config(true)
	startKaylee(t, env, "sync", "--config", filepath.Join(dir, "kaylee.yaml"), "--cache-dir", cache, "--lease-ttl", "2s")
	applied(a)
	got = rcv.has("the rewind allowed", func(e notify.Event) bool {
		return e.Kind == notify.KindSync && strings.Contains(e.Summary, "rewound from")
	})
	if got.Revision != a || got.Updated != 1 || got.RewoundFrom != b || !strings.Contains(got.Summary, "allowed by "+cfg+":5: sources[0].allowRewind: true") {
		t.Fatalf("notification %+v", got)
	}
}
