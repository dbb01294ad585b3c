// Package router keeps a front HTTP router (Caddy, through its admin API)
// configured from etcd: each unit's domains go to the replicas of the
// instance registry (<prefix>/instances/), and only to them. Routes and
// Compute are pure; Router is the runtime that follows etcd, and Caddy
// runs and supervises the caddy process.
package router

import (
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// Route is where the router sends one domain: the replicas of Unit that
// are in the instance registry. No endpoint: the router answers 503
// naming the unit.
type Route struct {
	Domain    string   `json:"domain"`
	Unit      string   `json:"unit"`
	Endpoints []string `json:"endpoints"` // ip:port of the HTTP port, sorted
	// Note says why a route has no endpoint although replicas serve, or
	// that other units claim the domain too.
	Note string `json:"note,omitempty"`
}

// Wildcard reports whether the route's domain is a "*." wildcard, which
// matches exactly one more label (*.a.com: x.a.com, not y.x.a.com).
func (r Route) Wildcard() bool { return strings.HasPrefix(r.Domain, "*.") }

// Unserved is what the router answers (503) for a route none of whose
// unit's replicas serves; "" for a route with endpoints.
func (r Route) Unserved() string {
	if len(r.Endpoints) > 0 {
		return ""
	}
	return "no replica of unit " + r.Unit + " serves"
}

// Routes is every domain of units (by name) with the endpoints of its
// unit's instances, in the order the router matches them: exact names
// first, then wildcards (so that www.a.com goes to its own unit whatever
// *.a.com says), each by name. Only instances of the registry count, each
// at its machine's IP and the unit's HTTP port as the instance records
// its ports. A domain that several units claim (validation refuses it;
// hand-written keys may not) goes to the first by name.
func Routes(units map[string]*deploy.Spec, instances []*store.Instance) []Route {
	byUnit := map[string][]*store.Instance{}
	for _, in := range instances {
		byUnit[in.Unit] = append(byUnit[in.Unit], in)
	}
	names := make([]string, 0, len(units))
	for n := range units {
		names = append(names, n)
	}
	slices.Sort(names)
	claimed := map[string]int{} // domain → index in out
	var out []Route
	for _, n := range names {
		for _, d := range units[n].Domains {
			if d == "" {
				continue
			}
			if i, ok := claimed[d]; ok {
				out[i].Note = joinNote(out[i].Note, "also claimed by "+n+", which gets none of its requests")
				continue
			}
			claimed[d] = len(out)
			eps, note := endpoints(units[n], byUnit[n])
			out = append(out, Route{Domain: d, Unit: n, Endpoints: eps, Note: note})
		}
	}
	slices.SortFunc(out, func(a, b Route) int {
		if a.Wildcard() != b.Wildcard() {
			if a.Wildcard() {
				return 1
			}
			return -1
		}
		return strings.Compare(a.Domain, b.Domain)
	})
	return out
}

// endpoints are the ip:port of a unit's instances, sorted and without
// duplicates, and a note when instances serve but none has an address.
func endpoints(spec *deploy.Spec, ins []*store.Instance) ([]string, string) {
	eps := []string{}
	var noPort, noIP int
	for _, in := range ins {
		p, ok := (&deploy.Spec{Ports: in.Ports, DomainsPort: spec.DomainsPort}).HTTPPort()
		switch {
		case !ok:
			noPort++
		case in.MachineIP == "":
			noIP++
		default:
			eps = append(eps, net.JoinHostPort(in.MachineIP, strconv.Itoa(p.Port)))
		}
	}
	slices.Sort(eps)
	eps = slices.Compact(eps)
	var note string
	if noPort > 0 {
		note = joinNote(note, strconv.Itoa(noPort)+" instance(s) without the HTTP port (ports: one named http, the only tcp port, or the one domainsPort names)")
	}
	if noIP > 0 {
		note = joinNote(note, strconv.Itoa(noIP)+" instance(s) without a machine IP")
	}
	return eps, note
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
