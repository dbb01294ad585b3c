// Package listen keeps the agent's HTTP listeners from taking the file
// descriptors its control loops need (etcd clients, git fetches and their
// cache files, fleet's client, an embedded etcd): a listener holds at
// most a set number of connections at once, sized from the process's
// RLIMIT_NOFILE so that a reserve of descriptors stays free.
//
// A client beyond the cap waits in the kernel's accept queue (it holds no
// descriptor of this process) until a connection ends. When the cap is
// reached, the connection idle the longest between two requests (a
// keep-alive connection, as the HTTP server reports it through
// ConnState) is closed to make room, so that a flood of idle keep-alive
// connections cannot keep others out.
package listen

import (
	"net"
	"net/http"
	gosync "sync"
	"time"
)

// Reserve is how many descriptors MaxConns keeps for everything but the
// HTTP listeners.
const Reserve = 256

// MinConns is the least cap MaxConns gives a listener, however few
// descriptors there are.
const MinConns = 16

// MaxConns is the cap on connections of each of listeners listeners: want,
// lowered when nofile descriptors (RLIMIT_NOFILE; 0 when unknown) would
// not leave Reserve of them free once every listener is full, but not
// below MinConns.
func MaxConns(want, listeners int, nofile uint64) int {
	if nofile == 0 || listeners < 1 {
		return want
	}
	room := (int64(min(nofile, 1<<40)) - Reserve) / int64(listeners)
	if room < int64(want) {
		return int(max(room, MinConns))
	}
	return want
}

// Listener is a net.Listener that holds at most Max connections at once.
// Give its ConnState to the http.Server that serves it.
type Listener struct {
	net.Listener
	slots chan struct{} // one value per open connection
	done  chan struct{} // closed by Close
	once  gosync.Once
	idled chan struct{} // a connection became idle

	mu   gosync.Mutex
	idle map[*conn]time.Time // keep-alive connections between requests, since when
}

// Limit returns ln holding at most max connections at once.
func Limit(ln net.Listener, max int) *Listener {
	return &Listener{Listener: ln, slots: make(chan struct{}, max), done: make(chan struct{}), idled: make(chan struct{}, 1), idle: map[*conn]time.Time{}}
}

// Accept waits for a free slot, making one by closing the longest idle
// keep-alive connection (or the next to become idle) while there is none,
// then accepts a connection.
func (l *Listener) Accept() (net.Conn, error) {
	for acquired := false; !acquired; {
		select {
		case l.slots <- struct{}{}:
			acquired = true
			continue
		default:
		}
		if l.shed() {
			continue
		}
		select {
		case l.slots <- struct{}{}:
			acquired = true
		case <-l.idled:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &conn{Conn: c, l: l}, nil
}

// Close closes the listener; connections accepted stay open.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// ConnState is the http.Server's ConnState hook: it tells the listener
// which connections are idle between requests.
func (l *Listener) ConnState(nc net.Conn, s http.ConnState) {
	c, ok := nc.(*conn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if s == http.StateIdle {
		l.idle[c] = time.Now()
		select {
		case l.idled <- struct{}{}:
		default:
		}
		return
	}
	delete(l.idle, c)
}

// shed closes the connection idle the longest, if any; it says whether
// it did.
func (l *Listener) shed() bool {
	l.mu.Lock()
	var oldest *conn
	var since time.Time
	for c, t := range l.idle {
		if oldest == nil || t.Before(since) {
			oldest, since = c, t
		}
	}
	delete(l.idle, oldest)
	l.mu.Unlock()
	if oldest == nil {
		return false
	}
	_ = oldest.Close()
	return true
}

// conn gives its slot back when closed.
type conn struct {
	net.Conn
	l    *Listener
	once gosync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.idle, c)
		c.l.mu.Unlock()
		<-c.l.slots
	})
	return err
}
