package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every test of this package calls t.Parallel, unless a comment at its top
// says why not: each starts its own etcd, git repositories, temporary
// directories and processes, on free ports (freePort), and gives the CLI
// its environment through run's getenv (kaylee, startKaylee) or a process's
// own (kayleeProcess), never through os.Setenv or os.Chdir. Most of them
// wait (rollouts, timers, leases) rather than compute.

type result struct {
	code        int
	stdout, err string
}

// kaylee runs the CLI in-process with the given environment.
func kaylee(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &stdio{in: strings.NewReader(""), out: &out, err: &errb}, func(k string) string { return env[k] })
	return result{code, out.String(), errb.String()}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestValidateCommand(t *testing.T) {
	t.Parallel()
	seedYAML, _ := os.ReadFile("../../deploy/testdata/countly.yaml")
	seedJSON, _ := os.ReadFile("../../deploy/testdata/countly.json")
	dir := writeFiles(t, map[string]string{
		"units/countly.yaml":   string(seedYAML),
		"units/nested/web.yml": "name: web\napps:\n- image: nginx\n",
		"units/broken.yaml":    "name: api\nreplcas: 2\napps:\n- image: x\n",
		"units/inject.yaml":    "name: evil\napps:\n- image: x\nargs:\n- \"x\\nExecStartPre=/bin/sh\"\n",
		"units/README.md":      "not a unit",
		"units/.git/HEAD.yaml": "ignored: true",
		"good/only.yaml":       "name: only\nengine: docker\napps:\n- image: x\n",
	})
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
		wantStderr []string
		noStderr   bool
	}{
		{
			name:       "directory with good and bad files",
			args:       []string{"validate", "--json", filepath.Join(dir, "units")},
			wantCode:   1,
			wantStdout: []string{strings.TrimSpace(string(seedJSON)), `{"name":"web","apps":[{"image":"nginx"}]}`},
			wantStderr: []string{
				filepath.Join(dir, "units/broken.yaml") + `:2: unknown field "replcas" (did you mean "replicas"?)`,
				filepath.Join(dir, "units/inject.yaml") + `:5: args[0]: must not contain a newline`,
			},
		},
		{
			name:     "all valid",
			args:     []string{"validate", filepath.Join(dir, "good")},
			wantCode: 0,
			noStderr: true,
		},
		{
			name:       "missing path",
			args:       []string{"validate", filepath.Join(dir, "nope")},
			wantCode:   1,
			wantStderr: []string{"no such file or directory"},
		},
		{
			name:       "no arguments",
			args:       []string{"validate"},
			wantCode:   1,
			wantStderr: []string{"requires at least 1 arg"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := kaylee(t, nil, tt.args...)
			if r.code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.wantCode, r.stdout, r.err)
			}
			if tt.wantStdout != nil {
				lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
				if strings.Join(lines, "\n") != strings.Join(tt.wantStdout, "\n") {
					t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, strings.Join(tt.wantStdout, "\n"))
				}
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(r.err, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.err)
				}
			}
			if tt.noStderr && r.err != "" {
				t.Errorf("unexpected stderr: %s", r.err)
			}
		})
	}
}

func TestRenderCommand(t *testing.T) {
	t.Parallel()
	file := "../../deploy/testdata/countly.yaml"
	r := kaylee(t, nil, "render", "-o", "json", "--unit-prefix", "kx", file)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	var units []struct {
		Name         string `json:"name"`
		DesiredState string `json:"desiredState"`
		Options      []struct{ Section, Name, Value string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &units); err != nil {
		t.Fatalf("-o json is not a JSON array: %v\n%s", err, r.stdout)
	}
	if len(units) != 4 || !strings.HasPrefix(units[0].Name, "kx:countly:") || units[0].DesiredState != "launched" || len(units[0].Options) == 0 {
		t.Fatalf("unexpected units: %+v", units)
	}
	text := kaylee(t, nil, "render", file)
	if text.code != 0 || strings.Count(text.stdout, "\n# k2:countly:")+1 != 4 || !strings.HasPrefix(text.stdout, "# k2:countly:") ||
		!strings.Contains(text.stdout, "[X-Fleet]\nMachineMetadata=ssd=false\n") {
		t.Fatalf("text output:\n%s", text.stdout)
	}
	bad := kaylee(t, nil, "render", "-o", "yaml", file)
	if bad.code == 0 || !strings.Contains(bad.err, `-o "yaml": use text or json`) {
		t.Fatalf("bad -o: %+v", bad)
	}
	dir := writeFiles(t, map[string]string{"b.yaml": "name: B\napps:\n- image: x\n"})
	inv := kaylee(t, nil, "render", filepath.Join(dir, "b.yaml"))
	if inv.code != 1 || !strings.Contains(inv.err, `b.yaml:1: name: "B" is not a valid name`) {
		t.Fatalf("invalid unit: %+v", inv)
	}
}

func TestEnvironmentSetsFlags(t *testing.T) {
	t.Parallel()
	a := &app{io: &stdio{}, getenv: func(k string) string {
		return map[string]string{
			"KAYLEE_ETCD_ENDPOINTS": "http://10.0.0.1:2379,http://10.0.0.2:2379",
			"KAYLEE_ETCD_PREFIX":    "/from-env",
			"KAYLEE_ETCD_PASSWORD":  "s3cret",
			"KAYLEE_ETCD_USERNAME":  "kaylee",
		}[k]
	}}
	root := a.rootCommand()
	root.SetArgs([]string{"version", "--etcd-prefix", "/from-flag"})
	root.SetOut(&bytes.Buffer{})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(a.etcd.Endpoints, ","); got != "http://10.0.0.1:2379,http://10.0.0.2:2379" {
		t.Errorf("endpoints from env = %q", got)
	}
	if a.etcd.Prefix != "/from-flag" {
		t.Errorf("a flag must win over the environment: prefix = %q", a.etcd.Prefix)
	}
	if a.etcd.Password != "s3cret" || a.etcd.Username != "kaylee" {
		t.Errorf("auth = %q/%q", a.etcd.Username, a.etcd.Password)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := kaylee(t, nil, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "kaylee ") {
		t.Fatalf("%+v", r)
	}
}
