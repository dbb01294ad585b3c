package store

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// SchemeError is a dial that failed because an endpoint's scheme does not
// match what the server there speaks: https:// against a plain-HTTP etcd,
// or http:// against one that speaks TLS. Err is the dial's own error.
type SchemeError struct {
	Endpoint  string
	ServerTLS bool // the server speaks TLS (the endpoint says http://)
	Err       error
}

func (e *SchemeError) Error() string {
	if e.ServerTLS {
		return fmt.Sprintf("etcd at %s speaks TLS: use https://", e.Endpoint)
	}
	return fmt.Sprintf("etcd at %s answers plain HTTP: use http://", e.Endpoint)
}

func (e *SchemeError) Unwrap() error { return e.Err }

// probeTimeout bounds each probe of probeSchemes.
const probeTimeout = time.Second

// probeSchemes explains a failed dial when it can: the first endpoint
// whose server speaks the other protocol than its scheme says gives a
// *SchemeError wrapping err; otherwise err is returned as it is.
func probeSchemes(ctx context.Context, endpoints []string, err error) error {
	for _, ep := range endpoints {
		u, perr := url.Parse(ep)
		if perr != nil || u.Host == "" {
			continue
		}
		switch u.Scheme {
		case "https":
			if !speaksTLS(ctx, u.Host) && answersHTTP(ctx, u.Host) {
				return &SchemeError{Endpoint: ep, Err: err}
			}
		case "http":
			if speaksTLS(ctx, u.Host) {
				return &SchemeError{Endpoint: ep, ServerTLS: true, Err: err}
			}
		}
	}
	return err
}

func probeDial(ctx context.Context, host string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	_ = c.SetDeadline(deadline)
	return c, nil
}

// speaksTLS: a TLS handshake with the server completes (whoever signed
// its certificate).
func speaksTLS(ctx context.Context, host string) bool {
	c, err := probeDial(ctx, host)
	if err != nil {
		return false
	}
	defer c.Close()
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only asks whether it speaks TLS
	return tc.HandshakeContext(ctx) == nil
}

// answersHTTP: the server answers a plain HTTP/1.1 request.
func answersHTTP(ctx context.Context, host string) bool {
	c, err := probeDial(ctx, host)
	if err != nil {
		return false
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "GET /version HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host); err != nil {
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}
