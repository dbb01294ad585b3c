package main

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

var syncTotal = regexp.MustCompile(`(?m)^kaylee_sync_total\{result="\w+",source="units"\} (\d+)$`)

// passes sums an agent's sync passes from its metrics.
func passes(t *testing.T, addr string) int {
	t.Helper()
	_, m := get(addr, "/metrics")
	n := 0
	for _, c := range syncTotal.FindAllStringSubmatch(m, -1) {
		v, _ := strconv.Atoi(c[1])
		n += v
	}
	return n
}

// A webhook storm: 1,000 signed webhooks in about 10 s, to two agents,
// all answered 202 quickly and coalesced into a handful of sync passes;
// a body over the limit gets 413; a client that stalls in its headers or
// its body is cut off within seconds.
func TestWebhookStorm(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"web.yaml": unitWeb})
	repo.Commit("first")
	url := repo.ServeHTTP("", "")
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addrs := []string{freePort(t), freePort(t)}
	for _, addr := range addrs {
		startKaylee(t, map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}, "agent", "--repo", url, "--source", "units",
			"--cache-dir", t.TempDir(), "--interval", "1h", "--listen", addr, "--webhook-secret-file", secretFile, "--lease-ttl", "2s")
	}
	startFleet(t, e, 1)
	for _, addr := range addrs {
		waitFor(t, 30*time.Second, "agent ready", func() bool { code, _ := get(addr, "/readyz"); return code == 200 })
	}
	repo.Write(map[string]string{"web.yaml": unitWeb2})
	rev := repo.Commit("second")
	before := passes(t, addrs[0]) + passes(t, addrs[1])

	body := `{"after":"` + rev + `","repository":{"clone_url":"` + url + `"}}`
	m := hmac.New(sha256.New, []byte("s3cret"))
	m.Write([]byte(body))
	sig := "sha256=" + hex.EncodeToString(m.Sum(nil))
	const n, workers = 1000, 20
	var mu gosync.Mutex
	codes := map[int]int{}
	var took []time.Duration
	jobs := make(chan int)
	var wg gosync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				req, _ := http.NewRequest("POST", "http://"+addrs[i%2]+"/hooks/git", strings.NewReader(body))
				req.Header.Set("X-Hub-Signature-256", sig)
				t0 := time.Now()
				resp, err := client.Do(req)
				d := time.Since(t0)
				code := 0
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				mu.Lock()
				codes[code]++
				took = append(took, d)
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	for i := range n {
		jobs <- i
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * 10 * time.Second / n)))
	}
	close(jobs)
	wg.Wait()
	waitFor(t, 30*time.Second, "web at nginx:2", func() bool { return strings.Contains(storedUnits(t, e)["web"], "nginx:2") })
	time.Sleep(2 * time.Second)
	made := passes(t, addrs[0]) + passes(t, addrs[1]) - before
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	t.Logf("%d webhooks in %s to 2 agents: answers %v; latency p50 %s, p99 %s, max %s; %d sync passes",
		n, time.Since(start).Round(100*time.Millisecond), codes, took[n/2].Round(time.Microsecond), took[n*99/100].Round(time.Microsecond),
		took[n-1].Round(time.Microsecond), made)
	if codes[202] != n {
		t.Fatalf("answers %v: want all %d 202", codes, n)
	}
	if made > 10 {
		t.Fatalf("%d webhooks for one push made %d sync passes; want a handful", n, made)
	}

	// A body over 5 MiB: 413.
	big := `{"after":"` + strings.Repeat("0", 6<<20) + `"}`
	req, _ := http.NewRequest("POST", "http://"+addrs[0]+"/hooks/git", strings.NewReader(big))
	req.Header.Set("X-Gitlab-Token", "s3cret")
	if resp, err := client.Do(req); err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("a 6 MiB body: %v %v, want 413", resp, err)
	}

	// Stalled headers, then a stalled body: the connection is closed.
	for _, tt := range []struct {
		name, send string
		within     time.Duration
	}{
		{"headers", "POST /hooks/git HTTP/1.1\r\nHost: x\r\nX-Gitlab-Token: s3", 8 * time.Second},
		{"body", "POST /hooks/git HTTP/1.1\r\nHost: x\r\nX-Gitlab-Token: s3cret\r\nContent-Length: 1000\r\n\r\n{\"after\":", 14 * time.Second},
	} {
		c, err := net.Dial("tcp", addrs[1])
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		fmt.Fprint(c, tt.send)
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err = bufio.NewReader(c).ReadString('\x00') // until the server closes
		d := time.Since(t0)
		c.Close()
		t.Logf("a client stalling in its %s was cut off after %s", tt.name, d.Round(100*time.Millisecond))
		if d > tt.within {
			t.Errorf("a client stalling in its %s held the connection %s (%v)", tt.name, d, err)
		}
	}
}
