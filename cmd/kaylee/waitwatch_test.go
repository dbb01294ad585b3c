package main

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
	"github.com/kaylee-gitops/kaylee/view"
)

// run --wait and rollback --wait (waitRollouts) follow the statuses with
// a watch: they read once, and then neither the scheduler's writes of
// other units' statuses nor the rest of the store's traffic (events,
// instances) make them read again; the status they wait for ends the
// wait at once, and the lines printed follow it.
func TestWaitRolloutsWatches(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	ctx := context.Background()
	cli := e.Client(t)
	reads := &atomic.Int64{}
	cli.KV = etcdtest.CountingKV{KV: cli.KV, N: reads}
	waiter := store.New(cli, store.DefaultPrefix)
	sched := store.New(e.Client(t), store.DefaultPrefix)
	put := func(name, phase string, running int) {
		t.Helper()
		if err := sched.PutStatus(ctx, &store.Status{Name: name, SpecHash: "h1", Phase: phase, Desired: 2, Running: running}, store.Fence{}); err != nil {
			t.Fatal(err)
		}
	}
	put("web", store.PhaseProgressing, 0)
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- waitRollouts(ctx, waiter, out, func(string) map[string]view.Want { return map[string]view.Want{"web": {Hash: "h1"}} }, time.Minute)
	}()
	waitFor(t, 10*time.Second, "the first line", func() bool { return strings.Contains(out.String(), "web: ") })
	for i := range 100 {
		put(fmt.Sprintf("other-%d", i), store.PhaseRunning, 2)
		if _, err := e.Client(t).Put(ctx, fmt.Sprintf("%s/events/%d", store.DefaultPrefix, i), "{}"); err != nil {
			t.Fatal(err)
		}
	}
	put("web", store.PhaseProgressing, 1)
	waitFor(t, 10*time.Second, "web at 1 of 2", func() bool { return strings.Count(out.String(), "\n") >= 2 })
	put("web", store.PhaseRunning, 2)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the wait did not end on web's running status:\n%s", out.String())
	}
	t.Logf("output:\n%s", out.String())
	if !strings.HasSuffix(out.String(), "web: running, 2/2 running: \n") {
		t.Errorf("output does not end with web running:\n%s", out.String())
	}
	if n := reads.Load(); n > 1 {
		t.Errorf("the wait made %d etcd requests through 200 writes, 3 of them its unit's; want 1 (one read, then the watch)", n)
	}
}

// A wait whose watch breaks (etcd restarted) reads the statuses again
// and follows them anew: the running status written after the restart
// ends it.
func TestWaitRolloutsAfterEtcdRestart(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	ctx := context.Background()
	s := store.New(e.Client(t), store.DefaultPrefix)
	put := func(phase string, running int) error {
		return s.PutStatus(ctx, &store.Status{Name: "web", SpecHash: "h1", Phase: phase, Desired: 1, Running: running}, store.Fence{})
	}
	if err := put(store.PhaseProgressing, 0); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- waitRollouts(ctx, s, out, func(string) map[string]view.Want { return map[string]view.Want{"web": {Hash: "h1"}} }, time.Minute)
	}()
	waitFor(t, 10*time.Second, "the first line", func() bool { return strings.Contains(out.String(), "web: ") })
	e.Stop()
	time.Sleep(500 * time.Millisecond)
	if err := e.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the running status written", func() bool { return put(store.PhaseRunning, 1) == nil })
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the wait did not end after etcd's restart:\n%s", out.String())
	}
}
