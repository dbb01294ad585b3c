package scale

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// h2Preface opens every HTTP/2 connection without TLS: etcd's v3 gRPC.
var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// Proxy stands between one client (the agent) and etcd on loopback and
// counts the client's etcd v2 requests (HTTP/1: fleet's registry, the v2
// units bridge). etcd serves v2 and v3 on one port; v3 is gRPC over
// HTTP/2, passed through as bytes (etcd's own metrics count it).
type Proxy struct {
	ln     net.Listener
	target string // host:port
	v2     atomic.Int64
	lists  atomic.Int64 // recursive reads (not watches): a directory listed whole
	http1  *chanListener
	srv    *http.Server

	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// NewProxy listens on a free loopback port for clients of the etcd at
// targetURL (http://host:port).
func NewProxy(targetURL string) (*Proxy, error) {
	u, err := url.Parse(targetURL)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: u.Host, conns: map[net.Conn]bool{}}
	p.http1 = &chanListener{addr: ln.Addr(), conns: make(chan net.Conn), done: make(chan struct{})}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1 // v2 watches stream
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	rp.ErrorLog = log.New(io.Discard, "", 0) // a client's cancelled watch is no news
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == countPath { // the harness asking, not the client
			fmt.Fprintln(w, p.v2.Load(), p.lists.Load())
			return
		}
		p.v2.Add(1)
		if q := r.URL.Query(); r.Method == http.MethodGet && q.Get("recursive") == "true" && q.Get("wait") != "true" {
			p.lists.Add(1)
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = p.srv.Serve(p.http1) }()
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// URL is the proxy's address, for the client's etcd endpoints.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// countPath answers how many v2 requests the proxy has passed on, and how
// many of them were recursive reads.
const countPath = "/kaylee-bench/v2-requests"

// Close stops the proxy and cuts every connection.
func (p *Proxy) Close() {
	p.ln.Close()
	p.http1.Close()
	_ = p.srv.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

// handle sends an HTTP/2 connection to etcd as it is, and an HTTP/1 one
// to the counting reverse proxy.
func (p *Proxy) handle(c net.Conn) {
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	head, err := br.Peek(len(h2Preface))
	_ = c.SetReadDeadline(time.Time{})
	if err != nil && len(head) == 0 {
		c.Close()
		return
	}
	bc := &bufConn{Conn: c, r: br}
	if !bytes.Equal(head, h2Preface) {
		select {
		case p.http1.conns <- bc:
		case <-p.http1.done:
			c.Close()
		}
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, up) {
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _, _ = io.Copy(up, bc); up.Close() }()
	go func() { defer wg.Done(); _, _ = io.Copy(c, up); c.Close() }()
	wg.Wait()
	p.untrack(c, up)
}

func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = true
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

// bufConn is a connection whose first bytes were peeked.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// chanListener hands the HTTP server the connections accept gives it.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, errors.New("proxy closed")
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
