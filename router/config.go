package router

import (
	"encoding/json"
	"fmt"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// Options are what the Caddy configuration needs beside the routes.
type Options struct {
	Listen      string // address of plain HTTP, such as :80
	TLSListen   string // address of HTTPS, such as :443: served only when Certs is not empty
	AdminSocket string // the unix socket of Caddy's admin API, which every config keeps
	Certs       []Cert // certificate files (see FindCerts)
}

// Cert is the certificate and key files of one domain.
type Cert struct {
	Domain   string `json:"domain"`
	CertFile string `json:"certFile"`
	KeyFile  string `json:"keyFile"`
}

// Result is what the registry and the units come to.
type Result struct {
	Routes []Route
	Config []byte // Caddy's JSON configuration, the same bytes for the same input
}

// Retries: a request whose upstream refuses the connection (a replica
// that stopped before the router heard it left the registry) or does not
// answer it within dialTimeout (a machine lost) is tried on another
// replica every tryInterval for up to tryDuration; an upstream that
// failed is left out for failDuration. The interval is short because
// Caddy cuts a request that waits to be retried when a new configuration
// replaces the one it came in with (requests in flight to an upstream
// finish): the sooner it retries, the less it meets one. dialTimeout is
// for the TCP connection alone (replicas are on the cluster's network,
// where a connection takes a millisecond): a machine that went silent
// costs a request 300ms and one retry, not the client's whole timeout
// (on the real tier, a silent machine failed ~1 request in 10 for 20s
// with 2s, 3 in 1,358 with 300ms: FAULTS.md).
const (
	tryDuration  = "5s"
	tryInterval  = "25ms"
	dialTimeout  = "300ms"
	failDuration = "5s"
	// gracePeriod bounds how long a replaced configuration keeps serving
	// its requests in flight.
	gracePeriod = "30s"
)

// Compute turns the units and the instance registry into routes and the
// Caddy configuration that serves them.
func Compute(units map[string]*deploy.Spec, instances []*store.Instance, o Options) (*Result, error) {
	routes := Routes(units, instances)
	cfg, err := CaddyConfig(routes, o)
	if err != nil {
		return nil, err
	}
	return &Result{Routes: routes, Config: cfg}, nil
}

// CaddyConfig is Caddy's JSON configuration for routes, in their order, then a
// catch-all that answers 404: the admin API on o.AdminSocket (every
// loaded config must keep it, or Caddy moves it to its default),
// automatic HTTPS off (no ACME), HTTP on o.Listen, and HTTPS on
// o.TLSListen with o.Certs when there are any.
func CaddyConfig(routes []Route, o Options) ([]byte, error) {
	var rs []caddyRoute
	for _, r := range routes {
		rs = append(rs, caddyRouteOf(r))
	}
	rs = append(rs, caddyRoute{Handle: []any{staticResponse(404, "no unit serves {http.request.host}\n")}})
	off := &autoHTTPS{Disable: true}
	servers := map[string]*caddyServer{"http": {Listen: []string{o.Listen}, AutomaticHTTPS: off, Routes: rs}}
	cfg := caddyConfig{
		Admin: caddyAdmin{Listen: "unix/" + o.AdminSocket, Origins: []string{adminHost}, Config: &adminConfig{Persist: false}},
		Apps:  caddyApps{HTTP: caddyHTTP{GracePeriod: gracePeriod, Servers: servers}},
	}
	if len(o.Certs) > 0 {
		servers["https"] = &caddyServer{Listen: []string{o.TLSListen}, AutomaticHTTPS: off, TLSPolicies: []struct{}{{}}, Routes: rs}
		var files []loadFile
		for _, c := range o.Certs {
			files = append(files, loadFile{Certificate: c.CertFile, Key: c.KeyFile, Tags: []string{"kaylee:" + c.Domain}})
		}
		cfg.Apps.TLS = &caddyTLS{Certificates: tlsCertificates{LoadFiles: files}}
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("caddy config: %w", err)
	}
	return append(b, '\n'), nil
}

func caddyRouteOf(r Route) caddyRoute {
	m := []hostMatch{{Host: []string{r.Domain}}}
	if len(r.Endpoints) == 0 {
		return caddyRoute{Match: m, Handle: []any{staticResponse(503, r.Unserved()+"\n")}, Terminal: true}
	}
	p := reverseProxy{
		Handler:   "reverse_proxy",
		Transport: transport{Protocol: "http", DialTimeout: dialTimeout},
		LoadBalancing: loadBalancing{
			SelectionPolicy: selectionPolicy{Policy: "round_robin"},
			TryDuration:     tryDuration, TryInterval: tryInterval,
		},
		HealthChecks: healthChecks{Passive: passiveHealth{FailDuration: failDuration}},
	}
	for _, e := range r.Endpoints {
		p.Upstreams = append(p.Upstreams, upstream{Dial: e})
	}
	return caddyRoute{Match: m, Handle: []any{p}, Terminal: true}
}

func staticResponse(code int, body string) staticResp {
	return staticResp{Handler: "static_response", StatusCode: code,
		Headers: map[string][]string{"Content-Type": {"text/plain; charset=utf-8"}}, Body: body}
}
