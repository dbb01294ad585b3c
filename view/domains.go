package view

import (
	"fmt"
	"strings"

	"github.com/kaylee-gitops/kaylee/deploy"
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
