package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// contrib's evidence units run kaylee evidence with flags it has, on the
// directory deploy's evidence step writes to, as a user of their own
// (they only read it); the fleet one is global; both pass systemd-analyze
// verify and security.
func TestEvidenceContribUnits(t *testing.T) {
	for _, tt := range []struct{ path, binary string }{
		{"../../contrib/systemd/kaylee-evidence.service", "/usr/local/bin/kaylee"},
		{"../../contrib/fleet/kaylee-evidence.service", "/opt/bin/kaylee"},
	} {
		t.Run(filepath.Base(filepath.Dir(tt.path)), func(t *testing.T) {
			u := readUnitFile(t, tt.path)
			if strings.Contains(tt.path, "fleet") && u.get("X-Fleet", "Global") != "true" {
				t.Errorf("[X-Fleet] Global=%q, want true: one publisher on every machine", u.get("X-Fleet", "Global"))
			}
			if u.get("Service", "Restart") != "always" || u.get("Service", "DynamicUser") != "yes" ||
				!slices.Contains(u["Service"]["EnvironmentFile"], "-/etc/default/kaylee") {
				t.Errorf("Restart=%q DynamicUser=%q EnvironmentFile=%q, want always, yes, -/etc/default/kaylee",
					u.get("Service", "Restart"), u.get("Service", "DynamicUser"), u["Service"]["EnvironmentFile"])
			}
			args := strings.Fields(u.get("Service", "ExecStart"))
			if len(args) < 2 || args[0] != tt.binary || args[1] != "evidence" {
				t.Fatalf("ExecStart=%q, want %s evidence …", args, tt.binary)
			}
			if i := slices.Index(args, "--dir"); i < 0 || i+1 >= len(args) || args[i+1] != "/run/kaylee/evidence" {
				t.Errorf("ExecStart=%q: want --dir /run/kaylee/evidence, where the replicas write", args)
			}
			if r := kaylee(t, nil, append(args[1:], "--help")...); r.code != 0 || !strings.Contains(r.stdout, "kaylee evidence") {
				t.Errorf("kaylee %s --help: exit %d\n%s%s", strings.Join(args[1:], " "), r.code, r.stdout, r.err)
			}
			verifyUnit(t, tt.path, tt.binary)
		})
	}
}
