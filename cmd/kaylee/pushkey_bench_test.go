package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/internal/testutil"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// BenchmarkPushToKey: push webhook → unit key in etcd. A kaylee agent
// runs in-process (as startKaylee runs it) on an embedded etcd, with a
// simulated fleet of one machine for its scheduler, following a
// repository served by git's smart HTTP (git http-backend), with 1 or
// 100 unit files. Each round commits a change to one unit's file, opens
// an etcd watch on that unit's key, then times from just before the
// signed push webhook is POSTed to the agent until the watch delivers the
// key holding the new value. Rounds are a second apart, so that each is
// one push, not a storm. Besides the median, p90 and max, it reports
// where a push's time went, as medians over the pushes, from the POST of
// the webhook: when the git server got the first request of the pass
// (ms-git-start), when it had answered the last one (ms-git-end), and the
// git server's own time, each request from its arrival to the end of its
// answer, summed (ms-git-busy; requests served at the same time count
// for each). Figures, not a check:
//
//	go test -run '^$' -bench PushToKey -benchtime 30x ./cmd/kaylee
func BenchmarkPushToKey(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("units=%d", n), func(b *testing.B) { benchPushToKey(b, n, false) })
	}
}

// BenchmarkPushToKeyPaired is BenchmarkPushToKey with every other
// webhook's payload naming no default branch, so that its trigger carries
// no commit and the fetch is not told it (no guessed pack: see
// gitsource.WithAfter): ms-median-after and ms-median-plain are the two
// halves, under the same load.
//
//	go test -run '^$' -bench PushToKeyPaired -benchtime 60x ./cmd/kaylee
func BenchmarkPushToKeyPaired(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("units=%d", n), func(b *testing.B) { benchPushToKey(b, n, true) })
	}
}

func pushUnit(i, version int) string {
	return fmt.Sprintf("name: svc-%04d\nreplicas: 1\napps:\n- image: docker://registry.lan/svc:%d\n", i, version)
}

func benchPushToKey(b *testing.B, n int, paired bool) {
	e := etcdtest.New(b)
	cli := e.Client(b)
	repo := gittest.NewRepo(b)
	files := map[string]string{}
	for i := range n {
		files[fmt.Sprintf("units/svc-%04d.yaml", i)] = pushUnit(i, 0)
	}
	repo.Write(files)
	repo.Commit("first")
	git := &gitTimes{}
	url := repo.ServeHTTPAround("", "", git.serve)
	secret := filepath.Join(b.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	fl, err := fleetsim.Start(context.Background(), fleetsim.Config{Endpoints: e.Endpoints(), Machines: fleetsim.Machines(1),
		TTL: 4 * time.Second, EngineInterval: time.Second, StartDelay: 100 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(fl.Close)
	addr := testutil.FreeAddr(b)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	errb := &syncBuffer{}
	go func() {
		done <- run(ctx, []string{"agent", "--repo", url, "--path", "units", "--source", "units", "--cache-dir", b.TempDir(),
			"--interval", "1h", "--listen", addr, "--webhook-secret-file", secret, "--lease-ttl", "2s"},
			&stdio{in: strings.NewReader(""), out: io.Discard, err: errb}, testEnv(map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}))
	}()
	b.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			b.Errorf("the agent did not stop within 20s")
		}
	})
	testutil.Eventually(b, 60*time.Second, "agent ready", func() (bool, string) {
		code, body := get(addr, "/readyz")
		return code == 200, body
	})
	client := &http.Client{Timeout: 10 * time.Second}
	var took, gitStart, gitEnd, gitBusy []time.Duration
	var halves [2][]time.Duration // paired: [0] no commit told, [1] told
	for round := 1; b.Loop(); round++ {
		b.StopTimer()
		i := round % n
		key := fmt.Sprintf("/kaylee2/units/svc-%04d", i)
		want := fmt.Sprintf("svc:%d", round)
		repo.Write(map[string]string{fmt.Sprintf("units/svc-%04d.yaml", i): pushUnit(i, round)})
		rev := repo.Commit(fmt.Sprintf("round %d", round))
		wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
		r, err := cli.Get(wctx, key)
		if err != nil {
			b.Fatal(err)
		}
		wc := cli.Watch(wctx, key, clientv3.WithRev(r.Header.Revision+1))
		// As GitHub's: the repository's default branch is named, so that
		// the trigger of a source following the remote's HEAD carries the
		// pushed commit.
		branch := `,"default_branch":"main"`
		if paired && round%2 == 0 {
			branch = ""
		}
		body := `{"ref":"refs/heads/main","after":"` + rev + `","repository":{"clone_url":"` + url + `"` + branch + `}}`
		m := hmac.New(sha256.New, []byte("s3cret"))
		m.Write([]byte(body))
		req, _ := http.NewRequest("POST", "http://"+addr+"/hooks/git", strings.NewReader(body))
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
		req.Header.Set("X-GitHub-Event", "push")
		git.reset()
		b.StartTimer()
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			b.Fatalf("webhook: %s", resp.Status)
		}
		var d time.Duration
	watch:
		for wr := range wc {
			for _, ev := range wr.Events {
				if strings.Contains(string(ev.Kv.Value), want) {
					d = time.Since(t0)
					break watch
				}
			}
		}
		b.StopTimer()
		wcancel()
		if d == 0 {
			b.Fatalf("round %d: %s never held %s; agent's log:\n%s", round, key, want, tail(errb.String(), 4000))
		}
		took = append(took, d)
		if paired {
			halves[round%2] = append(halves[round%2], d)
		}
		first, last, busy := git.since(t0)
		gitStart, gitEnd, gitBusy = append(gitStart, first), append(gitEnd, last), append(gitBusy, busy)
		time.Sleep(time.Second) // a push, not a storm: Recent's window is a second
		b.StartTimer()
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	median := func(ds []time.Duration) float64 {
		ds = slices.Clone(ds)
		slices.Sort(ds)
		return ms(ds[len(ds)/2])
	}
	if paired {
		b.ReportMetric(median(halves[0]), "ms-median-plain")
		b.ReportMetric(median(halves[1]), "ms-median-after")
	}
	b.ReportMetric(median(gitStart), "ms-git-start")
	b.ReportMetric(median(gitEnd), "ms-git-end")
	b.ReportMetric(median(gitBusy), "ms-git-busy")
	slices.Sort(took)
	b.ReportMetric(ms(took[len(took)/2]), "ms-median")
	b.ReportMetric(ms(took[len(took)*9/10]), "ms-p90")
	b.ReportMetric(ms(took[len(took)-1]), "ms-max")
	b.Logf("%d rounds, %d units: push → key %v", len(took), n, took)
}

// gitTimes records the requests a git server (gittest's
// ServeHTTPAround) serves: when each arrived and when its answer ended.
type gitTimes struct {
	mu         gosync.Mutex
	start, end []time.Time
}

func (g *gitTimes) serve(req *http.Request, serve func()) {
	t := time.Now()
	serve()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.start, g.end = append(g.start, t), append(g.end, time.Now())
}

func (g *gitTimes) reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.start, g.end = nil, nil
}

// since is, from t0, when the first request arrived, when the last
// answer ended, and the requests' times summed.
func (g *gitTimes) since(t0 time.Time) (first, last, busy time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range g.start {
		if d := g.start[i].Sub(t0); i == 0 || d < first {
			first = d
		}
		last = max(last, g.end[i].Sub(t0))
		busy += g.end[i].Sub(g.start[i])
	}
	return first, last, busy
}
