package agent

import (
	"net/http"
	gosync "sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/sync"
)

// metrics are the agent's Prometheus series, on a registry of its own.
type metrics struct {
	reg          *prometheus.Registry
	syncDuration *prometheus.HistogramVec
	syncs        *prometheus.CounterVec
	lastSuccess  *prometheus.GaugeVec
	failing      *prometheus.GaugeVec
	revision     *prometheus.GaugeVec
	units        *prometheus.GaugeVec
	fileErrors   *prometheus.GaugeVec
	leader       *prometheus.GaugeVec
	fleetOps     *prometheus.CounterVec
	phases       *prometheus.GaugeVec
	webhooks     *prometheus.CounterVec
	v2Units      *prometheus.GaugeVec

	mu      gosync.Mutex
	lastRev map[string]string
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		syncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kaylee_sync_duration_seconds",
			Help: "Time of a sync pass (fetch and apply).", Buckets: prometheus.ExponentialBuckets(0.05, 2, 12)}, []string{"source"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kaylee_sync_total",
			Help: "Sync passes by result: ok, file_errors, refused, unverified, failed."}, []string{"source", "result"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kaylee_sync_last_success_timestamp_seconds",
			Help: "Unix time of the last sync pass that applied (possibly with file errors)."}, []string{"source"}),
		failing: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kaylee_sync_failing",
			Help: "1 when the last sync pass applied nothing (failed, refused, unverified), 0 when it applied."}, []string{"source"}),
		revision: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kaylee_sync_revision_info",
			Help: "The git revision last applied (value 1)."}, []string{"source", "revision"}),
		units: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kaylee_sync_units",
			Help: "Units owned by the source after the last pass."}, []string{"source"}),
		fileErrors: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kaylee_sync_file_errors",
			Help: "Unit file errors in the last pass."}, []string{"source"}),
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kaylee_leader",
			Help: "1 while this process leads a role: the scheduler, or the sync of a source."}, []string{"role", "source"}),
		fleetOps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kaylee_fleet_operations_total",
			Help: "fleet calls made by the scheduler, by op (create, launch, stop, destroy) and result."}, []string{"op", "result"}),
		phases: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kaylee_units_phase",
			Help: "Units by rollout phase, as of the scheduler's last pass (left-alone: names whose fleet units monder/kaylee created and that are not stored)."}, []string{"phase"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kaylee_webhooks_total",
			Help: "Webhooks received, by source (empty when none), event (push, tag_push, ping, pull_request, release, create, delete, merge_request, other) and result (triggered, ignored, pong, unfollowed, unauthorized, bad_request, error)."},
			[]string{"source", "event", "result"}),
		v2Units: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kaylee_etcd_v2_units_available",
			Help: "On the scheduler's leader with --etcd-v2-units: 1 while etcd's v2 API answers (units written through it are scheduled), 0 when etcd has none."}, nil),
		lastRev: map[string]string{},
	}
	m.reg.MustRegister(m.syncDuration, m.syncs, m.lastSuccess, m.failing, m.revision, m.units, m.fileErrors, m.leader, m.fleetOps, m.phases, m.webhooks, m.v2Units,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// v2Available sets kaylee_etcd_v2_units_available.
func (m *metrics) v2Available(ok bool) {
	v := 0.0
	if ok {
		v = 1
	}
	m.v2Units.WithLabelValues().Set(v)
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// metricResult is the result label of a pass's outcome.
var metricResult = map[string]string{store.AttemptSynced: "ok", store.AttemptFileErrors: "file_errors",
	store.AttemptRefused: "refused", store.AttemptUnverified: "unverified", store.AttemptFailed: "failed"}

// Synced implements sync.Observer.
func (m *metrics) Synced(source string, res *sync.Result, err error, took time.Duration) {
	m.syncDuration.WithLabelValues(source).Observe(took.Seconds())
	m.syncs.WithLabelValues(source, metricResult[sync.Outcome(res, err)]).Inc()
	if err != nil {
		m.failing.WithLabelValues(source).Set(1)
		return
	}
	m.failing.WithLabelValues(source).Set(0)
	m.lastSuccess.WithLabelValues(source).SetToCurrentTime()
	m.fileErrors.WithLabelValues(source).Set(float64(len(res.Errors)))
	m.units.WithLabelValues(source).Set(float64(len(res.Changes) - res.Count(sync.Prune)))
	m.mu.Lock()
	defer m.mu.Unlock()
	if prev := m.lastRev[source]; prev != res.Revision {
		if prev != "" {
			m.revision.DeleteLabelValues(source, prev)
		}
		m.revision.WithLabelValues(source, res.Revision).Set(1)
		m.lastRev[source] = res.Revision
	}
}

// stopSyncing drops the series of a source whose sync this process no
// longer leads, so that only its leader reports them and an alert on the
// maximum over agents does not follow a former leader's last pass. The
// last success time stays: the newest over agents is the source's.
func (m *metrics) stopSyncing(source string) {
	m.failing.DeleteLabelValues(source)
	m.units.DeleteLabelValues(source)
	m.fileErrors.DeleteLabelValues(source)
	m.mu.Lock()
	defer m.mu.Unlock()
	if rev := m.lastRev[source]; rev != "" {
		m.revision.DeleteLabelValues(source, rev)
		delete(m.lastRev, source)
	}
}

// stopScheduling drops the phase counts of a former scheduler leader.
func (m *metrics) stopScheduling() {
	m.phases.Reset()
	m.v2Units.Reset()
}

// FleetCall implements fleet.Observer.
func (m *metrics) FleetCall(op string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.fleetOps.WithLabelValues(op, result).Inc()
}

// Phases implements fleet.Observer.
func (m *metrics) Phases(counts map[string]int) {
	for _, p := range []string{store.PhasePending, store.PhaseProgressing, store.PhaseRunning, store.PhaseFailed, store.PhaseDeleting, store.PhaseSuspended, store.PhaseLeftAlone} {
		m.phases.WithLabelValues(p).Set(float64(counts[p]))
	}
}

// Webhook counts a webhook's answer (sync.Webhooks.Count).
func (m *metrics) Webhook(source, event, result string) {
	m.webhooks.WithLabelValues(source, event, result).Inc()
}
