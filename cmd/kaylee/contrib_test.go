package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
)

// The install files of contrib/, checked with the tools that read them:
// systemd's systemd-analyze, the kaylee CLI for the flags the units use, and
// promtool.

const (
	contribRules     = "../../contrib/prometheus/kaylee-rules.yml"
	contribRulesTest = "../../contrib/prometheus/kaylee-rules.test.yml"
	contribSystemd   = "../../contrib/systemd/kaylee-agent.service"
	contribFleet     = "../../contrib/fleet/kaylee-agent.service"
)

// unitFile is a systemd unit file: section → key → values, in order.
type unitFile map[string]map[string][]string

func readUnitFile(t *testing.T, path string) unitFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u, section := unitFile{}, ""
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		case section != "" && strings.Contains(line, "="):
			k, v, _ := strings.Cut(line, "=")
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		default:
			t.Fatalf("%s:%d: not a unit file line: %q", path, i+1, line)
		}
	}
	return u
}

func (u unitFile) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// Both units run kaylee agent with flags it has, reading the config file
// and /etc/default/kaylee, with the git cache in systemd's cache directory;
// systemd 252's systemd-analyze verify finds nothing to say about them
// (ExecStart pointed at an existing program: the binary is not installed
// here), the systemd unit is hardened, and the fleet unit is global.
func TestContribUnits(t *testing.T) {
	tests := []struct {
		name, path, binary string
		check              func(t *testing.T, u unitFile)
	}{
		{"systemd", contribSystemd, "/usr/local/bin/kaylee", func(t *testing.T, u unitFile) {
			if u.get("Install", "WantedBy") != "multi-user.target" {
				t.Errorf("WantedBy=%q, want multi-user.target", u.get("Install", "WantedBy"))
			}
			if u.get("Service", "User") == "" && u.get("Service", "DynamicUser") != "yes" {
				t.Errorf("runs as root: no User= or DynamicUser=yes")
			}
		}},
		{"fleet", contribFleet, "/opt/bin/kaylee", func(t *testing.T, u unitFile) {
			if g := u["X-Fleet"]["Global"]; !slices.Equal(g, []string{"true"}) {
				t.Errorf("[X-Fleet] Global=%q, want true: one agent on every machine", g)
			}
			for k := range u["X-Fleet"] {
				if k != "Global" && k != "MachineMetadata" && k != "Conflicts" {
					t.Errorf("[X-Fleet] %s: fleet refuses it beside Global=true", k)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := readUnitFile(t, tt.path)
			tt.check(t, u)
			s := u["Service"]
			if u.get("Service", "Restart") != "always" || !slices.Contains(s["EnvironmentFile"], "-/etc/default/kaylee") {
				t.Errorf("Restart=%q EnvironmentFile=%q, want always and -/etc/default/kaylee", u.get("Service", "Restart"), s["EnvironmentFile"])
			}
			exec := strings.Fields(u.get("Service", "ExecStart"))
			if len(exec) < 2 || exec[0] != tt.binary || exec[1] != "agent" {
				t.Fatalf("ExecStart=%q, want %s agent …", exec, tt.binary)
			}
			args := exec[1:]
			if i := slices.Index(args, "--config"); i < 0 || i+1 >= len(args) || args[i+1] != "/etc/kaylee/kaylee.yaml" {
				t.Errorf("ExecStart does not read --config /etc/kaylee/kaylee.yaml: %q", args)
			}
			if i := slices.Index(args, "--cache-dir"); i < 0 || i+1 >= len(args) || args[i+1] != "/var/cache/"+u.get("Service", "CacheDirectory") {
				t.Errorf("--cache-dir is not systemd's CacheDirectory=%s: %q", u.get("Service", "CacheDirectory"), args)
			}
			// The flags are kaylee agent's: --help after them answers 0,
			// an unknown flag would not.
			if r := kaylee(t, nil, append(args, "--help")...); r.code != 0 || !strings.Contains(r.stdout, "kaylee agent") {
				t.Errorf("kaylee %s --help: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.err)
			}
			verifyUnit(t, tt.path, tt.binary)
		})
	}
}

// verifyUnit runs systemd-analyze verify on a copy of the unit whose
// ExecStart runs this test binary instead of kaylee (verify wants an
// executable): anything it says about the unit fails the test. The
// hardening is rated with systemd-analyze security.
func verifyUnit(t *testing.T, path, binary string) {
	t.Helper()
	analyze := gittest.NeedTool(t, "systemd-analyze")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(path)
	unit := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(string(b), binary, self)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, analyze, "verify", unit).CombinedOutput()
	var about []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, name) {
			about = append(about, line)
		}
	}
	if err != nil || len(about) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out)
	} else if len(out) > 0 {
		t.Logf("systemd-analyze verify, about other units:\n%s", out)
	}
	out, err = exec.CommandContext(ctx, analyze, "security", "--offline=true", unit).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Logf("systemd-analyze security --offline: %v (not rated)\n%s", err, out)
		return
	}
	level, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security: exposure %.1f of 10", level)
	if level > 3 {
		t.Errorf("systemd-analyze security: exposure %.1f, want at most 3 (OK):\n%s", level, out)
	}
}

// promtool's own checks: the rules load, and their unit tests (each alert
// firing and not firing) pass.
func TestContribPromtool(t *testing.T) {
	promtool := gittest.NeedTool(t, "promtool")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"check rules", []string{"check", "rules", contribRules}, "SUCCESS: 9 rules found"},
		{"test rules", []string{"test", "rules", contribRulesTest}, "SUCCESS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(promtool, tt.args...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), tt.want) || strings.Contains(string(out), "FAILED") {
				t.Fatalf("promtool %s: %v, want %q:\n%s", strings.Join(tt.args, " "), err, tt.want, out)
			}
		})
	}
}
