package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/fleet/schema"
)

// Each testdata/probe/X.yaml renders as the primary probe of member 1,
// running under the spec hash 0123abcd on machine fedcba98..., for the
// rollout of the file's spec: X.golden.
func TestRenderProbeGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/probe/*.yaml")
	if len(files) < 4 {
		t.Fatalf("found %d inputs", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s := loadOne(t, f)
			member := UnitName{Prefix: "k2", Name: s.Name, SpecHash: "0123abcd", Group: "a1b2c3", Index: 1}
			name := ProbeName{Prefix: "k2", Name: s.Name, SpecHash: s.Hash(0), Index: 1}
			u, err := RenderProbe(s, name, member, "fedcba9876543210fedcba9876543210")
			if err != nil {
				t.Fatal(err)
			}
			got := unitText([]*schema.Unit{u})
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./deploy -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("probe of %s differs from %s:\n%s", f, golden, got)
			}
		})
	}
}

// A probe's name parses back, and never as a member (nor a member's as a
// probe): the scheduler groups members by ParseUnitName.
func TestProbeName(t *testing.T) {
	p := ProbeName{Prefix: "k2", Name: "db", SpecHash: "0123abcd", Index: 2}
	if got := p.String(); got != "k2:db:0123abcd:primary:2.service" {
		t.Fatalf("name %q", got)
	}
	if back, ok := ParseProbeName("k2", p.String()); !ok || back != p {
		t.Fatalf("ParseProbeName = %+v, %v", back, ok)
	}
	if id, ok := ParseUnitName("k2", p.String()); ok {
		t.Fatalf("a probe parses as a member: %+v", id)
	}
	member := UnitName{Prefix: "k2", Name: "db", SpecHash: "0123abcd", Group: "a1b2c3", Index: 2}.String()
	for _, s := range []string{member, "k3:db:0123abcd:primary:2.service", "k2:db:0123abcd:primary:02.service", "k2:db:0123abcd:primary:2.timer"} {
		if _, ok := ParseProbeName("k2", s); ok {
			t.Errorf("%s parses as a probe", s)
		}
	}
}

// RenderProbe refuses what it cannot render: no probe, a machine ID
// that is not one.
func TestRenderProbeRefuses(t *testing.T) {
	s := loadOne(t, "testdata/probe/docker-exec.yaml")
	member := UnitName{Prefix: "k2", Name: "db", SpecHash: "0123abcd", Group: "a1b2c3", Index: 1}
	name := ProbeName{Prefix: "k2", Name: "db", SpecHash: s.Hash(0), Index: 1}
	if _, err := RenderProbe(s, name, member, "m1\nExecStart=/bin/sh"); err == nil || !strings.Contains(err.Error(), "is not letters and digits") {
		t.Errorf("bad machine: %v", err)
	}
	s.Primary = nil
	if _, err := RenderProbe(s, name, member, "m1"); err == nil || !strings.Contains(err.Error(), "has no primary probe") {
		t.Errorf("no probe: %v", err)
	}
}

// The probe's ExecStart, run as systemd runs it (no MAINPID): exit 0
// when the member answers as the primary, 1 when not (asked twice, a
// second apart), so the oneshot ends active/exited or failed.
func TestProbeScriptExits(t *testing.T) {
	needBash(t)
	t.Parallel()
	for _, tt := range []struct {
		exec []string
		code int
	}{{[]string{"/bin/sh", "-c", "exit"}, 0}, {[]string{"/bin/false"}, 1}} {
		t.Run(tt.exec[0], func(t *testing.T) {
			t.Parallel()
			s := &Spec{Name: "db", Replicas: 2, Stateful: true, Apps: []App{{Image: "x"}}, Primary: &Probe{Exec: tt.exec}}
			member := UnitName{Prefix: "k2", Name: "db", SpecHash: "0123abcd", Group: "a1b2c3", Index: 1}
			u, err := RenderProbe(s, ProbeName{Prefix: "k2", Name: "db", SpecHash: s.Hash(0), Index: 1}, member, "m1")
			if err != nil {
				t.Fatal(err)
			}
			code, took, out := startHealth(t, execArgv(t, options(u, "Service", "ExecStart")[0]), 0).wait(t, 10*time.Second)
			if code != tt.code || took > 3*time.Second {
				t.Fatalf("exit %d after %v, want %d:\n%s", code, took, tt.code, out)
			}
		})
	}
}
