package router

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Admin speaks to Caddy's admin API on a unix socket.
type Admin struct {
	socket string
	c      *http.Client
}

// NewAdmin returns a client of the admin API listening on socket.
func NewAdmin(socket string) *Admin {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives: true,
	}
	return &Admin{socket: socket, c: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// Load makes cfg Caddy's whole configuration (POST /load): Caddy
// provisions it, and only if that works switches over gracefully, the
// requests in flight finishing on the old one. An error leaves the old
// configuration serving.
func (a *Admin) Load(ctx context.Context, cfg []byte) error {
	_, err := a.do(ctx, http.MethodPost, "/load", cfg)
	return err
}

// Config is Caddy's current configuration (GET /config/).
func (a *Admin) Config(ctx context.Context) ([]byte, error) {
	return a.do(ctx, http.MethodGet, "/config/", nil)
}

func (a *Admin) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+adminHost+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("caddy admin API: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("caddy admin API on %s: %w", a.socket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("caddy admin API on %s: %s %s: %w", a.socket, method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("caddy admin API on %s: %s %s: %s: %s", a.socket, method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}
