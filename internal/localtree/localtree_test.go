package localtree

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// readWithin reads paths, failing the test when Read has not returned
// within d (a FIFO that blocks, an endless file): a regression fails
// rather than hangs.
func readWithin(t *testing.T, d time.Duration, paths ...string) ([]File, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	type res struct {
		files []File
		err   error
	}
	done := make(chan res, 1)
	go func() {
		f, err := Read(ctx, paths)
		done <- res{f, err}
	}()
	select {
	case r := <-done:
		return r.files, r.err
	case <-time.After(d + 2*time.Second):
		t.Fatalf("Read(%v) did not return %s after its context ended", paths, d)
		return nil, nil
	}
}

// summary is each file as "name" (read) or "name: error", by base name
// relative to dir.
func summary(dir string, files []File) []string {
	var out []string
	for _, f := range files {
		name := strings.TrimPrefix(f.Path, dir+"/")
		if f.Err != nil {
			out = append(out, name+": "+strings.ReplaceAll(f.Err.Err.Error(), dir, "DIR"))
			continue
		}
		out = append(out, name)
	}
	return out
}

func TestRead(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "shadow")
	if err := os.WriteFile(secret, []byte("root:S3CR3T:19000::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const unit = "name: web\napps:\n- image: x\n"
	type setup func(t *testing.T, dir string)
	link := func(target, name string) setup {
		return func(t *testing.T, dir string) {
			if err := os.Symlink(strings.ReplaceAll(target, "OUTSIDE", outside), filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	write := func(name string, size int) setup {
		return func(t *testing.T, dir string) {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), []byte(unit+strings.Repeat("#", size-len(unit))), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	fifo := func(name string) setup {
		return func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, name), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name  string
		setup []setup
		want  []string
	}{
		{"regular files, sorted, hidden directories skipped, other names ignored",
			[]setup{write("b.yml", 40), write("a.yaml", 40), write("sub/c.yaml", 40), write(".git/x.yaml", 40), write("README.md", 40)},
			[]string{"a.yaml", "b.yml", "sub/c.yaml"}},
		{"a symlink inside the directory, also through a subdirectory",
			[]setup{write("sub/real.yaml", 40), link("sub/real.yaml", "a.yaml"), link("../sub/real.yaml", "sub/b.yaml")},
			[]string{"a.yaml", "sub/b.yaml", "sub/real.yaml"}},
		{"an absolute symlink to a secret",
			[]setup{link("OUTSIDE/shadow", "evil.yaml")},
			[]string{"evil.yaml: symlink to " + secret + " leaves the directory DIR; not followed"}},
		{"a relative symlink climbing out",
			[]setup{link("../../../../../../../../../.."+secret, "up.yaml")},
			[]string{"up.yaml: symlink to ../../../../../../../../../.." + secret + " leaves the directory DIR; not followed"}},
		{"a symlink to /dev/zero",
			[]setup{link("/dev/zero", "zero.yaml")},
			[]string{"zero.yaml: symlink to /dev/zero leaves the directory DIR; not followed"}},
		{"a symlink to a directory outside, not entered",
			[]setup{link("OUTSIDE", "out.yaml"), link("OUTSIDE", "outdir")},
			[]string{"out.yaml: symlink to " + outside + " leaves the directory DIR; not followed"}},
		{"a FIFO, directly and through a symlink",
			[]setup{fifo("fifo.yaml"), link("fifo.yaml", "via.yaml")},
			[]string{"fifo.yaml: not a regular file (a named pipe); not read", "via.yaml: symlink to fifo.yaml: not a regular file (a named pipe); not read"}},
		{"a symlink loop and a dangling symlink",
			[]setup{link("b.yaml", "a.yaml"), link("a.yaml", "b.yaml"), link("nope.yaml", "c.yaml")},
			[]string{"a.yaml: symlink to b.yaml: a symlink loop, or a chain of more than 8 symlinks; not followed",
				"b.yaml: symlink to a.yaml: a symlink loop, or a chain of more than 8 symlinks; not followed",
				"c.yaml: symlink to nope.yaml: no such file"}},
		{"exactly MaxFileSize, and one byte more",
			[]setup{write("a.yaml", deploy.MaxFileSize), write("b.yaml", deploy.MaxFileSize+1), link("b.yaml", "c.yaml")},
			[]string{"a.yaml", "b.yaml: 1048577 bytes; unit files over 1048576 bytes are refused",
				"c.yaml: symlink to b.yaml: 1048577 bytes; unit files over 1048576 bytes are refused"}},
		{"a directory named like a unit file",
			[]setup{write("d.yaml/x.yaml", 40)},
			[]string{"d.yaml/x.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, s := range tt.setup {
				s(t, dir)
			}
			files, err := readWithin(t, 5*time.Second, dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := summary(dir, files); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for _, f := range files {
				if strings.Contains(string(f.Data), "S3CR3T") {
					t.Errorf("%s: read the secret", f.Path)
				}
				if f.Err == nil && len(f.Data) < 40 {
					t.Errorf("%s: read %d bytes", f.Path, len(f.Data))
				}
			}
		})
	}
}

// Files named explicitly: a symlink is followed wherever it leads (the
// user named it), but only to a regular file within the size limit.
func TestReadExplicit(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "web.yaml")
	if err := os.WriteFile(target, []byte("name: web\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, to := range map[string]string{"link.yaml": target, "zero.yaml": "/dev/zero"} {
		if err := os.Symlink(to, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.txt")
	if err := os.WriteFile(big, make([]byte, deploy.MaxFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path    string
		wantErr string // "" when read
	}{
		{filepath.Join(dir, "link.yaml"), ""},
		{target, ""},
		{filepath.Join(dir, "zero.yaml"), "not a regular file (a character device); not read"},
		{"/dev/zero", "not a regular file (a character device); not read"},
		{filepath.Join(dir, "fifo"), "not a regular file (a named pipe); not read"},
		{big, "1048577 bytes; unit files over 1048576 bytes are refused"},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			files, err := readWithin(t, 5*time.Second, tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != 1 {
				t.Fatalf("%d files", len(files))
			}
			f := files[0]
			switch {
			case tt.wantErr == "" && f.Err != nil:
				t.Fatalf("error %v", f.Err)
			case tt.wantErr == "" && string(f.Data) != "name: web\n":
				t.Fatalf("read %q", f.Data)
			case tt.wantErr != "" && (f.Err == nil || f.Err.Error() != tt.path+": "+tt.wantErr):
				t.Fatalf("error %v, want %s: %s", f.Err, tt.path, tt.wantErr)
			}
		})
	}
	if _, err := Read(context.Background(), []string{filepath.Join(dir, "missing.yaml")}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing path: %v", err)
	}
}

// A cancelled context ends Read: between files, and within one.
func TestReadCancelled(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a.yaml", "b.yaml"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("name: x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, p := range []string{dir, filepath.Join(dir, "a.yaml")} {
		if files, err := Read(ctx, []string{p}); !errors.Is(err, context.Canceled) {
			t.Errorf("Read(%s) with a cancelled context: %d files, error %v", p, len(files), err)
		}
	}
	f, err := os.Open(filepath.Join(dir, "a.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := readOpen(ctx, f); !errors.Is(err, context.Canceled) {
		t.Errorf("readOpen with a cancelled context: %v", err)
	}
}
