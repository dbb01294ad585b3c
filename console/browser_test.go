package console

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kaylee-gitops/kaylee/console/browsertest"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/view/viewtest"
)

// within runs a browser step that must finish before d.
func within(t *testing.T, ctx context.Context, d time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		browsertest.Screenshot(t, ctx, "failed-"+strings.NewReplacer(" ", "-", "/", "-").Replace(what))
		logPage(t, ctx)
		t.Fatalf("%s: not within %s: %v", what, d, err)
	}
}

// logPage logs what the page shows (its route and the text of the view it
// shows), so that a failure can be read from the log alone.
func logPage(t *testing.T, ctx context.Context) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(sctx, chromedp.Evaluate[string](`location.hash + "\n" + [...document.querySelectorAll("main > section:not([hidden])")].map((e) => e.id + ": " + e.innerText.slice(0, 1500)).join("\n")`))
	if err != nil {
		t.Logf("the page: %v", err)
		return
	}
	t.Logf("the page shows %s", s)
}

// text is the visible text of the first element sel matches, read in one
// step in the page. (chromedp.Text finds the node, then reads it: a live
// update that redraws the table between the two leaves a detached node,
// whose text chromedp reads as "".)
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e === null ? null : e.innerText; })()`, sel)
	for {
		s, err := chromedp.Run(sctx, chromedp.Evaluate[*string](js))
		switch {
		case err == nil && s != nil:
			return strings.TrimSpace(*s)
		case err == nil && sctx.Err() == nil:
			time.Sleep(50 * time.Millisecond) // not drawn yet
		case err == nil:
			t.Fatalf("text of %s: no such element", sel)
		default:
			t.Fatalf("text of %s: %v", sel, err)
		}
	}
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

	// The unit's page, by its link. (The link is clicked in the page: a
	// mouse click at its place misses when a live update redraws the table
	// between finding the link and clicking.)
	if got := eval[string](t, b, `document.querySelector('tr[data-unit="web"] a').click(), location.hash`); got != "#/units/web" {
		t.Fatalf("the unit's link leads to %q, want #/units/web", got)
	}
	within(t, b, 10*time.Second, "the unit's page",
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

// A rolled-back unit and a suspended one show so in the API and on the
// page, with the revision a rolled-back unit runs; long messages (a failed
// rollout's reason, a file error with its path and line) are wholly
// readable in the table at 1400 px and on a phone.
func TestDashboardShowsRollbackSuspensionAndWholeMessages(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	// search fits no machine: its rollout fails after 6s (fleet's
	// scheduler leaves it unscheduled) with a long reason.
	rev1 := w.commit(map[string]string{"units/web.yaml": unitWeb, "units/db.yaml": unitDB, "units/api.yaml": "name: api\napps:\n- image: docker://api:1\n",
		"units/search.yaml": "name: search\nreplicas: 2\nmachine:\n- az=z\napps:\n- image: docker://search:1\n"})
	for _, n := range []string{"web", "db", "api"} {
		w.waitPhase(n, store.PhaseRunning, 60*time.Second)
	}
	w.commit(map[string]string{"units/web.yaml": strings.Replace(unitWeb, "nginx:1", "nginx:2", 1)})
	deployed := func(name string, n int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			h, err := w.store.History(ctx, name)
			if err == nil && len(h) == n && h[n-1].Outcome == store.OutcomeDeployed {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: revision %d not deployed: %v", name, n, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	deployed("web", 2)
	w.waitPhase("search", store.PhaseFailed, 60*time.Second)
	if _, err := w.store.Rollback(ctx, "web", "", "ops@laptop"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.store.Suspend(ctx, "db", "ops@laptop"); err != nil {
		t.Fatal(err)
	}
	w.commit(map[string]string{"units/api.yaml": "name: api\nreplcas: 2\napps:\n- image: docker://api:2\n"})
	deployed("web", 3) // the rollback's rollout

	var web, db map[string]any
	w.get("/api/v1/units/web", &web)
	w.get("/api/v1/units/db", &db)
	if rb, _ := web["rolledBack"].(map[string]any); web["state"] != "rolled back" || rb == nil || rb["revision"] != float64(1) || rb["gitRevision"] != rev1 {
		t.Errorf("GET units/web: state %v, rolledBack %v; want rolled back to revision 1 from %s", web["state"], web["rolledBack"], rev1[:7])
	}
	if sus, _ := db["suspended"].(map[string]any); db["state"] != store.PhaseSuspended || sus == nil || sus["by"] != "ops@laptop" {
		t.Errorf("GET units/db: state %v, suspended %v; want suspended by ops@laptop", db["state"], db["suspended"])
	}
	var search map[string]any
	w.get("/api/v1/units/search", &search)
	reason, _ := search["message"].(string)
	if len(reason) < 150 {
		t.Fatalf("search's failed rollout says %q: want a long reason to show", reason)
	}

	for _, vp := range []struct {
		name          string
		width, height int
		mobile        bool
	}{{"desktop-1400", 1400, 900, false}, {"phone-390", 390, 844, true}} {
		t.Run(vp.name, func(t *testing.T) {
			b := browsertest.New(t, vp.width, vp.height)
			steps := []chromedp.Action[chromedp.Void]{chromedp.Navigate(w.srv.URL + "/"), chromedp.WaitVisible(chromedp.CSS(`tr[data-unit="search"]`))}
			if vp.mobile {
				steps = append([]chromedp.Action[chromedp.Void]{chromedp.EmulateViewport(int64(vp.width), int64(vp.height), chromedp.EmulateMobile)}, steps...)
			}
			within(t, b, 20*time.Second, "page loads", steps...)
			within(t, b, 5*time.Second, "the file error shows", chromedp.WaitVisible(chromedp.CSS(`tr[data-unit="api"] .gitbad`)))
			browsertest.Screenshot(t, b, vp.name)
			if got := text(t, b, `tr[data-unit="web"] .phase`); got != "rolled back" {
				t.Errorf("web's phase shows %q, want rolled back", got)
			}
			if got := text(t, b, `tr[data-unit="web"] .revision`); got != rev1[:7] {
				t.Errorf("web's revision shows %q, want %s, the revision its rollback restored", got, rev1[:7])
			}
			if got := text(t, b, `tr[data-unit="db"] .phase`); got != "suspended" {
				t.Errorf("db's phase shows %q, want suspended", got)
			}
			all := text(t, b, `#unit-rows`)
			for _, want := range []string{reason, "units/api.yaml:2: unknown field \"replcas\"", "rolled back to revision 1"} {
				if !strings.Contains(all, want) {
					t.Errorf("the units table lacks %q:\n%s", want, all)
				}
			}
			if bad := eval[[]string](t, b, browsertest.Clipped(`#unit-rows .message`)); len(bad) > 0 {
				t.Errorf("messages not wholly readable at %dx%d:\n%s", vp.width, vp.height, strings.Join(bad, "\n"))
			}
		})
	}
}

// The original's fleet units of names not stored (left-alone statuses)
// show in the units table with their phase and message, with what removes
// them (not for those a refused unit holds), are not counted as units, and
// have a page listing their fleet units.
func TestDashboardShowsLeftAlone(t *testing.T) {
	gone := "1 fleet unit of monder/kaylee; no unit named gone is stored: left alone"
	held := "1 fleet unit of monder/kaylee; held by the refused unit web (its JSON's name is reports): left alone, never removed"
	r := &memReader{Mem: viewtest.Mem{
		Units: []string{"web"},
		Statuses: map[string]*store.Status{
			"web": {Name: "web", Phase: store.PhaseRunning, SpecHash: "aa", Deployed: "aa", Desired: 1, Running: 1, Message: "1 of 1 running", Units: []store.UnitStatus{}},
			"gone": {Name: "gone", Phase: store.PhaseLeftAlone, Running: 1, Serving: 1, Message: gone,
				Units: []store.UnitStatus{{Name: "k2:gone:d4beae:030405:0.service", MachineID: "m1", MachineIP: "10.0.0.1", ActiveState: "active", SubState: "running"}}},
			"reports": {Name: "reports", Phase: store.PhaseLeftAlone, HeldBy: "web", Message: held, Units: []store.UnitStatus{}},
		}}, leader: "sched-1",
		events: []store.Event{{Kind: store.EventOriginalLeftAlone, Unit: "gone", Message: "1 fleet unit of monder/kaylee for unit gone, which is not stored: left alone"}}}
	mux := http.NewServeMux()
	New(Config{Reader: r, Machines: machineList{{ID: "m1", PublicIP: "10.0.0.1"}}}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	b := browsertest.New(t, 1400, 900)
	within(t, b, 20*time.Second, "page loads", chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`tr[data-unit="gone"]`)))
	if got := text(t, b, `tr[data-unit="gone"] .phase`); got != store.PhaseLeftAlone {
		t.Errorf("gone's phase shows %q, want %s", got, store.PhaseLeftAlone)
	}
	if got, want := text(t, b, `tr[data-unit-message="gone"]`), gone+"; kaylee migrate --remove-original removes them"; got != want {
		t.Errorf("gone's message shows %q, want %q", got, want)
	}
	if got := text(t, b, `tr[data-unit-message="reports"]`); got != held {
		t.Errorf("reports' message shows %q, want %q (nothing removes them)", got, held)
	}
	if got, want := text(t, b, `#summary`), "1 unit, 1 running · 2 names with fleet units of monder/kaylee left alone"; !strings.HasPrefix(got, want) {
		t.Errorf("summary %q, want %q…", got, want)
	}
	within(t, b, 10*time.Second, "gone's page", chromedp.Navigate(srv.URL+"/#/units/gone"),
		chromedp.WaitVisible(chromedp.CSS(`#unit-replicas tr[data-replica="k2:gone:d4beae:030405:0.service"]`)))
	fields := text(t, b, `#unit-fields`)
	for _, want := range []string{"monder/kaylee (not stored)", "1 running, 1 serving, 0 desired", gone + "; kaylee migrate --remove-original removes them"} {
		if !strings.Contains(fields, want) {
			t.Errorf("gone's page lacks %q:\n%s", want, fields)
		}
	}
	if got := text(t, b, `#unit-replicas tr[data-replica="k2:gone:d4beae:030405:0.service"]`); !strings.Contains(got, "10.0.0.1") || !strings.Contains(got, "active/running") {
		t.Errorf("gone's fleet unit shows %q, want on 10.0.0.1, active/running", got)
	}
}
