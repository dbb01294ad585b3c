package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/view"
)

// endpoints is what GET /api/v1/ lists.
var endpoints = []string{
	"GET  /api/v1/state                   everything the dashboard shows: units, machines, routes, sources",
	"GET  /api/v1/units                   every unit with its status, fleet units, machines and git source",
	"GET  /api/v1/units/NAME              one unit, with its stored spec",
	"GET  /api/v1/units/NAME/history      the revisions it was rolled out to",
	"GET  /api/v1/units/NAME/events       the events about it",
	"GET  /api/v1/machines                fleet's machines with their metadata and replicas",
	"GET  /api/v1/routes                  each unit's domains with the endpoints kaylee router sends them to (kaylee routes)",
	"GET  /api/v1/sources                 the git sources: revision applied, last attempt, file errors",
	"GET  /api/v1/sources/NAME            one source",
	"GET  /api/v1/events?name=&limit=     the event log, oldest first",
	"GET  /api/v1/stream                  server-sent events: state (the whole state, on each change) and event (each new event)",
	"POST /api/v1/sources/NAME/sync       sync a source now (token; force=true: through its freezes, once)",
	"POST /api/v1/units/NAME/restart      roll every replica (token; ?force=true for a unit git owns)",
	"POST /api/v1/units/NAME/rollback     deploy an earlier revision, ?to=REVISION (token)",
	"POST /api/v1/units/NAME/suspend      keep the scheduler off a unit (token)",
	"POST /api/v1/units/NAME/resume       end a suspension or rollback (token)",
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"version": "v1", "endpoints": endpoints, "actions": len(s.cfg.Token) > 0 && s.cfg.Store != nil})
}

func (s *Server) getState(w http.ResponseWriter, r *http.Request) {
	st, err := s.state(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) listUnits(w http.ResponseWriter, r *http.Request) {
	views, err := view.Units(r.Context(), s.cfg.Reader)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, views)
}

// unitDetail is one unit: its view and the spec stored.
type unitDetail struct {
	view.Unit
	Spec      json.RawMessage `json:"spec,omitempty"`
	SpecError string          `json:"specError,omitempty"`
}

func (s *Server) getUnit(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	v, err := view.UnitOf(r.Context(), s.cfg.Reader, name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := unitDetail{Unit: v}
	if u, err := s.cfg.Reader.GetUnit(r.Context(), name); err == nil {
		d.Spec = json.RawMessage(u.Raw)
		if u.Err != nil {
			d.SpecError = u.Err.Error()
		}
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) getHistory(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	entries, err := s.cfg.Reader.History(r.Context(), name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if len(entries) == 0 {
		if _, err := view.StatusOf(r.Context(), s.cfg.Reader, name); err != nil {
			s.fail(w, r, err)
			return
		}
		entries = []*store.HistoryEntry{}
	}
	writeJSON(w, http.StatusOK, entries)
}

func (s *Server) getUnitEvents(w http.ResponseWriter, r *http.Request) {
	s.events(w, r, r.PathValue("name"))
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	s.events(w, r, r.URL.Query().Get("name"))
}

func (s *Server) events(w http.ResponseWriter, r *http.Request, name string) {
	limit := 200
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "limit="+l+": want a number of events, 0 for all")
			return
		}
		limit = n
	}
	evs, _, err := s.cfg.Reader.ListEvents(r.Context(), name, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, evs)
}

func (s *Server) listMachines(w http.ResponseWriter, r *http.Request) {
	views, err := view.Units(r.Context(), s.cfg.Reader)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ms, err := machines(s.cfg.Machines, views)
	if err != nil {
		writeError(w, http.StatusBadGateway, "fleet: listing machines: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, ms)
}

func (s *Server) listSources(w http.ResponseWriter, r *http.Request) {
	srcs, err := view.Sources(r.Context(), s.cfg.Reader)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, srcs)
}

func (s *Server) getSource(w http.ResponseWriter, r *http.Request) {
	src, err := s.source(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, src)
}

// source is one source's status; ErrNotFound when no process has synced,
// tried or led it.
func (s *Server) source(ctx context.Context, name string) (*view.Source, error) {
	srcs, err := view.Sources(ctx, s.cfg.Reader)
	if err != nil {
		return nil, err
	}
	for i := range srcs {
		if srcs[i].Name == name {
			return &srcs[i], nil
		}
	}
	return nil, fmt.Errorf("no source named %q has synced, tried or led here: %w", name, store.ErrNotFound)
}
