package console

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kaylee-gitops/kaylee/console/browsertest"
	"github.com/kaylee-gitops/kaylee/store"
)

// within runs a browser step that must finish before d.
func within(t *testing.T, ctx context.Context, d time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		browsertest.Screenshot(t, ctx, "failed-"+strings.NewReplacer(" ", "-", "/", "-").Replace(what))
		t.Fatalf("%s: not within %s: %v", what, d, err)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// The dashboard shows a unit within 2s of it being stored, and its phase
// changing, live, without a reload; a unit's page shows its replicas,
// history and events.
func TestDashboardLive(t *testing.T) {
	w := newWorld(t)
	b := browsertest.New(t, 1400, 1000)
	within(t, b, 20*time.Second, "page loads", chromedp.Navigate(w.srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#live.on`)))
	// A marker that a reload would lose.
	eval[bool](t, b, `window.kayleeMarker = true`)

	rev := w.commit(map[string]string{"units/web.yaml": unitWeb})
	stored := time.Now()
	within(t, b, 2*time.Second, "the unit stored shows", chromedp.WaitVisible(chromedp.CSS(`tr[data-unit="web"]`)))
	t.Logf("the unit showed %s after it was stored", time.Since(stored).Round(time.Millisecond))
	if got := text(t, b, `tr[data-unit="web"] .revision`); got != rev[:7] {
		t.Errorf("revision column %q, want %s", got, rev[:7])
	}
	if got := text(t, b, `tr[data-unit="web"] .source`); got != "team-a" {
		t.Errorf("source column %q, want team-a", got)
	}
	first := text(t, b, `tr[data-unit="web"] .phase`)
	t.Logf("phase first shown: %s", first)
	browsertest.Screenshot(t, b, "1-unit-stored")

	within(t, b, 60*time.Second, "the phase changes to running", chromedp.WaitVisible(chromedp.CSS(`tr[data-unit="web"] .phase-running`)))
	if got := text(t, b, `tr[data-unit="web"] .count`); got != "3/3" {
		t.Errorf("replicas %q, want 3/3", got)
	}
	if first == "running" {
		t.Errorf("the phase was running at once: the test saw no change")
	}
	// The cluster view: three machines with their metadata, a replica on each.
	within(t, b, 10*time.Second, "replicas on the machines", chromedp.WaitVisible(chromedp.CSS(`.machine [data-replica^="k2:web:"]`)))
	if n := eval[int](t, b, `document.querySelectorAll('.machine').length`); n != 3 {
		t.Errorf("%d machines shown, want 3", n)
	}
	if n := eval[int](t, b, `[...document.querySelectorAll('.machine')].filter(m => m.querySelector('[data-replica^="k2:web:"]') && /az=[abc]/.test(m.textContent)).length`); n != 3 {
		t.Errorf("%d machines show a web replica and their az, want 3", n)
	}
	if got := text(t, b, `[data-source="team-a"] .revision`); got != rev[:7] {
		t.Errorf("source card revision %q, want %s", got, rev[:7])
	}
	within(t, b, 10*time.Second, "the events list", chromedp.WaitVisible(chromedp.CSS(`#event-list [data-kind="rollout-succeeded"]`)))
	if !eval[bool](t, b, `window.kayleeMarker === true`) {
		t.Error("the page was reloaded: updates must come live")
	}
	browsertest.Screenshot(t, b, "2-running")

	// A broken file in git is shown on the unit and its source, as text:
	// what git holds never becomes markup.
	w.commit(map[string]string{"units/web.yaml": "name: web\nreplicas: \"<img src=x onerror=window.pwned=1>\"\napps:\n- image: docker://nginx:2\n"})
	within(t, b, 5*time.Second, "the git error shows", chromedp.WaitVisible(chromedp.CSS(`tr[data-unit="web"] .gitbad`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-source="team-a"] .errors`)))
	if got := text(t, b, `[data-source="team-a"] .errors`); !strings.Contains(got, "units/web.yaml:2") || !strings.Contains(got, "<img src=x") {
		t.Errorf("source errors %q, want the file, the line and the value as text", got)
	}
	if n := eval[int](t, b, `document.querySelectorAll('main img').length + (window.pwned ? 100 : 0)`); n != 0 {
		t.Errorf("a value from git became markup (%d)", n)
	}

	// The unit's page.
	within(t, b, 10*time.Second, "the unit's page", chromedp.Click(chromedp.CSS(`tr[data-unit="web"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`#unit-history tr[data-revision="1"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#unit-replicas tr[data-replica]`)),
		chromedp.WaitVisible(chromedp.CSS(`#unit-events [data-kind="created"]`)))
	if n := eval[int](t, b, `document.querySelectorAll('#unit-replicas tr[data-replica]').length`); n != 3 {
		t.Errorf("%d replicas on the unit's page, want 3", n)
	}
	if got := text(t, b, `#unit-fields`); !strings.Contains(got, "units/web.yaml:2") {
		t.Errorf("unit fields %q lack the git error", got)
	}
	browsertest.Screenshot(t, b, "3-unit-page")

	// A restart rolls the unit: its page follows the rollout live.
	if _, err := w.store.Restart(context.Background(), "web", "test"); err != nil {
		t.Fatal(err)
	}
	within(t, b, 60*time.Second, "the restart's rollout on the unit's page",
		chromedp.WaitVisible(chromedp.CSS(`#unit-history tr[data-revision="2"] .outcome-deployed`)))
	if !eval[bool](t, b, `window.kayleeMarker === true`) {
		t.Error("the page was reloaded")
	}
}

// On a phone's screen the page fits its width (tables scroll inside their
// box) and shows the units.
func TestDashboardOnAPhone(t *testing.T) {
	w := newWorld(t)
	w.commit(map[string]string{"units/web.yaml": unitWeb, "units/db.yaml": unitDB})
	w.waitPhase("web", store.PhaseRunning, 60*time.Second)
	b := browsertest.New(t, 390, 844)
	within(t, b, 20*time.Second, "page loads", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(w.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`tr[data-unit="db"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.machine`)))
	// A mobile browser widens its layout to content that overflows: compare
	// with the screen's width, not the window's.
	over := eval[string](t, b, `(() => { const w = document.documentElement.scrollWidth;
		return w > 391 ? w + "px > 390px" : "" })()`)
	if over != "" {
		t.Errorf("the page is wider than the phone's screen: %s", over)
	}
	if fs := eval[float64](t, b, `parseFloat(getComputedStyle(document.querySelector('td')).fontSize)`); fs < 12 {
		t.Errorf("table text %gpx on a phone: too small to read", fs)
	}
	browsertest.Screenshot(t, b, "phone")
}

// The page loads nothing from elsewhere: every asset is embedded.
func TestDashboardNeedsNoExternalAsset(t *testing.T) {
	w := newWorld(t)
	b := browsertest.New(t, 1200, 800)
	within(t, b, 20*time.Second, "page loads", chromedp.Navigate(w.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`#live.on`)))
	urls := eval[[]string](t, b, `performance.getEntriesByType('resource').map(e => e.name)`)
	if len(urls) == 0 {
		t.Fatal("no resource loaded: the check checks nothing")
	}
	for _, u := range urls {
		if !strings.HasPrefix(u, w.srv.URL+"/") {
			t.Errorf("the page loaded %s from elsewhere", u)
		}
	}
	if got := fmt.Sprint(eval[int](t, b, `document.styleSheets.length`)); got != "1" {
		t.Errorf("%s style sheets, want the embedded one", got)
	}
}
