package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/fleet/fleetlog"
)

// A second kaylee dev on the first one's --data-dir (another port) fails
// at once with an error naming the directory, the process holding it and
// what to do; the first goes on serving.
func TestDevDataDirInUse(t *testing.T) {
	// Not parallel: the second dev's failure is bounded in time (5s).
	dir := t.TempDir()
	first := "http://" + freePort(t)
	p := startKaylee(t, nil, "dev", "--fleet-only", "--listen-client", first, "--data-dir", dir, "--machines", "1")
	waitOutput(t, p.out, "ready:", 60*time.Second)

	began := time.Now()
	r := kaylee(t, nil, "dev", "--fleet-only", "--listen-client", "http://"+freePort(t), "--data-dir", dir, "--machines", "1")
	took := time.Since(began)
	want := fmt.Sprintf("kaylee: etcd data directory %s is in use by another embedded etcd (process %d): stop it, or give this one another directory with --data-dir DIR\n", dir, os.Getpid())
	if r.code != 1 || r.err != want {
		t.Fatalf("second dev: exit %d, stderr %q\nwant exit 1 and %q", r.code, r.err, want)
	}
	if took > 5*time.Second {
		t.Errorf("the second dev took %s to fail", took)
	}
	if ls := kaylee(t, map[string]string{"KAYLEE_ETCD_ENDPOINTS": first}, "ls"); ls.code != 0 {
		t.Fatalf("the first dev's etcd stopped answering: exit %d %s", ls.code, ls.err)
	}
	if strings.Contains(p.out.String(), "stopping") {
		t.Fatalf("the first dev stopped:\n%s", p.out.String())
	}
}

// fleetLine is a line of fleet's own logger: "INFO engine.go:179: …".
var fleetLine = regexp.MustCompile(`(?m)^(INFO|ERROR|WARN|DEBUG) \w+\.go:\d+: `)

// Without --verbose, fleet's own log lines go to <data dir>/fleet.log,
// which the banner names, and none reaches stderr, through a rollout and
// a stop; with --verbose they are on dev's stderr.
func TestDevFleetLog(t *testing.T) {
	// Not parallel: fleet's logger is process-global (fleet/fleetlog); the
	// redirections of other tests' kaylee dev would take its lines.
	// fleet's logger writes to the process's stderr, not to dev's: catch
	// what would reach it during the run.
	var escaped syncBuffer
	defer fleetlog.Redirect(&escaped)()
	dir := t.TempDir()
	addr := "http://" + freePort(t)
	p := startKaylee(t, nil, "dev", "--listen-client", addr, "--data-dir", dir, "--min-ready", "500ms")
	waitOutput(t, p.out, "ready:", 60*time.Second)
	logFile := filepath.Join(dir, "fleet.log")
	if want := "fleet's own log: " + logFile + " (--verbose: on stderr)\n"; !strings.Contains(p.out.String(), want) {
		t.Errorf("banner lacks %q:\n%s", want, p.out.String())
	}
	units := writeFiles(t, map[string]string{"web.yaml": "name: web\nreplicas: 2\napps:\n- image: nginx\n"})
	if r := kaylee(t, map[string]string{"KAYLEE_ETCD_ENDPOINTS": addr}, "run", "--wait", "--timeout", "2m", units); r.code != 0 {
		t.Fatalf("run --wait: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	if code, err := p.Stop(); code != 0 || err != nil {
		t.Fatalf("stop: exit %d %v", code, err)
	}
	for _, stderr := range []string{p.errb.String(), escaped.String()} {
		if l := fleetLine.FindAllString(stderr, -1); len(l) > 0 {
			t.Errorf("fleet's lines on stderr: %q\n%s", l, stderr)
		}
	}
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`(?m)^INFO engine\.go:\d+: Engine leadership acquired$`, `(?m)^INFO engine\.go:\d+: Scheduled Unit\(k2:web:`} {
		if !regexp.MustCompile(want).Match(data) {
			t.Errorf("%s lacks %s:\n%s", logFile, want, data)
		}
	}

	v := startKaylee(t, nil, "dev", "--fleet-only", "--verbose", "--listen-client", "http://"+freePort(t), "--data-dir", t.TempDir(), "--machines", "1")
	waitOutput(t, v.out, "fleet's own log: stderr (--verbose)\n", 60*time.Second)
	waitOutput(t, v.errb, "INFO engine.go:", 30*time.Second)
}
