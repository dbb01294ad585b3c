package router

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// RunWithCaddy runs c's caddy and r together until ctx ends: r starts
// once caddy's admin API answers, and loads its configuration again each
// time caddy (re)starts. It returns caddy's error when caddy cannot start.
func RunWithCaddy(ctx context.Context, c *Caddy, r *Router) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		once sync.Once
		wg   sync.WaitGroup
	)
	ready := func() {
		r.Reload()
		once.Do(func() {
			wg.Add(1)
			go func() { defer wg.Done(); _ = r.Run(ctx) }()
		})
	}
	err := c.Run(ctx, ready)
	cancel()
	wg.Wait()
	return err
}

// Handler serves the router's Status as JSON on GET /status: 200 while
// etcd answers and caddy took the last configuration, 503 otherwise (the
// body says why; caddy serves the last configuration it took); and its
// Prometheus series (Collector, and the process's) on GET /metrics.
func (r *Router) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		st := r.Status()
		w.Header().Set("Content-Type", "application/json")
		if st.EtcdError != "" || st.CaddyError != "" || st.Applied.IsZero() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(st)
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.Collector(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}
