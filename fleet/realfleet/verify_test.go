package realfleet_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRealGoldenUnitsVerify checks every rendered unit of deploy's golden
// files with systemd's own `systemd-analyze verify` inside a machine. rkt no
// longer exists anywhere (the project is archived), so its units cannot
// run; this is as far as they can be checked. systemd checks that Exec
// paths are executables, so /usr/bin/rkt and the golden files' volume
// plugin are stubs (/bin/true) for the check only, and so is
// /usr/bin/podman on a machine that has none. Both rkt and podman units
// must be among them.
func TestRealGoldenUnitsVerify(t *testing.T) {
	// Exclusive (no t.Parallel, see newEnv): it puts a /usr/bin/rkt on a machine,
	// which TestRealCompatRktPullAndGC must not find.
	e := newEnv(t, "rv")
	m := e.c.Machines[0]
	root := e.c.Root(m)
	dir := filepath.Join(root, "var", "lib", "kaylee-verify") // the machine mounts its own /tmp
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	stub := func(path string) {
		if _, err := os.Lstat(path); err == nil {
			return
		}
		if err := os.Symlink("/bin/true", path); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(path) })
	}
	stub(filepath.Join(root, "usr", "bin", "rkt"))
	stub(filepath.Join(root, "usr", "bin", "podman"))
	stub(filepath.Join(e.c.PluginDir(), "blocker"))

	goldens, err := filepath.Glob(filepath.Join("..", "..", "deploy", "testdata", "render", "*.golden"))
	if err != nil || len(goldens) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	var files []string
	rkt, podman := 0, 0
	for _, g := range goldens {
		b, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		for _, part := range strings.Split("\n"+string(b), "\n# ")[1:] {
			header, body, _ := strings.Cut(part, "\n")
			name := strings.Fields(header)[0]
			// systemd unit names may not hold ':' the way fleet's do; the
			// X-Fleet section is ignored by systemd.
			file := strings.ReplaceAll(name, ":", "-")
			if err := os.WriteFile(filepath.Join(dir, file), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, "/var/lib/kaylee-verify/"+file)
			if strings.Contains(body, "/usr/bin/rkt run") {
				rkt++
			}
			if strings.Contains(body, "/usr/bin/podman pod create") {
				podman++
			}
		}
	}
	out, err := e.c.Exec(context.Background(), m, append([]string{"systemd-analyze", "verify"}, files...)...)
	t.Logf("systemd-analyze verify: %d units from %d golden files (%d rkt, %d podman)", len(files), len(goldens), rkt, podman)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	if rkt == 0 {
		t.Fatal("no rkt unit among the golden files")
	}
	if podman == 0 {
		t.Fatal("no podman unit among the golden files")
	}
}
