package router

import "github.com/kaylee-gitops/kaylee/deploy"

// httpPortOf is the port of s that serves HTTP: the one DomainsPort names,
// else the one named http, else the only tcp port. It has the semantics of
// deploy's (*Spec).HTTPPort, which replaces it once it is on main.
func httpPortOf(s *deploy.Spec) (deploy.Port, bool) {
	if s.DomainsPort != "" {
		return portNamed(s.Ports, s.DomainsPort)
	}
	if p, ok := portNamed(s.Ports, "http"); ok {
		return p, true
	}
	var tcp []deploy.Port
	for _, p := range s.Ports {
		if p.Protocol == "" || p.Protocol == "tcp" {
			tcp = append(tcp, p)
		}
	}
	if len(tcp) == 1 {
		return tcp[0], true
	}
	return deploy.Port{}, false
}

func portNamed(ports []deploy.Port, name string) (deploy.Port, bool) {
	for _, p := range ports {
		if p.Name == name {
			return p, true
		}
	}
	return deploy.Port{}, false
}
