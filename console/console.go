// Package console is the agent's HTTP surface for people and programs: a
// versioned JSON API under /api/v1/ (read-only unless a bearer token is
// configured), a stream of changes (server-sent events), and the web
// dashboard at /, embedded in the binary. It decides nothing of its own:
// statuses, rollouts, sync outcomes and ownership come from the packages
// the CLI uses too.
package console

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/view"
)

// Reader is what the console reads: the views (units, sources), the
// instance registry (for the routes), the scheduler's leader, history, the event log, and the changes of the
// store to stream. *store.Store is one; tests serve one in memory.
type Reader interface {
	view.Reader
	view.SourceReader
	ListInstancesAt(ctx context.Context, rev int64) (map[string]*store.Instance, error)
	LeaderID(ctx context.Context, e store.Election) (string, error)
	History(ctx context.Context, name string) ([]*store.HistoryEntry, error)
	ListEvents(ctx context.Context, name string, limit int) ([]store.Event, int64, error)
	WatchChanges(ctx context.Context) <-chan int64
	WatchEvents(ctx context.Context, name string, rev int64) <-chan store.Event
}

var _ Reader = (*store.Store)(nil)

// Config of a console.
type Config struct {
	// Store is what the actions (POST) change; nil keeps the API
	// read-only. It is the Reader too when Reader is nil.
	Store *store.Store
	// Reader is what every GET reads; default Store.
	Reader Reader
	// Machines lists fleet's machines for the cluster view; nil shows only
	// the machines that statuses name.
	Machines MachineLister
	// Token, when set, allows the actions (POST) to requests that carry it
	// as "Authorization: Bearer <token>". Without it the API is read-only.
	Token []byte
	// Refresh is how often the stream sends the state even when the store
	// has not changed (fleet's machines are not in the store); default 5s.
	Refresh time.Duration
	// Hosts are the host names (beside IP addresses and localhost) that
	// requests may name in their Host header: the console refuses others,
	// so that a web page cannot rebind a name of its own to the console's
	// address and read it. "*" allows any.
	Hosts []string
	// MaxStreams is how many event streams (GET /api/v1/stream) may be
	// open at once; more get 503. Default DefaultMaxStreams.
	MaxStreams int
	Log        *slog.Logger
}

// DefaultMaxStreams is Config.MaxStreams's default.
const DefaultMaxStreams = 64

// Server serves the console.
type Server struct {
	cfg     Config
	log     *slog.Logger
	streams chan struct{} // one value per open event stream
}

// New returns a console on cfg.
func New(cfg Config) *Server {
	if cfg.Refresh <= 0 {
		cfg.Refresh = 5 * time.Second
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	if cfg.Reader == nil && cfg.Store != nil {
		cfg.Reader = cfg.Store
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log, streams: make(chan struct{}, cfg.MaxStreams)}
}

// Register adds the console's routes to mux: the API under /api/v1/ and
// the dashboard at /.
func (s *Server) Register(mux *http.ServeMux) {
	mux.Handle("/", s.guard(s.routes()))
}

// routes are the console's own routes.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/{$}", s.index)
	mux.HandleFunc("GET /api/v1/state", s.getState)
	mux.HandleFunc("GET /api/v1/units", s.listUnits)
	mux.HandleFunc("GET /api/v1/units/{name}", s.getUnit)
	mux.HandleFunc("GET /api/v1/units/{name}/history", s.getHistory)
	mux.HandleFunc("GET /api/v1/units/{name}/events", s.getUnitEvents)
	mux.HandleFunc("GET /api/v1/machines", s.listMachines)
	mux.HandleFunc("GET /api/v1/routes", s.listRoutes)
	mux.HandleFunc("GET /api/v1/sources", s.listSources)
	mux.HandleFunc("GET /api/v1/sources/{name}", s.getSource)
	mux.HandleFunc("GET /api/v1/events", s.listEvents)
	mux.HandleFunc("GET /api/v1/stream", s.stream)

	mux.HandleFunc("POST /api/v1/sources/{name}/sync", s.action(s.syncNow))
	mux.HandleFunc("POST /api/v1/units/{name}/restart", s.action(s.restart))
	mux.HandleFunc("POST /api/v1/units/{name}/rollback", s.action(s.rollback))
	mux.HandleFunc("POST /api/v1/units/{name}/suspend", s.action(s.suspend))
	mux.HandleFunc("POST /api/v1/units/{name}/resume", s.action(s.resume))
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API endpoint: "+r.Method+" "+r.URL.Path+" (GET /api/v1/ lists them)")
	})

	mux.Handle("GET /{$}", s.dashboard())
	mux.Handle("GET /ui/", s.assets())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "404 page not found: the dashboard is at /, the API at /api/v1/", http.StatusNotFound)
	})
	return mux
}

// guard refuses requests whose Host header names a host the console does
// not answer to (see Config.Hosts).
func (s *Server) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.allowedHost(r.Host) {
			writeError(w, http.StatusMisdirectedRequest, "host "+strconv.Quote(r.Host)+
				" is not one this console answers to: use its IP address or localhost, or allow the name in its configuration")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) allowedHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if host == "" || strings.EqualFold(host, "localhost") || net.ParseIP(host) != nil {
		return true
	}
	for _, h := range s.cfg.Hosts {
		if h == "*" || strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiError{Error: msg})
}

// fail answers an error: 404 for what does not exist, 503 when etcd
// cannot be read, else 500.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
	case strings.HasPrefix(err.Error(), "etcd:") || errors.Is(err, r.Context().Err()):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		s.log.Warn("console: request failed", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// authorized checks the bearer token of an action.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if len(s.cfg.Token) == 0 || s.cfg.Store == nil {
		writeError(w, http.StatusForbidden, "the API is read-only: this agent was started without an API token")
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), s.cfg.Token) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kaylee"`)
		writeError(w, http.StatusUnauthorized, "actions need the header Authorization: Bearer <the agent's API token>")
		return false
	}
	return true
}
