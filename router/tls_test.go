package router

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
)

// With a certificate directory, caddy serves HTTPS with each domain's
// certificate files (a wildcard's from _wildcard.<rest>), and HTTP all the
// same; a domain without files is served over HTTP only.
func TestRouterTLS(t *testing.T) {
	dir := t.TempDir()
	pool := x509.NewCertPool()
	pool.AddCert(writeCert(t, dir, "a.test"))
	pool.AddCert(writeCert(t, dir, "*.a.test"))
	rg := startRig(t, dir)
	web := startBackend(t, "web")
	rg.putUnit(t, "web", "a.test", "*.a.test", "plain.test")
	rg.instances(t, []*store.Instance{web.instance("web")})
	waitUntil(t, 10*time.Second, "plain.test served", func() bool { return rg.answers("plain.test") == "200 web" })

	get := func(host string) (string, []string, error) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: host},
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "tcp", rg.tls)
			},
		}}
		resp, err := c.Get("https://" + host + "/")
		if err != nil {
			return "", nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), resp.TLS.PeerCertificates[0].DNSNames, err
	}
	for host, cert := range map[string]string{"a.test": "a.test", "x.a.test": "*.a.test"} {
		body, names, err := get(host)
		if err != nil || body != "web" || len(names) != 1 || names[0] != cert {
			t.Errorf("https://%s: %q, certificate %v, %v; want web with the certificate of %s", host, body, names, err, cert)
		}
	}
	if _, _, err := get("plain.test"); err == nil || !strings.Contains(err.Error(), "tls") {
		t.Errorf("https://plain.test (no certificate files): %v; want a TLS error", err)
	}
	if got := rg.answers("a.test"); got != "200 web" {
		t.Errorf("http://a.test: %q", got)
	}
}

// A caddy that exits is started again and given the routes at once.
func TestRouterCaddyRestarts(t *testing.T) {
	rg := startRig(t, "")
	web := startBackend(t, "web")
	rg.putUnit(t, "web", "a.test")
	rg.instances(t, []*store.Instance{web.instance("web")})
	waitUntil(t, 10*time.Second, "a.test served", func() bool { return rg.answers("a.test") == "200 web" })
	if _, err := rg.admin.do(context.Background(), http.MethodPost, "/stop", nil); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "caddy stopped", func() bool { return rg.answers("a.test") != "200 web" })
	waitUntil(t, 10*time.Second, "a.test served by a new caddy", func() bool { return rg.answers("a.test") == "200 web" })
}
