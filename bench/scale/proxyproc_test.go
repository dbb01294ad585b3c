package scale

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The proxy runs as a process of its own: in the harness's process, which
// runs etcd and every simulated fleet machine and keeps both cores busy at
// 1,000 units, each request through it waited for that process's
// scheduler: 0.1 to 0.6 s per v2 request against 0.02 to 0.07 s straight
// to etcd (curl, 2026-12-04), a cost of the harness that Kaylee's run paid
// and fleet's floor did not.

// proxyTargetEnv set makes the test binary a proxy to that etcd URL (see
// TestMain): it prints "proxy URL" and serves until its stdin closes.
const proxyTargetEnv = "KAYLEE_BENCH_PROXY_TARGET"

func TestMain(m *testing.M) {
	if target := os.Getenv(proxyTargetEnv); target != "" {
		os.Exit(runProxy(target))
	}
	os.Exit(m.Run())
}

func runProxy(target string) int {
	p, err := NewProxy(target)
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxy:", err)
		return 1
	}
	fmt.Println("proxy", p.URL())
	_, _ = io.Copy(io.Discard, os.Stdin) // until the harness goes
	p.Close()
	return 0
}

// proxyProc is the proxy's process.
type proxyProc struct {
	url string
}

// startProxy runs the proxy to etcdURL in a process of its own.
func startProxy(tb testing.TB, etcdURL string) *proxyProc {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), proxyTargetEnv+"="+etcdURL)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting the proxy: %v", err)
	}
	tb.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "proxy ")
	if err != nil || !ok {
		tb.Fatalf("the proxy said %q (%v)", line, err)
	}
	return &proxyProc{url: url}
}

// URL is the proxy's address, for the agent's etcd endpoints.
func (p *proxyProc) URL() string { return p.url }

// V2Requests is how many v2 requests the agent has made through it; -1
// when the proxy does not answer.
func (p *proxyProc) V2Requests() int64 {
	n, _ := p.counts()
	return n
}

// counts are the agent's v2 requests and, of them, its recursive reads
// (-1, -1 when the proxy does not answer).
func (p *proxyProc) counts() (requests, lists int64) {
	code, body := httpGet(strings.TrimPrefix(p.url, "http://"), countPath)
	f := strings.Fields(body)
	if code != 200 || len(f) != 2 {
		return -1, -1
	}
	n, err1 := strconv.ParseInt(f[0], 10, 64)
	l, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return -1, -1
	}
	return n, l
}
