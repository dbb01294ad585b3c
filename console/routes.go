package console

import (
	"context"
	"net/http"

	"github.com/kaylee-gitops/kaylee/router"
)

// Route is one routed domain: where kaylee router sends it, as
// router.ReadRoutes computes it for the router and for kaylee routes
// (domain, unit, endpoints, note), and, when none of its unit's replicas
// serves, what the router answers instead (503).
type Route struct {
	router.Route
	NoReplica string `json:"noReplica,omitempty"`
}

// routesOf reads the units and the instance registry and returns their
// routes, in the order the router matches them; never nil.
func (s *Server) routesOf(ctx context.Context) ([]Route, error) {
	rs, err := router.ReadRoutes(ctx, s.cfg.Reader)
	if err != nil {
		return nil, err
	}
	out := make([]Route, 0, len(rs))
	for _, r := range rs {
		out = append(out, Route{Route: r, NoReplica: r.Unserved()})
	}
	return out, nil
}

func (s *Server) listRoutes(w http.ResponseWriter, r *http.Request) {
	rs, err := s.routesOf(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rs)
}
