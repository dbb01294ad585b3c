package console

import (
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

// A unit whose rollout waits for a dependency says so in the unit list
// (the scheduler's message) and on its page (a Depends on row naming
// the dependency it waits for, linked to its page).
func TestDashboardShowsDependencyWait(t *testing.T) {
	now := time.Now().UTC()
	wait := "waiting for db (progressing: 0 of 1 running the current spec, 0 ready)"
	r := &memReader{Mem: viewtest.Mem{
		Units: []string{"cache", "db", "web"},
		Statuses: map[string]*store.Status{
			"db": {Name: "db", Phase: store.PhaseProgressing, SpecHash: "aa", Desired: 1, Time: now,
				Message: "0 of 1 running the current spec, 0 ready", Units: []store.UnitStatus{}},
			"cache": {Name: "cache", Phase: store.PhaseRunning, SpecHash: "cc", Deployed: "cc", Desired: 1, Running: 1, Time: now, Units: []store.UnitStatus{}},
			"web": {Name: "web", Phase: store.PhasePending, SpecHash: "bb", Desired: 3, Time: now,
				Message: wait, DependsOn: []string{"cache", "db"}, WaitingFor: "db", Units: []store.UnitStatus{}},
		}}, leader: "sched-1"}
	mux := http.NewServeMux()
	New(Config{Reader: r}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	b := browsertest.New(t, 1400, 900)
	within(t, b, 20*time.Second, "the unit list", chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-unit-message="web"]`)))
	if got := text(t, b, `tr[data-unit-message="web"]`); got != wait {
		t.Errorf("web's row message = %q, want %q", got, wait)
	}
	within(t, b, 20*time.Second, "web's page", chromedp.Navigate(srv.URL+"/#/units/web"),
		chromedp.WaitVisible(chromedp.CSS(`#unit-fields [data-depends-on="db"]`)))
	for sel, want := range map[string]string{
		`#unit-fields [data-depends-on="db"]`:    "db (its rollout waits for it)",
		`#unit-fields [data-depends-on="cache"]`: "cache",
	} {
		if got := text(t, b, sel); got != want {
			t.Errorf("%s = %q, want %q", sel, got, want)
		}
	}
	if fields := text(t, b, `#unit-fields`); !strings.Contains(fields, "Depends on") {
		t.Errorf("web's page has no Depends on row:\n%s", fields)
	}
}
