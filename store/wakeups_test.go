package store

import (
	"context"
	"testing"
	"time"
)

// Wakeups wakes a waiter on a change made right after it returned (its
// watch is in place by then), not before; the fallback wakes it with no
// change; a watch lost with etcd comes back, with a wake-up; the channel
// closes when ctx ends.
func TestWakeups(t *testing.T) {
	s, e := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wake := s.Wakeups(ctx, time.Hour)
	select {
	case <-wake:
		t.Fatal("a wake-up before any change")
	case <-time.After(200 * time.Millisecond):
	}
	if err := s.PutStatus(ctx, &Status{Name: "web", Phase: PhaseRunning}, Fence{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up within 5s of a change")
	}

	// Many changes while nobody reads: one pending wake-up.
	for range 3 {
		if err := s.PutStatus(ctx, &Status{Name: "web", Phase: PhaseProgressing}, Fence{}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	<-wake
	select {
	case <-wake:
		t.Fatal("several changes left more than one wake-up")
	case <-time.After(200 * time.Millisecond):
	}

	// The watch is lost with etcd and comes back.
	e.Stop()
	if err := e.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	for woken := false; !woken; {
		put, cancelPut := context.WithTimeout(ctx, 2*time.Second)
		_ = s.PutStatus(put, &Status{Name: "web", Phase: PhaseRunning, Message: time.Now().String()}, Fence{})
		cancelPut()
		select {
		case <-wake:
			woken = true
		case <-time.After(500 * time.Millisecond):
		case <-deadline:
			t.Fatal("no wake-up within 30s of etcd's restart")
		}
	}

	cancel()
	select {
	case _, ok := <-wake:
		for ok {
			_, ok = <-wake
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the channel stayed open after ctx ended")
	}

	// With no change at all, the fallback wakes.
	quiet, cancelQuiet := context.WithCancel(context.Background())
	defer cancelQuiet()
	began := time.Now()
	select {
	case <-s.Wakeups(quiet, 300*time.Millisecond):
		t.Logf("fallback wake-up after %s", time.Since(began).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("no fallback wake-up")
	}
}

// WakeupsUnder wakes for changes under its directories alone: a status
// written says nothing to a router, a unit does.
func TestWakeupsUnder(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wake := s.WakeupsUnder(ctx, time.Hour, "units/", "instances/")
	if err := s.PutStatus(ctx, &Status{Name: "web", Phase: PhaseRunning}, Fence{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
		t.Fatal("a wake-up for a status, not under units/ or instances/")
	case <-time.After(500 * time.Millisecond):
	}
	if err := s.ApplyInstances(ctx, []*Instance{{Unit: "web", Instance: "k2:web:1", MachineIP: "192.0.2.1"}}, nil, Fence{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up within 5s of an instance written")
	}
}
