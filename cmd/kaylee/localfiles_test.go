package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// kayleeWithin runs the CLI in-process, giving up (and failing the test)
// when it has not returned within d: a command that blocks or ignores its
// context fails instead of hanging the test.
func kayleeWithin(t *testing.T, d time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, args, &stdio{in: strings.NewReader(""), out: &out, err: &errb}, func(string) string { return "" })
	}()
	select {
	case code := <-done:
		return result{code, out.String(), errb.String()}
	case <-time.After(d + 2*time.Second):
		t.Fatalf("kaylee %s did not return %s after its context ended (stderr so far: %.300q)", strings.Join(args, " "), d+2*time.Second, errb.String())
		return result{}
	}
}

const secretLine = "root:$6$S3CR3T-HASH-l0ng:19000:0:99999:7:::"

// A checkout's unit files are read by validate, render and run under the
// git side's rules: a file that leaves the directory (a symlink to a
// secret, to /dev/zero), that is not a regular file (a FIFO) or that is
// over the size limit is refused by name, is never echoed, and never
// blocks; the others are read.
func TestLocalFilesStayInTree(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	secret := filepath.Join(outside, "shadow")
	if err := os.WriteFile(secret, []byte(secretLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	okUnit := "name: web\napps:\n- image: nginx\n"
	big := okUnit + "#" + strings.Repeat("x", deploy.MaxFileSize-len(okUnit)) // MaxFileSize+1 bytes
	tree := func(t *testing.T, link, target string) string {
		dir := writeFiles(t, map[string]string{"units/web.yaml": okUnit, "units/sub/real.yaml": "name: real\napps:\n- image: x\n"})
		if link != "" {
			if err := os.Symlink(target, filepath.Join(dir, "units", link)); err != nil {
				t.Fatal(err)
			}
		}
		return filepath.Join(dir, "units")
	}
	tests := []struct {
		name    string
		make    func(t *testing.T) (arg string)
		code    int
		stderr  []string // each must be in stderr
		stdout  string   // validate --json: must be in stdout
		timeout time.Duration
	}{
		{"symlink to a secret outside the directory", func(t *testing.T) string { return tree(t, "evil.yaml", secret) },
			1, []string{"evil.yaml: symlink to " + secret + " leaves "}, `"name":"web"`, 0},
		{"relative symlink out of the directory", func(t *testing.T) string {
			dir := tree(t, "", "")
			rel, err := filepath.Rel(dir, secret)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(rel, filepath.Join(dir, "up.yaml")); err != nil {
				t.Fatal(err)
			}
			return dir
		}, 1, []string{"up.yaml: symlink to ../", "leaves"}, `"name":"web"`, 0},
		{"symlink to /dev/zero", func(t *testing.T) string { return tree(t, "zero.yaml", "/dev/zero") },
			1, []string{"zero.yaml: symlink to /dev/zero leaves"}, `"name":"web"`, 5 * time.Second},
		{"a FIFO", func(t *testing.T) string {
			dir := tree(t, "", "")
			if err := syscall.Mkfifo(filepath.Join(dir, "fifo.yaml"), 0o644); err != nil {
				t.Fatal(err)
			}
			return dir
		}, 1, []string{"fifo.yaml: not a regular file (a named pipe)"}, `"name":"web"`, 5 * time.Second},
		{"a file one byte over the limit", func(t *testing.T) string {
			dir := tree(t, "", "")
			if err := os.WriteFile(filepath.Join(dir, "big.yaml"), []byte(big), 0o644); err != nil {
				t.Fatal(err)
			}
			return dir
		}, 1, []string{"big.yaml: 1048577 bytes; unit files over 1048576 bytes are refused"}, `"name":"web"`, 0},
		{"a symlink inside the directory is read", func(t *testing.T) string { return tree(t, "alias.yaml", "sub/real.yaml") },
			0, nil, `"name":"real"`, 0},
		{"an explicit FIFO", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "fifo.yaml")
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}, 1, []string{"fifo.yaml: not a regular file (a named pipe)"}, "", 5 * time.Second},
		{"an explicit /dev/zero", func(t *testing.T) string { return "/dev/zero" },
			1, []string{"/dev/zero: not a regular file (a character device)"}, "", 5 * time.Second},
		{"an explicit symlink to a file elsewhere is followed", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "link.yaml")
			target := filepath.Join(t.TempDir(), "web.yaml")
			if err := os.WriteFile(target, []byte(okUnit), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			return p
		}, 0, nil, `"name":"web"`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			arg := tt.make(t)
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 30 * time.Second
			}
			for _, cmd := range [][]string{{"validate", "--json"}, {"render"}, {"run"}} {
				if cmd[0] == "run" && tt.code == 0 {
					break // would need an etcd
				}
				r := kayleeWithin(t, timeout, append(cmd, arg)...)
				if r.code != tt.code {
					t.Errorf("kaylee %s: exit %d, want %d\nstdout: %.500s\nstderr: %.500s", cmd[0], r.code, tt.code, r.stdout, r.err)
				}
				for _, w := range tt.stderr {
					if !strings.Contains(r.err, w) {
						t.Errorf("kaylee %s: stderr lacks %q:\n%.500s", cmd[0], w, r.err)
					}
				}
				if cmd[0] == "validate" && !strings.Contains(r.stdout, tt.stdout) {
					t.Errorf("kaylee validate --json: stdout lacks %q:\n%.500s", tt.stdout, r.stdout)
				}
				if out := r.stdout + r.err; strings.Contains(out, "S3CR3T") || strings.Contains(out, "99999") {
					t.Errorf("kaylee %s echoes the secret file:\n%.500s", cmd[0], out)
				}
			}
		})
	}
}

// SIGTERM ends kaylee validate on an endless input: a process, as a
// shell runs it.
func TestValidateEndsOnSIGTERM(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero.yaml")); err != nil {
		t.Fatal(err)
	}
	cmd := kayleeProcess(t, 0, nil, "validate", dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	time.Sleep(500 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("kaylee validate still running 5s after SIGTERM (killed); output: %.300q", out.String())
	}
	if strings.Contains(out.String(), "\x00") {
		t.Errorf("output holds what /dev/zero gave: %.300q", out.String())
	}
}
