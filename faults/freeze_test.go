package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"syscall"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

const leaseTTL = 2 * time.Second

func webSpec(t *testing.T, image string) *deploy.Spec {
	t.Helper()
	docs, err := deploy.Load("web.yaml", []byte("name: web\nreplicas: 2\nupdate: {maxSurge: 1}\napps:\n- image: docker://"+image+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	return &docs[0].Spec
}

// sample is what fleet held at one moment: launched fleet units of web by
// spec hash.
type sample struct {
	at       time.Time
	launched map[string]int
}

// sampler lists fleet's units every 100ms until stopped.
type sampler struct {
	mu      gosync.Mutex
	samples []sample
	stop    func()
}

// maxLaunched is the most web replicas launched at once.
func (s *sampler) maxLaunched() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	most := 0
	for _, sm := range s.samples {
		n := 0
		for _, c := range sm.launched {
			n += c
		}
		most = max(most, n)
	}
	return most
}

func sampleFleet(cluster *fleetsim.Cluster) *sampler {
	s := &sampler{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var once gosync.Once
	s.stop = func() { once.Do(func() { cancel(); <-done }) }
	api := cluster.API()
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			units, err := api.Units()
			if err == nil {
				sm := sample{at: time.Now(), launched: map[string]int{}}
				for _, u := range units {
					if f := strings.Split(u.Name, ":"); len(f) == 5 && f[1] == "web" && u.DesiredState == "launched" {
						sm.launched[f[2]]++
					}
				}
				s.mu.Lock()
				s.samples = append(s.samples, sm)
				s.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return s
}

// A leader frozen (SIGSTOP) right after it confirmed its leadership and
// right before its fleet calls, for 3× its lease: another server takes
// over and rolls out two new versions; when the old one wakes up it makes
// no fleet call at all, and no replica of a superseded version is launched
// again. This is the window a v3 transaction cannot fence (fleet's
// registry is in etcd's v2 keyspace).
func TestFrozenLeaderMakesNoFleetCall(t *testing.T) {
	e := etcdtest.New(t)
	ctx := context.Background()
	cluster, err := fleetsim.Start(ctx, fleetsim.Config{Endpoints: e.Endpoints(), Machines: fleetsim.Machines(3),
		TTL: 4 * time.Second, EngineInterval: time.Second, StartDelay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	s := store.New(e.Client(t), store.DefaultPrefix)
	arm := filepath.Join(t.TempDir(), "stop-now")
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	args := []string{"server", "--lease-ttl", leaseTTL.String(), "--min-ready", "300ms"}
	envA := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_TEST_STOP_AFTER_CONFIRM": arm}
	a := start(t, "server a", envA, args...)
	waitFor(t, 20*time.Second, "server a leads", func() bool { return strings.Contains(a.stderr.String(), `msg="became leader"`) })
	b := start(t, "server b", env, args...)

	running := func(spec *deploy.Spec) {
		t.Helper()
		waitFor(t, 60*time.Second, "web running "+spec.Apps[0].Image, func() bool {
			st, err := s.GetStatus(ctx, "web")
			return err == nil && st.Phase == store.PhaseRunning && st.SpecHash == spec.Hash(0) && st.Running == 2
		})
	}
	v1, v2, v3 := webSpec(t, "web:1"), webSpec(t, "web:2"), webSpec(t, "web:3")
	put := func(sp *deploy.Spec) {
		t.Helper()
		if _, err := s.PutUnit(ctx, sp, store.Fence{}); err != nil {
			t.Fatal(err)
		}
	}
	put(v1)
	running(v1)
	smp := sampleFleet(cluster)
	defer smp.stop()

	// Arm the fault, start a rollout: a stops itself before its calls.
	if err := os.WriteFile(arm, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	put(v2)
	waitFor(t, 20*time.Second, "server a frozen before its fleet calls", a.stopped)
	frozenAt := time.Now()
	took := waitFor(t, 30*time.Second, "server b takes over", func() bool { return strings.Contains(b.stderr.String(), `msg="became leader"`) })
	t.Logf("server b led %s after a froze (lease %s)", took.Round(100*time.Millisecond), leaseTTL)
	running(v2)
	put(v3)
	running(v3)
	superseded := time.Now()
	if d := 3*leaseTTL - time.Since(frozenAt); d > 0 {
		time.Sleep(d)
	}

	// a wakes up: it must find its leadership gone before any call.
	before := len(a.stderr.String())
	a.signal(t, syscall.SIGCONT)
	waitFor(t, 20*time.Second, "server a notices it was deposed", func() bool {
		out := a.stderr.String()[before:]
		return strings.Contains(out, "fleet calls not made: leadership could not be confirmed") || strings.Contains(out, "lost leadership")
	})
	time.Sleep(3 * time.Second) // room for any late call to show
	after := a.stderr.String()[before:]
	for _, line := range strings.Split(after, "\n") {
		if strings.Contains(line, "msg=fleet ") || strings.Contains(line, `msg="fleet call failed`) {
			t.Errorf("server a made a fleet call after waking up: %s", line)
		}
	}
	smp.stop()
	smp.mu.Lock()
	defer smp.mu.Unlock()
	h1, h2, h3 := v1.Hash(0), v2.Hash(0), v3.Hash(0)
	maxLaunched, stale := 0, 0
	for _, sm := range smp.samples {
		n := 0
		for _, c := range sm.launched {
			n += c
		}
		maxLaunched = max(maxLaunched, n)
		if sm.at.After(superseded) && (sm.launched[h1] > 0 || sm.launched[h2] > 0) {
			if stale++; stale == 1 {
				t.Errorf("at %s, after web:3 ran, fleet had a superseded replica launched: %v", sm.at.Format("15:04:05.000"), sm.launched)
			}
		}
	}
	if stale > 1 {
		t.Errorf("… and in %d samples in all (%s)", stale, time.Duration(stale)*100*time.Millisecond)
	}
	if maxLaunched > 2+1 {
		t.Errorf("fleet had %d web replicas launched at once; desired 2 + maxSurge 1 = 3", maxLaunched)
	}
	last := smp.samples[len(smp.samples)-1]
	if fmt.Sprint(last.launched) != fmt.Sprint(map[string]int{h3: 2}) {
		t.Errorf("in the end fleet has %v launched, want 2 of %s", last.launched, h3)
	}
	t.Logf("%d samples, at most %d launched at once", len(smp.samples), maxLaunched)
}
