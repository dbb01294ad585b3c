package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/view"
)

// contrib's evidence units run kaylee evidence with flags it has, on the
// directory deploy's evidence step writes to, as a user of their own
// (they only read it); the fleet one is global; both pass systemd-analyze
// verify and security.
func TestEvidenceContribUnits(t *testing.T) {
	t.Parallel()
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

// kaylee status NAME prints a failed rollout's evidence after its
// message: exit, restarts, the health check's answer, the journal lines
// indented.
func TestStatusPrintsEvidence(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	st := &store.Status{Name: "web", Phase: store.PhaseFailed, SpecHash: "abcd1234", Time: now,
		Message: `rollout of abcd1234 failed: ...; on the machine: exit status 125; last line: "boom"`,
		Evidence: &store.Evidence{Unit: "web", FleetUnit: "k2:web:abcd1234:0a1b2c:0.service", Machine: "m1", Result: "exit-code",
			ExitCode: "exited", ExitStatus: "125", Restarts: 3, Probe: "HTTP 500 from 10.0.0.2:8080",
			Journal: []string{"starting", "boom"}, Time: now.Add(-90 * time.Second)}}
	var b strings.Builder
	writeStatus(&b, view.Unit{Status: st, State: st.Phase}, now)
	want := `
Evidence from the machine (kaylee evidence on m1):
  Fleet unit:    k2:web:abcd1234:0a1b2c:0.service
  Stopped:       1m ago (2026-12-03T11:58:30Z)
  Exit:          exit status 125 (systemd: exit-code)
  Restarts:      3
  Health check:  HTTP 500 from 10.0.0.2:8080
  Journal (last 2 lines):
    starting
    boom
`
	if !strings.Contains(b.String(), want) {
		t.Errorf("kaylee status:\n%s\nwant it to hold:\n%s", b.String(), want)
	}
}
