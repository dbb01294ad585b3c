package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// A second kaylee dev on the first one's --data-dir (another port) fails
// at once with an error naming the directory, the process holding it and
// what to do; the first goes on serving.
func TestDevDataDirInUse(t *testing.T) {
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
