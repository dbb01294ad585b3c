package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/kaylee-gitops/kaylee/internal/listen"
	"github.com/kaylee-gitops/kaylee/store"
)

// Listeners of the agent, as ListenError names them.
const (
	ListenMain    = "listen"         // HTTP.Listen
	ListenConsole = "console-listen" // HTTP.ConsoleListen
)

// ListenError is a listener that could not open.
type ListenError struct {
	Listener string // ListenMain or ListenConsole
	Addr     string
	Err      error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.Listener, e.Addr, e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }

// registrar adds its routes to a mux (console.Server).
type registrar interface {
	Register(mux *http.ServeMux)
}

// routes are the handlers of the main listener; nil ones are not served.
type routes struct {
	ready   http.Handler
	metrics http.Handler
	hooks   http.Handler // POST /hooks/git
	console registrar    // /, /api/v1/...
	pprof   bool         // /debug/pprof/
}

// mux serves health, readiness and metrics, and the webhook and the
// console when they are set.
func (r routes) mux() *http.ServeMux {
	mux := http.NewServeMux()
	if r.console != nil {
		r.console.Register(mux)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /readyz", r.ready)
	mux.Handle("GET /metrics", r.metrics)
	if r.hooks != nil {
		mux.Handle("/hooks/git", r.hooks)
	}
	if r.pprof {
		registerPprof(mux)
	}
	return mux
}

// readinessReader is what readiness reads from the store.
type readinessReader interface {
	LeaderID(ctx context.Context, e store.Election) (string, error)
	ListSyncRecords(ctx context.Context) (map[string]*store.SyncRecord, error)
}

// readiness answers /readyz: 200 once etcd answers, the scheduler (when
// this process runs one) has a leader, and every source (not suspended)
// has been synced; 503 with the reasons.
type readiness struct {
	store     readinessReader
	scheduler bool
	sources   []Source
}

func (rd readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	problems, err := rd.problems(ctx)
	if err != nil {
		problems = append(problems, "etcd: "+err.Error())
	}
	if len(problems) > 0 {
		http.Error(w, "not ready: "+strings.Join(problems, "; "), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// problems lists what keeps the agent from being ready: no scheduler
// leader, a source (not suspended) never synced.
func (rd readiness) problems(ctx context.Context) ([]string, error) {
	var problems []string
	if rd.scheduler {
		leader, err := rd.store.LeaderID(ctx, store.SchedulerElection)
		if err != nil {
			return nil, err
		}
		if leader == "" {
			problems = append(problems, "no scheduler leader elected yet")
		}
	}
	records, err := rd.store.ListSyncRecords(ctx)
	if err != nil {
		return nil, err
	}
	for _, src := range rd.sources {
		if !src.Config.Suspend && !synced(records[src.name()]) {
			problems = append(problems, "source "+src.name()+" not synced yet")
		}
	}
	return problems, nil
}

// synced: the source has been synced at least once (a pass a freeze
// held counts: it fetched and validated, and waits for the freeze only).
func synced(r *store.SyncRecord) bool { return r != nil && (r.Revision != "" || r.Frozen != nil) }

// serve listens on addr, holding at most lim.MaxConns connections at once
// (see listen.Listener); stop shuts the server down.
func serve(ctx context.Context, name, addr string, h http.Handler, lim Limits, log *slog.Logger) (stop func(), err error) {
	raw, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &ListenError{Listener: name, Addr: addr, Err: err}
	}
	ln := listen.Limit(raw, lim.MaxConns)
	// A client whose headers or body stall is cut off, and one idle
	// between requests is let go: it holds no connection for long. Event
	// streams set a write deadline per message instead of WriteTimeout.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: lim.IdleTimeout, MaxHeaderBytes: 64 << 10,
		ConnState: ln.ConnState, BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server stopped", "err", err)
		}
	}()
	log.Info("HTTP listening", "addr", ln.Addr().String(), "maxConnections", lim.MaxConns, "idleTimeout", lim.IdleTimeout, "nofile", lim.NoFile)
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}
