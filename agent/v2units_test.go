package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet"
	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/internal/testutil"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
	"github.com/kaylee-gitops/kaylee/store/v2units"
)

type lockedBuf struct {
	mu gosync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// On an etcd without the v2 API (etcd 3.4/3.5 without --enable-v2, 3.6),
// the scheduler's leader says once that v2 units are not scheduled, in its
// log and in /metrics, and schedules v3 units all the same. (fleet's
// registry needs v2: the simulated fleet runs on an etcd of its own.)
func TestSchedulerWithoutV2API(t *testing.T) {
	fleetEtcd, e := etcdtest.New(t), etcdtest.NewNoV2(t)
	cluster, err := fleetsim.Start(context.Background(), fleetsim.Config{Endpoints: fleetEtcd.Endpoints(), Machines: fleetsim.Machines(2),
		TTL: 4 * time.Second, EngineInterval: time.Second, StartDelay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	keys, err := v2units.NewKeys(v2units.KeysConfig{Endpoints: e.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	s, log, addr := store.New(e.Client(t), ""), &lockedBuf{}, testutil.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{ID: "a", Store: s, Log: slog.New(slog.NewTextHandler(log, nil)), LeaseTTL: 2 * time.Second, HTTP: HTTP{Listen: addr, Limits: Limits{MaxConns: 16}},
			Scheduler: &Scheduler{API: cluster.API(), V2Units: keys, Options: fleet.Options{UnitPrefix: "k2", MinReady: 300 * time.Millisecond}}})
	}()
	t.Cleanup(func() { cancel(); <-done })
	if _, err := s.PutUnit(ctx, &deploy.Spec{Name: "web", Replicas: 2, Apps: []deploy.App{{Image: "docker://nginx"}}}, store.Fence{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, "web running 2/2", func() (bool, string) {
		st, err := s.GetStatus(ctx, "web")
		if err != nil {
			return false, err.Error()
		}
		return st.Phase == store.PhaseRunning && st.Running == 2, fmt.Sprintf("%+v\nlog:\n%s", st, log)
	})
	if n := strings.Count(log.String(), "units written through etcd's v2 API are not scheduled: etcd's v2 API is not available (etcd 3.4/3.5 serve it with --enable-v2; 3.6 and later do not); units written through v3 are"); n != 1 {
		t.Fatalf("said %d times:\n%s", n, log)
	}
	r, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	if !strings.Contains(string(b), "\nkaylee_etcd_v2_units_available 0\n") {
		t.Fatalf("/metrics lacks kaylee_etcd_v2_units_available 0:\n%s", b)
	}
}
