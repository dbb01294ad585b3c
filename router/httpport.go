package router

import "github.com/kaylee-gitops/kaylee/deploy"

// httpPortOf is the port of s that serves HTTP: the tcp port DomainsPort
// names, else the tcp port named http, else the only tcp port. It has the
// semantics of deploy's (*Spec).HTTPPort (on main since the domains
// branch), which replaces it.
func httpPortOf(s *deploy.Spec) (deploy.Port, bool) {
	if s.DomainsPort != "" {
		for _, p := range s.Ports {
			if p.Name == s.DomainsPort && isTCP(p) {
				return p, true
			}
		}
		return deploy.Port{}, false
	}
	var tcp []deploy.Port
	for _, p := range s.Ports {
		if !isTCP(p) {
			continue
		}
		if p.Name == "http" {
			return p, true
		}
		tcp = append(tcp, p)
	}
	if len(tcp) == 1 {
		return tcp[0], true
	}
	return deploy.Port{}, false
}

func isTCP(p deploy.Port) bool { return p.Protocol == "" || p.Protocol == "tcp" }
