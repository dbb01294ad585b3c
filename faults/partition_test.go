package faults

import (
	"net"
	"net/url"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// proxy forwards TCP connections on loopback to a target; cut makes it a
// black hole (connections open but nothing passes, as a partition does),
// heal lets traffic through again.
type proxy struct {
	ln     net.Listener
	target string
	mu     gosync.Mutex
	cutOff bool
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.closeAll() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			cut := p.cutOff
			p.mu.Unlock()
			if !cut {
				go p.forward(c)
			}
		}
	}()
	return p
}

func (p *proxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *proxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, up)
	p.mu.Unlock()
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.mu.Lock()
				cut := p.cutOff
				p.mu.Unlock()
				if cut {
					return // dropped on the floor
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go pipe(up, c)
	pipe(c, up)
}

// cut stops every byte: open connections stay open and silent.
func (p *proxy) cut() {
	p.mu.Lock()
	p.cutOff = true
	p.mu.Unlock()
}

// heal closes the silent connections (as a peer's TCP stack eventually
// does) and forwards new ones.
func (p *proxy) heal() {
	p.mu.Lock()
	p.cutOff = false
	p.mu.Unlock()
	p.closeAll()
}

func (p *proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// The leader's etcd traffic is cut while the process lives: it steps down
// within its lease, the other server leads and finishes the rollout; once
// the network heals the old leader rejoins as a follower without writing
// anything.
func TestPartitionedLeaderStepsDown(t *testing.T) {
	e := etcdtest.New(t)
	u, _ := url.Parse(e.ClientURL())
	px := newProxy(t, u.Host)
	w := newWorld(t, e.Endpoints(), store.New(e.Client(t), store.DefaultPrefix), worldOptions{serverEndpoints: [][]string{{px.URL()}, e.Endpoints()}})
	a, b := w.servers[0], w.servers[1]
	waitFor(t, 20*time.Second, "server a (behind the proxy) leads", func() bool { return strings.Contains(a.stderr.String(), `msg="became leader"`) })
	w.synced(w.repo.Git("rev-parse", "HEAD"), "web:1", 60*time.Second, time.Now())

	rev := w.commit("web:2")
	waitFor(t, 30*time.Second, "web:2's rollout under way", func() bool {
		st := w.status()
		return st != nil && st.Phase == store.PhaseProgressing
	})
	px.cut()
	cut := time.Now()
	down := waitFor(t, 30*time.Second, "server a steps down", func() bool { return strings.Contains(a.stderr.String(), "lost leadership") })
	waitFor(t, 30*time.Second, "server b leads", func() bool { return strings.Contains(b.stderr.String(), `msg="became leader"`) })
	t.Logf("partitioned leader stepped down %s after the cut (lease %s); the other led %s after the cut",
		down.Round(100*time.Millisecond), leaseTTL, time.Since(cut).Round(100*time.Millisecond))
	if down > leaseTTL+3*time.Second {
		t.Errorf("server a noticed its lost leadership only %s after the cut (lease %s)", down, leaseTTL)
	}
	w.synced(rev, "web:2", 60*time.Second, cut)

	// Heal: a campaigns again behind b, and writes nothing.
	healed := len(a.stderr.String())
	px.heal()
	time.Sleep(3*leaseTTL + 2*time.Second)
	for _, line := range strings.Split(a.stderr.String()[healed:], "\n") {
		for _, write := range []string{`msg="became leader"`, "msg=fleet ", "msg=status "} {
			if strings.Contains(line, write) {
				t.Errorf("server a, healed, did not stay a follower: %s", line)
			}
		}
	}
	w.settled()
}
