package gitsource

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
)

func fileNames(s *Snapshot) string {
	var out []string
	for _, f := range s.Files {
		out = append(out, f.Path)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func fetch(t *testing.T, cfg Config) (*Snapshot, error) {
	t.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = t.TempDir()
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s.Fetch(context.Background())
}

func TestFetchFiles(t *testing.T) {
	r := gittest.NewRepo(t)
	r.Write(map[string]string{
		"units/web.yaml":           "name: web\n",
		"units/nested/db.yml":      "name: db\n",
		"units/README.md":          "not a unit",
		"units/.hidden/x.yaml":     "name: x\n",
		"other/elsewhere.yaml":     "name: elsewhere\n",
		"units/big.yaml":           strings.Repeat("#", MaxFileSize+1),
		"outside-but-in-repo.yaml": "name: linked\n",
	})
	if err := os.Symlink("../outside-but-in-repo.yaml", filepath.Join(r.Dir, "units/linked.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(r.Dir, "units/escape.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../x.yaml", filepath.Join(r.Dir, "units/up.yaml")); err != nil {
		t.Fatal(err)
	}
	first := r.Commit("first")
	r.Git("tag", "-a", "v1", "-m", "v1")
	r.Write(map[string]string{"units/web.yaml": "name: web\nreplicas: 2\n"})
	second := r.Commit("second")

	tests := []struct {
		name, url, ref, path string
		wantRev, wantFiles   string
		wantErrs             []string
	}{
		{"local path, default HEAD", r.Dir, "", "units", second, "units/linked.yaml,units/nested/db.yml,units/web.yaml",
			[]string{"units/big.yaml: 1048577 bytes; unit files over 1048576 bytes are refused", "units/escape.yaml: symlink to /etc/passwd leaves the repository", "units/up.yaml: symlink to ../../x.yaml leaves the repository"}},
		{"file URL, branch", r.FileURL(), "main", "units", second, "units/linked.yaml,units/nested/db.yml,units/web.yaml", nil},
		{"annotated tag", r.FileURL(), "v1", "/units/", first, "units/linked.yaml,units/nested/db.yml,units/web.yaml", nil},
		{"commit hash", r.FileURL(), first, "other", first, "other/elsewhere.yaml", nil},
		{"root", r.FileURL(), "", "", second, "other/elsewhere.yaml,outside-but-in-repo.yaml,units/linked.yaml,units/nested/db.yml,units/web.yaml", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := fetch(t, Config{URL: tt.url, Ref: tt.ref, Path: tt.path})
			if err != nil {
				t.Fatal(err)
			}
			if snap.Revision != tt.wantRev || fileNames(snap) != tt.wantFiles {
				t.Fatalf("got %s %s, want %s %s", snap.Revision, fileNames(snap), tt.wantRev, tt.wantFiles)
			}
			var errs []string
			for _, e := range snap.Errors {
				errs = append(errs, e.Error())
			}
			for i, want := range tt.wantErrs {
				if i >= len(errs) || !strings.HasPrefix(errs[i], want) {
					t.Errorf("file errors %q, want %q", errs, tt.wantErrs)
				}
			}
		})
	}
	snap, _ := fetch(t, Config{URL: r.Dir, Path: "units"})
	for _, f := range snap.Files {
		if f.Path == "units/linked.yaml" && string(f.Data) != "name: linked\n" {
			t.Errorf("symlink inside the repository read %q", f.Data)
		}
	}

	for _, tt := range []struct{ name, url, ref, path, want string }{
		{"missing path", r.FileURL(), "", "nope", "path nope: not a directory"},
		{"missing ref", r.FileURL(), "nope", "", `has no branch or tag "nope" (check the ref)`},
		{"missing repo", "file:///does/not/exist", "", "", "listing refs of file:///does/not/exist"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := fetch(t, Config{URL: tt.url, Ref: tt.ref, Path: tt.path})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// Polling an unmoved ref returns the same snapshot; a new commit is
// fetched into the same cache.
func TestFetchFollowsBranch(t *testing.T) {
	r := gittest.NewRepo(t)
	r.Write(map[string]string{"a.yaml": "name: a\n"})
	r.Commit("one")
	s, err := New(Config{URL: r.FileURL(), CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	one, err := s.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Fetch(ctx)
	if err != nil || again != one {
		t.Fatalf("unmoved ref: a new snapshot (%v)", err)
	}
	r.Write(map[string]string{"a.yaml": "", "b.yaml": "name: b\n"})
	rev := r.Commit("two")
	two, err := s.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if two.Revision != rev || fileNames(two) != "b.yaml" || two.Short() != "main@"+rev[:7] {
		t.Fatalf("after a commit: %s %s %s", two.Revision, fileNames(two), two.Short())
	}
}

func TestFetchOverHTTPWithBasicAuth(t *testing.T) {
	r := gittest.NewRepo(t)
	r.Write(map[string]string{"units/a.yaml": "name: a\n"})
	rev := r.Commit("one")
	url := r.ServeHTTP("ci", "s3cret")

	for _, tt := range []struct {
		name    string
		auth    AuthConfig
		wantErr string
	}{
		{"right password", AuthConfig{Username: "ci", Password: "s3cret"}, ""},
		{"no credentials", AuthConfig{}, "give a user name and a password or token, or an SSH key"},
		{"wrong password", AuthConfig{Username: "ci", Password: "nope"}, "authentication required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			auth, err := Auth(url, tt.auth)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := fetch(t, Config{URL: url, Path: "units", Auth: auth})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || snap.Revision != rev || fileNames(snap) != "units/a.yaml" {
				t.Fatalf("snapshot %+v, %v", snap, err)
			}
		})
	}
}

func TestFetchOverSSH(t *testing.T) {
	r := gittest.NewRepo(t)
	r.Write(map[string]string{"a.yaml": "name: a\n"})
	rev := r.Commit("one")
	key := gittest.NewKey(t)
	srv := r.ServeSSH(key.Public)
	otherKey := gittest.NewKey(t)
	emptyKnownHosts := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(emptyKnownHosts, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name    string
		auth    AuthConfig
		wantErr string
	}{
		{"key and known host", AuthConfig{SSHKeyFile: key.File, KnownHostsFile: srv.KnownHosts}, ""},
		{"unknown host key", AuthConfig{SSHKeyFile: key.File, KnownHostsFile: emptyKnownHosts}, "known_hosts"},
		{"skip host key check", AuthConfig{SSHKeyFile: key.File, KnownHostsFile: emptyKnownHosts, InsecureSkipHostKeyCheck: true}, ""},
		{"key not authorized", AuthConfig{SSHKeyFile: otherKey.File, KnownHostsFile: srv.KnownHosts}, "unable to authenticate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			auth, err := Auth(srv.URL, tt.auth)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := fetch(t, Config{URL: srv.URL, Auth: auth})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || snap.Revision != rev || fileNames(snap) != "a.yaml" {
				t.Fatalf("snapshot %+v, %v", snap, err)
			}
		})
	}

	_, err := Auth(srv.URL, AuthConfig{SSHKeyFile: key.File, KnownHostsFile: filepath.Join(t.TempDir(), "none")})
	if err == nil || !strings.Contains(err.Error(), "ssh-keyscan") {
		t.Fatalf("missing known_hosts: %v", err)
	}
}
