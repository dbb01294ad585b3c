package listen

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMaxConns(t *testing.T) {
	tests := []struct {
		name      string
		want      int
		listeners int
		nofile    uint64
		got       int
	}{
		{"plenty of descriptors", 1024, 2, 1 << 20, 1024},
		{"unknown limit", 1024, 1, 0, 1024},
		{"no listener", 1024, 0, 512, 1024},
		{"one listener, 1024 descriptors", 1024, 1, 1024, 1024 - Reserve},
		{"two listeners share what the reserve leaves", 1024, 2, 1024, (1024 - Reserve) / 2},
		{"a low flag stays", 50, 1, 512, 50},
		{"never below MinConns", 1024, 1, 200, MinConns},
		{"a huge limit", 1024, 1, 1 << 63, 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MaxConns(tt.want, tt.listeners, tt.nofile); got != tt.got {
				t.Errorf("MaxConns(%d, %d, %d) = %d, want %d", tt.want, tt.listeners, tt.nofile, got, tt.got)
			}
		})
	}
}

// counting counts the connections (descriptors) it has open.
type counting struct {
	net.Listener
	open, peak atomic.Int64
}

func (l *counting) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if n := l.open.Add(1); n > l.peak.Load() {
		l.peak.Store(n)
	}
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l    *counting
	once gosync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

// serve serves a listener capped at max, with the ConnState hook; it
// returns the listener and the count of connections open under it.
func serve(t *testing.T, max int) (*Listener, *atomic.Int64, *atomic.Int64) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &counting{Listener: raw}
	ln := Limit(cl, max)
	srv := &http.Server{
		Handler:     http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }),
		ConnState:   ln.ConnState,
		IdleTimeout: time.Hour, ReadHeaderTimeout: time.Hour,
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln, &cl.open, &cl.peak
}

// request makes a request on a new connection and returns it, idle and
// open.
func request(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return c, br
}

// More idle keep-alive connections than the cap: each is answered, the
// longest idle is closed to make room, and no more than the cap are ever
// open at once.
func TestLimitShedsIdle(t *testing.T) {
	const max = 5
	ln, open, peak := serve(t, max)
	addr := ln.Addr().String()
	type client struct {
		c  net.Conn
		br *bufio.Reader
	}
	var conns []client
	for range 3 * max {
		c, br := request(t, addr)
		conns = append(conns, client{c, br})
	}
	if p := peak.Load(); p > max {
		t.Errorf("%d connections open at once, over the cap of %d", p, max)
	}
	// All but the cap's worth were closed to make room (which ones
	// depends on when the server saw each idle; at most one more, made
	// room for ahead of the next client).
	closed := 0
	for _, c := range conns {
		_ = c.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.br.ReadByte(); err != nil && !isTimeout(err) {
			closed++
		}
	}
	if closed < 2*max || closed > 2*max+1 {
		t.Errorf("%d of %d idle connections closed, want %d or %d", closed, 3*max, 2*max, 2*max+1)
	}
	if n := open.Load(); n > max || n < max-1 {
		t.Errorf("%d open, want %d or %d", n, max-1, max)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Connections that are not idle (a request under way, or none sent yet)
// are not closed: the next client waits until one ends.
func TestLimitWaitsForBusy(t *testing.T) {
	ln, _, _ := serve(t, 1)
	addr := ln.Addr().String()
	busy, err := net.Dial("tcp", addr) // accepted, sends nothing
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	time.Sleep(100 * time.Millisecond)
	done := make(chan struct{})
	go func() {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			_, _ = http.ReadResponse(bufio.NewReader(c), nil)
			c.Close()
		}
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("a second connection was served while the only slot was busy")
	case <-time.After(300 * time.Millisecond):
	}
	busy.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting connection was not served once the slot was free")
	}
}

// Close ends an Accept waiting for a slot.
func TestLimitClose(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := Limit(raw, 1)
	go func() { c, _ := net.Dial("tcp", raw.Addr().String()); _ = c }()
	if _, err := ln.Accept(); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := ln.Accept(); errc <- err }()
	time.Sleep(50 * time.Millisecond)
	ln.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still waiting after Close")
	}
}
