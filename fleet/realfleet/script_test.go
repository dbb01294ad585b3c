package realfleet_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kaylee-gitops/kaylee/fleet/realfleet"
)

// TestScriptRefusals: scripts/real-cluster says what is wrong, exits non-zero
// and starts nothing, for a user who is not root, a machine without the
// packages, and bad arguments. It needs no cluster, so it runs in every tier.
func TestScriptRefusals(t *testing.T) {
	script := filepath.Join(realfleet.Root(), "scripts", "real-cluster")
	state := t.TempDir()
	// A PATH with a shell and core tools only: no nspawn, docker, etcd, go.
	bare := t.TempDir()
	for _, c := range []string{"bash", "id", "dirname", "pwd", "sed", "sort", "tr", "cat", "grep", "printf"} {
		p, err := exec.LookPath(c)
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		if err := os.Symlink(p, filepath.Join(bare, c)); err != nil {
			t.Fatal(err)
		}
	}
	root := os.Geteuid() == 0
	tests := []struct {
		name     string
		argv     []string // before the script's arguments (a wrapper)
		env      []string
		args     []string
		code     int
		stderr   []string
		rootOnly bool // the case needs root (to drop it, or to pass the root check)
	}{
		{name: "not root", argv: []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}, args: []string{"up"}, code: 1,
			stderr: []string{"must run as root"}, rootOnly: true},
		{name: "packages missing", env: []string{"PATH=" + bare}, args: []string{"up"}, code: 1,
			stderr: []string{"missing: systemd-nspawn (package systemd-container)", "dockerd (package docker.io)", "etcd (package etcd-server)",
				"install with: apt-get install", "docker-registry", "go (Go 1.24"}, rootOnly: true},
		{name: "bad machine count", args: []string{"up", "0"}, code: 1, stderr: []string{"up takes a machine count from 1 to 99, not '0'"}},
		{name: "unknown command", args: []string{"frob"}, code: 2, stderr: []string{"unknown command 'frob'", "Usage: scripts/real-cluster COMMAND"}},
		{name: "no command", code: 2, stderr: []string{"Usage:"}},
		{name: "unknown machine", args: []string{"exec", "nope", "true"}, code: 1, stderr: []string{"no machine nope"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.rootOnly && !root {
				if os.Getenv("CI") == "true" {
					t.Fatal("CI runs as root and must run this case")
				}
				t.Skip("needs root")
			}
			argv := append(append(append([]string{}, tc.argv...), "bash", script), tc.args...)
			cmd := exec.Command(argv[0], argv[1:]...)
			if tc.env != nil {
				cmd = exec.Command(filepath.Join(bare, "bash"), append([]string{script}, tc.args...)...)
			}
			cmd.Env = append([]string{"KAYLEE_REAL_CLUSTER_DIR=" + state, "KAYLEE_REAL_CLUSTER_CACHE=" + state + "/cache"}, tc.env...)
			if tc.env == nil {
				cmd.Env = append(cmd.Env, "PATH="+os.Getenv("PATH"))
			}
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errb.String())
			}
			for _, want := range tc.stderr {
				if !strings.Contains(errb.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, errb.String())
				}
			}
			if strings.Contains(out.String(), "KAYLEE_ETCD_ENDPOINTS") {
				t.Errorf("a refused command printed the endpoint: %s", out.String())
			}
			if entries, _ := os.ReadDir(state); len(entries) > 0 {
				t.Errorf("a refused command left state behind: %v", entries)
			}
		})
	}
}
