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

// Issue 25: a unit's page shows the engine a unit that names none runs
// with, when its status records one (the scheduler's default engine), and
// no engine row for a unit that names its own.
func TestDashboardShowsDefaultEngine(t *testing.T) {
	r := &memReader{Mem: viewtest.Mem{
		Units: []string{"web", "own"},
		Statuses: map[string]*store.Status{
			"web": {Name: "web", Phase: store.PhaseRunning, SpecHash: "aa", Engine: "podman", Deployed: "aa", Desired: 1, Running: 1, Message: "1 of 1 running", Units: []store.UnitStatus{}},
			"own": {Name: "own", Phase: store.PhaseRunning, SpecHash: "bb", Deployed: "bb", Desired: 1, Running: 1, Message: "1 of 1 running", Units: []store.UnitStatus{}},
		}}, leader: "sched-1"}
	mux := http.NewServeMux()
	New(Config{Reader: r, Machines: machineList{{ID: "m1", PublicIP: "10.0.0.1"}}}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	b := browsertest.New(t, 1400, 900)
	// fieldsOf waits until the page of name shows, and returns its fields.
	fieldsOf := func(name string) string {
		t.Helper()
		within(t, b, 20*time.Second, name+"'s page", chromedp.Navigate(srv.URL+"/#/units/"+name), chromedp.WaitVisible(chromedp.CSS(`#unit-fields`)))
		deadline := time.Now().Add(10 * time.Second)
		for !strings.HasPrefix(text(t, b, `#unit-title`), name) || !strings.Contains(text(t, b, `#unit-fields`), "1 running") {
			if time.Now().After(deadline) {
				t.Fatalf("%s's page does not show: %q", name, text(t, b, `#unit-title`))
			}
			time.Sleep(100 * time.Millisecond)
		}
		return strings.Join(strings.Fields(text(t, b, `#unit-fields`)), " ")
	}
	const want = "Engine podman (the spec names none: the scheduler's default engine, or a rollback's)"
	if fields := fieldsOf("web"); !strings.Contains(fields, want) {
		t.Errorf("web's page lacks %q:\n%s", want, fields)
	}
	if fields := fieldsOf("own"); strings.Contains(fields, "Engine") {
		t.Errorf("own's page shows an engine:\n%s", fields)
	}
}
