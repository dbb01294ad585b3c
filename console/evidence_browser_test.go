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

// A failed rollout's unit page shows its evidence: the exit, restarts,
// the health check's answer and the journal lines, one per line.
func TestDashboardShowsFailureEvidence(t *testing.T) {
	now := time.Now().UTC()
	ev := &store.Evidence{Unit: "web", FleetUnit: "k2:web:bb:0a1b2c:0.service", Machine: "m1", Result: "exit-code", ExitCode: "exited",
		ExitStatus: "125", Restarts: 2, Probe: "HTTP 500 from 10.0.0.2:8080",
		Journal: []string{"Unable to find image 'nope:1' locally", "docker: Error response from daemon: pull access denied."}, Time: now.Add(-time.Minute)}
	r := &memReader{Mem: viewtest.Mem{
		Units: []string{"web"},
		Statuses: map[string]*store.Status{
			"web": {Name: "web", Phase: store.PhaseFailed, SpecHash: "bb", Deployed: "aa", Desired: 1, Running: 1, Time: now,
				Message:  `rollout of bb failed: ...; on the machine: exit status 125; last line: "docker: Error response from daemon: pull access denied."`,
				Evidence: ev, Units: []store.UnitStatus{}},
		}}, leader: "sched-1"}
	mux := http.NewServeMux()
	New(Config{Reader: r, Machines: machineList{{ID: "m1", PublicIP: "10.0.0.1"}}}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	b := browsertest.New(t, 1400, 900)
	within(t, b, 20*time.Second, "web's page", chromedp.Navigate(srv.URL+"/#/units/web"),
		chromedp.WaitVisible(chromedp.CSS(`#unit-fields pre.journal[data-evidence="k2:web:bb:0a1b2c:0.service"]`)))
	fields := text(t, b, `#unit-fields`)
	for _, want := range []string{"exit status 125 (systemd: exit-code), 2 restarts; k2:web:bb:0a1b2c:0.service on m1", "HTTP 500 from 10.0.0.2:8080"} {
		if !strings.Contains(fields, want) {
			t.Errorf("web's page lacks %q:\n%s", want, fields)
		}
	}
	if got := text(t, b, `#unit-fields pre.journal`); got != strings.Join(ev.Journal, "\n") {
		t.Errorf("journal shows %q, want the lines one per line", got)
	}
}
