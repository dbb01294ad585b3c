package agent

import (
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/sync"
)

// scrape returns what Prometheus reads from m's handler.
func scrape(t *testing.T, m *metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, err := io.ReadAll(rec.Result().Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// kaylee_sync_failing follows the last pass: 1 when it applied nothing,
// 0 when it applied, with or without file errors.
func TestMetricsSyncFailing(t *testing.T) {
	applied := &sync.Result{Revision: "abc", Changes: []sync.Change{{Name: "web", Action: sync.Create}}}
	withErrors := &sync.Result{Revision: "abc", Errors: []store.SyncError{{File: "a.yaml", Message: "bad"}}}
	tests := []struct {
		name        string
		res         *sync.Result
		err         error
		wantResult  string
		wantFailing string
	}{
		{"ok", applied, nil, "ok", "0"},
		{"file errors", withErrors, nil, "file_errors", "0"},
		{"refused", nil, fmt.Errorf("pass: %w", sync.ErrRefused), "refused", "1"},
		{"unverified", nil, fmt.Errorf("fetch: %w", gitsource.ErrUnverified), "unverified", "1"},
		{"git unreachable", nil, errors.New("repository not found"), "failed", "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMetrics()
			// The pass before had the other outcome: the gauge flips.
			if tt.wantFailing == "0" {
				m.Synced("units", nil, errors.New("etcd unreachable"), time.Second)
			} else {
				m.Synced("units", applied, nil, time.Second)
			}
			m.Synced("units", tt.res, tt.err, time.Second)
			out := scrape(t, m)
			for _, want := range []string{
				`kaylee_sync_failing{source="units"} ` + tt.wantFailing + "\n",
				`kaylee_sync_total{result="` + tt.wantResult + `",source="units"} 1` + "\n",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("metrics lack %q:\n%s", want, out)
				}
			}
		})
	}
}

// A former leader of a source reports none of its per-pass series but the
// time of its last success, and no phases once it stops scheduling.
func TestMetricsStopLeading(t *testing.T) {
	m := newMetrics()
	m.Synced("units", &sync.Result{Revision: "abc", Changes: []sync.Change{{Name: "web", Action: sync.Create}}}, nil, time.Second)
	m.Synced("other", nil, errors.New("repository not found"), time.Second)
	m.Phases(map[string]int{store.PhaseFailed: 1})
	m.stopSyncing("units")
	m.stopSyncing("other")
	m.stopScheduling()
	out := scrape(t, m)
	for _, gone := range []string{"kaylee_sync_failing{", "kaylee_sync_units{", "kaylee_sync_file_errors{", "kaylee_sync_revision_info{", "kaylee_units_phase{"} {
		if strings.Contains(out, gone) {
			t.Errorf("a former leader still reports %s:\n%s", gone, out)
		}
	}
	if !strings.Contains(out, `kaylee_sync_last_success_timestamp_seconds{source="units"}`) {
		t.Errorf("the last success time is gone:\n%s", out)
	}
	// Leading again, it reports the revision again.
	m.Synced("units", &sync.Result{Revision: "abc"}, nil, time.Second)
	if out := scrape(t, m); !strings.Contains(out, `kaylee_sync_revision_info{revision="abc",source="units"} 1`) {
		t.Errorf("the revision is not reported after leading again:\n%s", out)
	}
}

// Which series a role's configuration exports before anything happened:
// the webhook counters of each source only where webhooks are served.
func TestMetricsOfRoles(t *testing.T) {
	tests := []struct {
		name     string
		webhooks bool
		sources  []string
		want     []string
		wantNot  []string
	}{
		{"agent", true, []string{"a", "b"}, []string{
			`kaylee_webhooks_total{event="push",result="triggered",source="a"} 0`,
			`kaylee_webhooks_total{event="push",result="triggered",source="b"} 0`,
		}, nil},
		{"sync loop: no webhooks", false, []string{"a"}, nil, []string{"kaylee_webhooks_total{"}},
		{"server: no sources", false, nil, nil, []string{"kaylee_webhooks_total{", "kaylee_sync_"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{HTTP: HTTP{Listen: ":0", Webhooks: tt.webhooks}, Store: store.New(nil, "/t")}
			for _, n := range tt.sources {
				var s Source
				s.Options.Source = n
				c.Sources = append(c.Sources, s)
			}
			m := newMetrics()
			mainRoutes(c, nil, m)
			out := scrape(t, m)
			for _, w := range tt.want {
				if !strings.Contains(out, w+"\n") {
					t.Errorf("no %s:\n%s", w, out)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(out, w) {
					t.Errorf("has %s:\n%s", w, out)
				}
			}
		})
	}
}

// The original's fleet units of names not stored are counted under a
// phase of their own, zero when there are none.
func TestMetricsLeftAlonePhase(t *testing.T) {
	m := newMetrics()
	m.Phases(map[string]int{store.PhaseRunning: 2, store.PhaseLeftAlone: 1})
	out := scrape(t, m)
	for _, want := range []string{`kaylee_units_phase{phase="left-alone"} 1`, `kaylee_units_phase{phase="running"} 2`} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q:\n%s", want, out)
		}
	}
	m.Phases(map[string]int{store.PhaseRunning: 2})
	if out := scrape(t, m); !strings.Contains(out, `kaylee_units_phase{phase="left-alone"} 0`) {
		t.Errorf("left-alone not back to 0:\n%s", out)
	}
}
