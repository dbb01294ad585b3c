package router

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metricsCollector reads the router's Status at each scrape: the series
// are what GET /status says, for Prometheus.
type metricsCollector struct {
	r                                          *Router
	routes, revision, applied, etcdUp, caddyOK *prometheus.Desc
}

// Collector returns the router's Prometheus series (kaylee_router_*),
// read from its Status at each scrape.
func (r *Router) Collector() prometheus.Collector {
	return &metricsCollector{r: r,
		routes:   prometheus.NewDesc("kaylee_router_routes", "Domains in the configuration Caddy serves.", nil, nil),
		revision: prometheus.NewDesc("kaylee_router_config_revision", "The etcd revision of the configuration Caddy serves (0: none yet).", nil, nil),
		applied: prometheus.NewDesc("kaylee_router_config_applied_timestamp_seconds",
			"Unix time Caddy took the configuration it serves (0: none yet).", nil, nil),
		etcdUp: prometheus.NewDesc("kaylee_router_etcd_up",
			"1 while the router reads etcd; 0 while it cannot (Caddy serves the last configuration).", nil, nil),
		caddyOK: prometheus.NewDesc("kaylee_router_caddy_load_ok",
			"1 when Caddy took the last configuration the router loaded; 0 when the load failed.", nil, nil),
	}
}

func (c *metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.routes, c.revision, c.applied, c.etcdUp, c.caddyOK} {
		ch <- d
	}
}

func (c *metricsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.r.Status()
	one := func(bad string) float64 {
		if bad != "" {
			return 0
		}
		return 1
	}
	applied := 0.0
	if !st.Applied.IsZero() {
		applied = float64(st.Applied.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(c.routes, prometheus.GaugeValue, float64(st.Routes))
	ch <- prometheus.MustNewConstMetric(c.revision, prometheus.GaugeValue, float64(st.Revision))
	ch <- prometheus.MustNewConstMetric(c.applied, prometheus.GaugeValue, applied)
	ch <- prometheus.MustNewConstMetric(c.etcdUp, prometheus.GaugeValue, one(st.EtcdError))
	ch <- prometheus.MustNewConstMetric(c.caddyOK, prometheus.GaugeValue, one(st.CaddyError))
}
