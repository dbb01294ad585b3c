package view

import (
	"fmt"
	"strings"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// UnitLine is kaylee validate's line for a valid unit: its EngineLine,
// and its domains when it has some: "shop: engine docker (its own);
// domains shop.example.com, *.shop.example.com on port http (8080)".
func UnitLine(s *deploy.Spec, defaultEngine string) string {
	line := EngineLine(s, defaultEngine)
	if d := Domains(s); d != "" {
		line += "; " + d
	}
	return line
}

// Domains says which domains a router sends to the unit and on which
// port: "domains a.example.com, *.b.example.com on port http (8080)";
// "" for a unit without domains.
func Domains(s *deploy.Spec) string {
	if len(s.Domains) == 0 {
		return ""
	}
	line := "domains " + strings.Join(s.Domains, ", ")
	if p, ok := s.HTTPPort(); ok {
		line += fmt.Sprintf(" on port %s (%d)", p.Name, p.Port)
	}
	return line
}

// DomainClaimErrors refuses, for kaylee run, a unit of specs that claims
// a domain a stored unit not among specs holds: a domain routes to one
// unit. Each error names the unit that holds it and where it comes from
// (its git source's file, or kaylee run). units are the stored units,
// records the git sources' records (their inventories).
func DomainClaimErrors(specs []*deploy.Spec, units []*store.Unit, records map[string]*store.SyncRecord) []error {
	running := map[string]bool{}
	for _, s := range specs {
		running[s.Name] = true
	}
	holders := map[string]string{}
	for _, u := range units {
		if running[u.Name] || u.Err != nil {
			continue
		}
		for _, d := range u.Spec.Domains {
			if h, ok := holders[d]; !ok || u.Name < h {
				holders[d] = u.Name
			}
		}
	}
	owners := Owners(records)
	var errs []error
	for _, s := range specs {
		for _, d := range s.Domains {
			other, ok := holders[d]
			if !ok {
				continue
			}
			where := "stored with kaylee run"
			if o, ok := owners[other]; ok {
				where = o.Where()
			}
			errs = append(errs, fmt.Errorf("unit %q claims %q, which unit %q holds (%s): a domain routes to one unit; remove it from one of the two", s.Name, d, other, where))
		}
	}
	return errs
}
