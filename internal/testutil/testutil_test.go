package testutil

import (
	"net"
	"strings"
	"testing"
	"time"
)

// fakeT records a fatal failure instead of ending the test.
type fakeT struct {
	testing.TB
	failed string
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Fatal(args ...any)     { f.failed = args[0].(string) }
func (f *fakeT) Fatalf(string, ...any) { f.failed = "fatalf" }

func TestEventually(t *testing.T) {
	n := 0
	took := EventuallyEvery(t, time.Millisecond, time.Second, "three tries", func() (bool, string) {
		n++
		return n == 3, ""
	})
	if n != 3 || took <= 0 || took > time.Second {
		t.Fatalf("tries %d, took %s", n, took)
	}

	f := &fakeT{}
	EventuallyEvery(f, time.Millisecond, 20*time.Millisecond, "never", func() (bool, string) { return false, "still no" })
	if want := "never: not within 20ms; last seen: still no"; f.failed != want {
		t.Fatalf("failure %q, want %q", f.failed, want)
	}
}

func TestFreeAddr(t *testing.T) {
	a := FreeAddr(t)
	if !strings.HasPrefix(a, "127.0.0.1:") {
		t.Fatalf("address %q", a)
	}
	ln, err := net.Listen("tcp", a)
	if err != nil {
		t.Fatalf("the free address cannot be listened on: %v", err)
	}
	ln.Close()
}
