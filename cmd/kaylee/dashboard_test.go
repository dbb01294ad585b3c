package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kaylee-gitops/kaylee/console/browsertest"
	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
)

func browse[T any](t *testing.T, ctx context.Context, d time.Duration, what string, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		browsertest.Screenshot(t, ctx, "failed")
		t.Fatalf("%s: not within %s: %v", what, d, err)
	}
	return v
}

// The "done when": the dashboard of kaylee dev --repo … --path
// examples shows every example unit, their machines and the revision, and
// a commit's rollout live.
func TestDevDashboard(t *testing.T) {
	t.Parallel()
	repo := gittest.NewRepo(t)
	files := map[string]string{}
	names := []string{"api", "countly", "db-primary", "ingress", "node-exporter", "search"}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata/examples", n+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		files["examples/"+n+".yaml"] = string(b)
	}
	repo.Write(files)
	rev := repo.Commit("examples")
	listen, etcd := freePort(t), "http://"+freePort(t)
	p := startKaylee(t, nil, "dev", "--repo", repo.Dir, "--path", "examples", "--listen-client", etcd,
		"--data-dir", t.TempDir(), "--cache-dir", t.TempDir(), "--listen", listen, "--min-ready", "500ms", "--interval", "2s")
	waitOutput(t, p.out, "dashboard: http://"+listen+"/", 60*time.Second)

	b := browsertest.New(t, 1400, 900)
	browse(t, b, 20*time.Second, "the dashboard loads", chromedp.Steps(chromedp.Navigate("http://"+listen+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#live.on`))))
	for _, n := range names {
		browse(t, b, 60*time.Second, n+" running", chromedp.WaitVisible(chromedp.CSS(`tr[data-unit="`+n+`"] .phase-running`)))
	}
	revs := browse(t, b, 5*time.Second, "revisions", chromedp.Evaluate[[]string](`[...document.querySelectorAll('#unit-rows .revision')].map(e => e.textContent)`))
	if len(revs) != len(names) {
		t.Fatalf("%d rows, want %d", len(revs), len(names))
	}
	for i, r := range revs {
		if r != rev[:7] {
			t.Errorf("%s's revision %q, want %s", names[i], r, rev[:7])
		}
	}
	machines := browse(t, b, 5*time.Second, "machines", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('.machine')].map(m => m.querySelector('h4').textContent.split(' ')[0] + ' ' + [...m.querySelectorAll('.chip')].map(c => c.textContent).join(',') + ' ' + m.querySelectorAll('[data-replica]').length)`))
	want := []string{"192.0.2.1 az=a,role=worker,ssd=false", "192.0.2.2 az=b,role=worker,ssd=false", "192.0.2.3 az=c,role=edge,ssd=false"}
	if len(machines) != 3 {
		t.Fatalf("machines shown: %q, want 3", machines)
	}
	for i, m := range machines {
		if !strings.HasPrefix(m, want[i]+" ") || strings.HasSuffix(m, " 0") {
			t.Errorf("machine %q, want %q with replicas", m, want[i])
		}
	}
	browsertest.Screenshot(t, b, "1-examples-running")

	// Record every phase countly's row shows from now on.
	browse(t, b, 5*time.Second, "observer", chromedp.Evaluate[bool](`(() => {
		window.kayleeMarker = true; window.phases = [];
		const note = () => { const e = document.querySelector('tr[data-unit="countly"] .phase');
			const p = e && e.textContent; if (p && window.phases[window.phases.length - 1] !== p) window.phases.push(p); };
		new MutationObserver(note).observe(document.getElementById('unit-rows'), { childList: true, subtree: true, characterData: true });
		return true })()`))
	repo.Write(map[string]string{"examples/countly.yaml": strings.Replace(files["examples/countly.yaml"], "countly-docker:latest", "countly-docker:v2", 1)})
	rev2 := repo.Commit("countly v2")
	browse(t, b, 60*time.Second, "countly's new revision rolled out",
		chromedp.Poll[bool](`(() => { const r = document.querySelector('tr[data-unit="countly"]');
			return r && r.querySelector('.revision').textContent === "`+rev2[:7]+`" && r.querySelector('.phase').textContent === "running" &&
				window.phases.includes("progressing") })()`, chromedp.WithPollingTimeout(60*time.Second)))
	phases := browse(t, b, 5*time.Second, "phases", chromedp.Evaluate[[]string](`window.phases`))
	t.Logf("countly's phases, live: %v", phases)
	if !browse(t, b, 5*time.Second, "marker", chromedp.Evaluate[bool](`window.kayleeMarker === true`)) {
		t.Error("the page was reloaded: the rollout must show live")
	}
	browse(t, b, 10*time.Second, "the rollout's events", chromedp.WaitVisible(chromedp.CSS(`#event-list [data-kind="rollout-succeeded"]`)))
	browsertest.Screenshot(t, b, "2-countly-rolled-out")

	// countly rolled back to its first revision, and a commit that breaks
	// search's file: the rows say so, their messages wholly readable
	// (docs/dashboard.png is this screenshot).
	waitFor(t, 10*time.Second, "countly's revision 2 deployed", func() bool {
		return strings.Contains(kaylee(t, map[string]string{"KAYLEE_ETCD_ENDPOINTS": etcd}, "history", "countly").stdout, "2         ")
	})
	if r := kaylee(t, map[string]string{"KAYLEE_ETCD_ENDPOINTS": etcd, "USER": "ops"}, "rollback", "countly"); r.code != 0 {
		t.Fatalf("rollback countly: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	repo.Write(map[string]string{"examples/search.yaml": strings.Replace(files["examples/search.yaml"], "replicas:", "replcas:", 1)})
	repo.Commit("search: a typo")
	browse(t, b, 60*time.Second, "countly rolled back, search's file error",
		chromedp.Poll[bool](`(() => { const c = document.querySelector('tr[data-unit="countly"]');
			return c && c.querySelector('.phase').textContent === "rolled back" && c.querySelector('.revision').textContent === "`+rev[:7]+`" &&
				!!document.querySelector('tr[data-unit="search"] .gitbad') })()`, chromedp.WithPollingTimeout(60*time.Second)))
	if bad := browse(t, b, 5*time.Second, "messages", chromedp.Evaluate[[]string](browsertest.Clipped(`#unit-rows .message`))); len(bad) > 0 {
		t.Errorf("messages not wholly readable at 1400 px:\n%s", strings.Join(bad, "\n"))
	}
	browsertest.Screenshot(t, b, "3-countly-rolled-back-search-broken")
}
