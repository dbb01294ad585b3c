package console

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kaylee-gitops/kaylee/console/browsertest"
	"github.com/kaylee-gitops/kaylee/store"
)

// waitText waits until the text of the first element sel matches is want.
func waitText(t *testing.T, ctx context.Context, d time.Duration, sel, want string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := text(t, ctx, sel)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			browsertest.Screenshot(t, ctx, "failed-"+strings.NewReplacer(" ", "-", "/", "-", `"`, "", "[", "", "]", "", "*", "x", "=", "-").Replace(sel))
			logPage(t, ctx)
			t.Fatalf("%s shows %q after %s, want %q", sel, got, d, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// warnColor is style.css's --warn, as the browser computes it.
const warnColor = "rgb(183, 121, 31)"

// The dashboard's Routes list each domain with its unit and the endpoints
// kaylee router sends it to, and a domain no replica serves with a
// warning; an instance that leaves the registry leaves the page live,
// without a reload. A unit's page shows its domains, and one of its
// spec's that another unit claimed first.
func TestDashboardRoutes(t *testing.T) {
	w := newRoutesWorld(t)
	w.unit("web", 8080, "a.test", "www.a.test")
	w.unit("api", 9000, "*.a.test")
	w.unit("zine", 80, "www.a.test") // claims web's domain: web, first by name, gets it
	web0, web1 := instance("web", 0, "192.0.2.2", 8080), instance("web", 1, "192.0.2.1", 8080)
	w.registry([]*store.Instance{web0, web1, instance("zine", 0, "192.0.2.9", 80)})

	b := browsertest.New(t, 1400, 900)
	within(t, b, 20*time.Second, "page loads", chromedp.Navigate(w.srv.URL+"/#/routes"),
		chromedp.WaitVisible(chromedp.CSS(`#live.on`)), chromedp.WaitVisible(chromedp.CSS(`#routes tr[data-domain="a.test"]`)))
	eval[bool](t, b, `window.kayleeMarker = true`) // a reload would lose it
	if got := eval[string](t, b, `[...document.querySelectorAll("main > section:not([hidden])")].map((s) => s.id).join(",")`); got != "routes" {
		t.Errorf("#/routes shows sections %q, want routes", got)
	}

	rows := func() []string {
		t.Helper()
		return strings.Split(text(t, b, `#route-rows`), "\n")
	}
	want := []string{
		"a.test\tweb\t192.0.2.1:8080 192.0.2.2:8080\t–",
		"www.a.test\tweb\t192.0.2.1:8080 192.0.2.2:8080\talso claimed by zine, which gets none of its requests",
		`*.a.test` + "\tapi\tno replica serves\tkaylee router answers 503 \"no replica of unit api serves\"",
	}
	if got := rows(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the routes show\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	warning := func(domain string) string {
		t.Helper()
		return eval[string](t, b, `(() => { const e = document.querySelector('#routes tr[data-domain="`+domain+`"] .noreplica');
			return e === null ? "no warning" : e.checkVisibility() ? getComputedStyle(e).backgroundColor : "hidden"; })()`)
	}
	if got := warning("*.a.test"); got != warnColor {
		t.Errorf("*.a.test's warning: %s, want shown in the warning colour %s", got, warnColor)
	}
	if got := warning("a.test"); got != "no warning" {
		t.Errorf("a.test, served, shows a warning (%s)", got)
	}
	if got := eval[string](t, b, `document.querySelector('#routes tr[data-domain="*.a.test"] .unit a').getAttribute("href")`); got != "#/units/api" {
		t.Errorf("api's link leads to %q, want #/units/api", got)
	}
	browsertest.Screenshot(t, b, "1-routes")

	// A replica leaves the registry (as the scheduler removes it before it
	// stops it): its endpoint leaves the page.
	w.registry(nil, web1)
	left := time.Now()
	waitText(t, b, 3*time.Second, `#routes tr[data-domain="a.test"] .endpoints`, "192.0.2.2:8080")
	t.Logf("the endpoint left the page %s after its key", time.Since(left).Round(time.Millisecond))
	waitText(t, b, time.Second, `#routes tr[data-domain="www.a.test"] .endpoints`, "192.0.2.2:8080")

	// The last one leaves: web's domains show that no replica serves.
	w.registry(nil, web0)
	waitText(t, b, 3*time.Second, `#routes tr[data-domain="a.test"] .endpoints`, "no replica serves")
	for _, d := range []string{"a.test", "www.a.test", "*.a.test"} {
		if got := warning(d); got != warnColor {
			t.Errorf("%s's warning: %s, want shown in the warning colour %s", d, got, warnColor)
		}
	}
	if !eval[bool](t, b, `window.kayleeMarker === true`) {
		t.Error("the page was reloaded: updates must come live")
	}
	browsertest.Screenshot(t, b, "2-no-replica-serves")

	// web's page, by its link: its domains, live.
	if got := eval[string](t, b, `document.querySelector('#routes tr[data-domain="a.test"] .unit a').click(), location.hash`); got != "#/units/web" {
		t.Fatalf("web's link leads to %q, want #/units/web", got)
	}
	within(t, b, 10*time.Second, "web's page", chromedp.WaitVisible(chromedp.CSS(`#unit-domains tr[data-domain="a.test"]`)))
	waitText(t, b, 3*time.Second, `#unit-domains`, "a.test\tno replica serves\tkaylee router answers 503 \"no replica of unit web serves\"\n"+
		"www.a.test\tno replica serves\talso claimed by zine, which gets none of its requests; kaylee router answers 503 \"no replica of unit web serves\"")
	w.registry([]*store.Instance{web1})
	waitText(t, b, 3*time.Second, `#unit-domains tr[data-domain="a.test"] .endpoints`, "192.0.2.1:8080")
	browsertest.Screenshot(t, b, "3-unit-page")

	// zine's page: the domain of its spec that web gets.
	within(t, b, 10*time.Second, "zine's page", chromedp.Navigate(w.srv.URL+"/#/units/zine"),
		chromedp.WaitVisible(chromedp.CSS(`#unit-domains tr[data-domain="www.a.test"]`)))
	waitText(t, b, 3*time.Second, `#unit-domains`, "www.a.test\trouted to another unit web\talso claimed by zine, which gets none of its requests")

	// A unit without domains has no Domains section.
	within(t, b, 10*time.Second, "a page without domains", chromedp.Navigate(w.srv.URL+"/#/units/api"),
		chromedp.WaitVisible(chromedp.CSS(`#unit-domains tr[data-domain="*.a.test"]`)))
	w.unit("api", 9000)
	within(t, b, 5*time.Second, "api's domains leave its page", chromedp.WaitNotVisible(chromedp.CSS(`#unit-domains-box`)))

	// The page of every view shows the routes too, beside the units.
	within(t, b, 10*time.Second, "every view", chromedp.Navigate(w.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`#routes tr[data-domain="a.test"]`)))
	browsertest.Screenshot(t, b, "4-every-view")

	// Without domains, the overview has no Routes; #/routes says so.
	w.unit("web", 8080)
	w.unit("zine", 80)
	within(t, b, 5*time.Second, "the overview without routes", chromedp.WaitNotVisible(chromedp.CSS(`#routes`)))
	within(t, b, 10*time.Second, "#/routes without routes", chromedp.Navigate(w.srv.URL+"/#/routes"), chromedp.WaitVisible(chromedp.CSS(`#routes`)))
	waitText(t, b, 3*time.Second, `#route-rows`, "no unit has domains")
}
