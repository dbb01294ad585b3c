package fleetlog

import (
	"bytes"
	"strings"
	"testing"

	fleetlog "github.com/coreos/fleet/log"
)

func TestRedirect(t *testing.T) {
	var a, b bytes.Buffer
	restoreA := Redirect(&a)
	fleetlog.Info("one")
	restoreB := Redirect(&b)
	fleetlog.Errorf("two %d", 2)
	restoreA() // out of order: b stays the sink
	fleetlog.Info("three")
	restoreB()
	restoreB() // twice is harmless
	if got := a.String(); !strings.HasSuffix(got, ": one\n") || !strings.HasPrefix(got, "INFO fleetlog_test.go:") || strings.Count(got, "\n") != 1 {
		t.Errorf("first sink: %q", got)
	}
	if got := b.String(); !strings.Contains(got, "ERROR fleetlog_test.go:") || !strings.Contains(got, ": two 2\n") || !strings.Contains(got, ": three\n") || strings.Count(got, "\n") != 2 {
		t.Errorf("second sink: %q", got)
	}
}
