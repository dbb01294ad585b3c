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

// The sources view shows a frozen source: the revision held, until when
// and why, live.
func TestDashboardShowsFreeze(t *testing.T) {
	w := newWorld(t)
	b := browsertest.New(t, 1400, 1000)
	w.commit(map[string]string{"units/web.yaml": unitWeb})
	within(t, b, 20*time.Second, "page loads", chromedp.Navigate(w.srv.URL+"/#/sources"),
		chromedp.WaitVisible(chromedp.CSS(`#live.on`)))
	until := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	if err := w.store.PutFreeze(context.Background(), &store.ManualFreeze{Kind: store.FreezeSource, Name: "team-a", Until: until,
		Reason: "release 4.2", By: "ann@laptop", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	rev := w.commit(map[string]string{"units/web.yaml": strings.Replace(unitWeb, "nginx", "nginx:2", 1)})
	within(t, b, 5*time.Second, "the freeze shows", chromedp.WaitVisible(chromedp.CSS(`[data-source="team-a"] [data-frozen="team-a"]`)))
	got := text(t, b, `[data-source="team-a"] [data-frozen="team-a"]`)
	if !strings.Contains(got, "frozen") || !strings.Contains(got, rev[:7]) || !strings.Contains(got, "kaylee freeze by ann@laptop: release 4.2") || !strings.Contains(got, "held until") {
		t.Errorf("frozen line %q", got)
	}
	browsertest.Screenshot(t, b, "frozen-source")
}
