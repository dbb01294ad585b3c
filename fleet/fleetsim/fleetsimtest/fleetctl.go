package fleetsimtest

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// BuildFleetctl builds fleet v1.0.0's own fleetctl (its package main,
// github.com/coreos/fleet/fleetctl, from the fleetctl module beside
// package fleetsim: fleetctl needs fleet's HTTP API package, which needs a
// prometheus client older than the main module's) into a temporary
// directory, and returns the binary's path. Its version is 1.0.0, as the
// simulated machines', so it prints no "older than" warning.
func BuildFleetctl(t testing.TB) string {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(self), "..", "fleetctl")
	bin := filepath.Join(t.TempDir(), "fleetctl")
	build := exec.Command("go", "build", "-o", bin, "-ldflags", "-X github.com/coreos/fleet/version.Version=1.0.0", "github.com/coreos/fleet/fleetctl")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building fleet's fleetctl in %s: %v\n%s", src, err, out)
	}
	return bin
}
