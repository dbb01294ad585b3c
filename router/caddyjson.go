package router

// Caddy's JSON configuration (caddy 2.6), as much of it as Kaylee writes.
// Structs, not maps, so that the bytes keep one order.

// adminHost is the Host header the admin API is asked with: over a unix
// socket Caddy wants an empty one, which Go's client cannot send, so the
// config allows this one.
const adminHost = "127.0.0.1"

type caddyConfig struct {
	Admin caddyAdmin `json:"admin"`
	Apps  caddyApps  `json:"apps"`
}

type caddyAdmin struct {
	Listen  string       `json:"listen"`
	Origins []string     `json:"origins,omitempty"`
	Config  *adminConfig `json:"config,omitempty"`
}

type adminConfig struct {
	Persist bool `json:"persist"`
}

type caddyApps struct {
	HTTP caddyHTTP `json:"http"`
	TLS  *caddyTLS `json:"tls,omitempty"`
}

type caddyHTTP struct {
	GracePeriod string                  `json:"grace_period,omitempty"`
	Servers     map[string]*caddyServer `json:"servers"`
}

type caddyServer struct {
	Listen         []string     `json:"listen"`
	AutomaticHTTPS *autoHTTPS   `json:"automatic_https,omitempty"`
	TLSPolicies    []struct{}   `json:"tls_connection_policies,omitempty"`
	Routes         []caddyRoute `json:"routes"`
}

type autoHTTPS struct {
	Disable bool `json:"disable"`
}

type caddyRoute struct {
	Match    []hostMatch `json:"match,omitempty"`
	Handle   []any       `json:"handle"`
	Terminal bool        `json:"terminal,omitempty"`
}

type hostMatch struct {
	Host []string `json:"host"`
}

type staticResp struct {
	Handler    string              `json:"handler"`
	StatusCode int                 `json:"status_code"`
	Headers    map[string][]string `json:"headers,omitempty"`
	Body       string              `json:"body"`
}

type reverseProxy struct {
	Handler       string        `json:"handler"`
	Transport     transport     `json:"transport"`
	Upstreams     []upstream    `json:"upstreams"`
	LoadBalancing loadBalancing `json:"load_balancing"`
	HealthChecks  healthChecks  `json:"health_checks"`
}

type transport struct {
	Protocol    string `json:"protocol"`
	DialTimeout string `json:"dial_timeout"`
}

type upstream struct {
	Dial string `json:"dial"`
}

type loadBalancing struct {
	SelectionPolicy selectionPolicy `json:"selection_policy"`
	TryDuration     string          `json:"try_duration"`
	TryInterval     string          `json:"try_interval"`
}

type selectionPolicy struct {
	Policy string `json:"policy"`
}

type healthChecks struct {
	Passive passiveHealth `json:"passive"`
}

type passiveHealth struct {
	FailDuration string `json:"fail_duration"`
}

type caddyTLS struct {
	Certificates tlsCertificates `json:"certificates"`
}

type tlsCertificates struct {
	LoadFiles []loadFile `json:"load_files"`
}

type loadFile struct {
	Certificate string   `json:"certificate"`
	Key         string   `json:"key"`
	Tags        []string `json:"tags,omitempty"`
}
