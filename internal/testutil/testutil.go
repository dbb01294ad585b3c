// Package testutil holds small helpers shared by tests of several
// packages: polling until a condition holds, and free loopback ports. Only
// tests import it (it imports testing).
package testutil

import (
	"net"
	"testing"
	"time"
)

// PollInterval is how often Eventually checks its condition.
const PollInterval = 100 * time.Millisecond

// Eventually checks cond every PollInterval until it holds, and returns how
// long that took; after timeout it fails the test with what and the last
// state cond described. cond's string may be empty.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	return EventuallyEvery(t, PollInterval, timeout, what, cond)
}

// EventuallyEvery is Eventually checking every interval.
func EventuallyEvery(t testing.TB, interval, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	var last string
	for {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		last = state
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(interval)
	}
	msg := "not within " + timeout.String()
	if what != "" {
		msg = what + ": " + msg
	}
	if last != "" {
		msg += "; last seen: " + last
	}
	t.Fatal(msg)
	return 0
}

// FreeAddr returns a loopback address (127.0.0.1:port) that was free a
// moment ago: for a server a test starts, or an address where nothing
// listens.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
