package console

import (
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/view"
)

// actionResult is the answer to an action.
type actionResult struct {
	Unit    string `json:"unit,omitempty"`
	Source  string `json:"source,omitempty"`
	Message string `json:"message"`
}

// action wraps a handler that changes something: it needs the token.
func (s *Server) action(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(w, r) {
			return
		}
		h(w, r)
	}
}

// who is recorded with what an action changes.
func who(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "api@" + host
}

func (s *Server) syncNow(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	src, err := s.source(r.Context(), name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if src.Leader == "" {
		writeError(w, http.StatusConflict, "no process leads the sync of "+name+" now (it was synced by kaylee sync --once, or its agents are down): nothing would fetch it")
		return
	}
	msg := "sync now: " + src.Leader + " fetches at once"
	if r.URL.Query().Get("force") == "true" {
		// As kaylee sync --now --force: that pass goes through the
		// change freezes that hold, once, told with who.
		if err := s.cfg.Store.PutFreezeOverride(r.Context(), name, who(r)); err != nil {
			s.fail(w, r, err)
			return
		}
		msg += ", through its freezes (force)"
	}
	if err := s.cfg.Store.Trigger(r.Context(), name, ""); err != nil {
		s.fail(w, r, err)
		return
	}
	_ = s.cfg.Store.AppendEvents(r.Context(), store.Fence{}, store.Event{Kind: store.EventSyncRequested, Source: name, By: who(r),
		Message: msg})
	writeJSON(w, http.StatusAccepted, actionResult{Source: name, Message: "sync of " + name + " triggered: its leader " + src.Leader + " fetches at once"})
}

// refuseOwned answers 409 when git owns the unit (the CLI refuses the same
// without --force); force=true in the query does it anyway.
func (s *Server) refuseOwned(w http.ResponseWriter, r *http.Request, verb, name string) bool {
	if r.URL.Query().Get("force") == "true" {
		return false
	}
	records, err := s.cfg.Reader.ListSyncRecords(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return true
	}
	if oe := view.OwnedErrors(records, verb, []string{name}); len(oe) > 0 {
		writeError(w, http.StatusConflict, oe[0].Error()+"; or send force=true to "+verb+" it anyway; nothing was changed")
		return true
	}
	return false
}

func (s *Server) restart(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if s.refuseOwned(w, r, "restart", name) {
		return
	}
	n, err := s.cfg.Store.Restart(r.Context(), name, who(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, actionResult{Unit: name, Message: fmt.Sprintf("%s restarting (restart %d): the scheduler replaces every replica", name, n)})
}

func (s *Server) rollback(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	e, err := s.cfg.Store.Rollback(r.Context(), name, r.URL.Query().Get("to"), who(r))
	switch {
	case errors.Is(err, store.ErrNoRevision):
		writeError(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, actionResult{Unit: name,
		Message: fmt.Sprintf("%s rolled back to revision %d (spec %s); sync keeps it so until its file changes in git or it is resumed", name, e.Revision, e.SpecHash)})
}

func (s *Server) suspend(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	fresh, err := s.cfg.Store.Suspend(r.Context(), name, who(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	msg := name + " suspended: the scheduler leaves it as it is until resumed"
	if !fresh {
		msg = name + " was suspended already"
	}
	writeJSON(w, http.StatusOK, actionResult{Unit: name, Message: msg})
}

func (s *Server) resume(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	suspended, pinned, err := s.cfg.Store.Resume(r.Context(), name, who(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !suspended && !pinned {
		if _, err := s.cfg.Store.GetUnit(r.Context(), name); err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, actionResult{Unit: name, Message: name + " was neither suspended nor rolled back: nothing to do"})
		return
	}
	writeJSON(w, http.StatusOK, actionResult{Unit: name, Message: name + " resumed"})
}
