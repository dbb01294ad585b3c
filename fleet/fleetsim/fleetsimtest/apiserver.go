// Package fleetsimtest holds test helpers around fleetsim that take a
// *testing.T: building and starting fleet v1.0.0's own HTTP API server and
// fleetctl from the small Go modules beside fleetsim (fleet/fleetsim/fleetapi
// and fleet/fleetsim/fleetctl). Kept apart from fleetsim, which `kaylee dev`
// links, so that the binary does not link package testing.
package fleetsimtest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// StartAPIServer builds and starts fleet's real HTTP API server (the
// fleetapi module beside package fleetsim) on a unix socket, over the registry
// at the given etcd endpoints and key prefix. It returns the endpoint to
// give to fleet clients (unix:///…/fleet.sock); the server stops at the end
// of the test.
func StartAPIServer(t testing.TB, endpoints []string, keyPrefix string) string {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(self), "..", "fleetapi")
	dir := t.TempDir()
	bin := filepath.Join(dir, "fleetapi")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building fleet's API server in %s: %v\n%s", src, err, out)
	}
	sock := filepath.Join(dir, "fleet.sock")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--etcd-endpoints", strings.Join(endpoints, ","), "--fleet-prefix", keyPrefix, "--listen", "unix://"+sock)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting fleet's API server: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "serving fleet's API") {
				ready <- sc.Text()
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("fleet's API server did not start within 30s")
	}
	return fmt.Sprintf("unix://%s", sock)
}
