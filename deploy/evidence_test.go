package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/fleet/schema"
)

// checkEvidenceLine: the evidence step is Kaylee's script with exactly
// the unit's name (systemd's %n) and the instance ID: no user word.
func checkEvidenceLine(t *testing.T, u *schema.Unit, line string) {
	t.Helper()
	argv := evidenceArgv(t, line)
	want := []string{BashPath, "-c", plainScript(evidenceScript), "kaylee-evidence", "%n"}
	if len(argv) != 6 || !slices.Equal(argv[:5], want) {
		t.Fatalf("%s: evidence line %q: argv %q", u.Name, line, argv)
	}
	name, _ := ParseUnitName(DefaultUnitPrefix, u.Name)
	if id := strings.TrimSuffix(argv[5], "_%m"); id != name.InstanceID() {
		t.Fatalf("%s: evidence line's instance ID %q, want %q", u.Name, argv[5], name.InstanceID())
	}
}

// evidenceArgv is what systemd runs for the evidence line, its
// specifiers (%n, and %m ending a global unit's instance ID) left as
// they are.
func evidenceArgv(t *testing.T, line string) []string {
	t.Helper()
	if !strings.HasPrefix(line, "-") {
		t.Fatalf("evidence line %q: a failure must not fail the stop (no leading -)", line)
	}
	line = strings.ReplaceAll(strings.ReplaceAll(line, " %n ", " %%n "), "_%m", "_%%m")
	return execArgv(t, strings.TrimPrefix(line, "-"))
}

// evidenceLine renders spec and returns its one evidence line.
func evidenceLine(t *testing.T, s *Spec) (string, *schema.Unit) {
	t.Helper()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	units, err := Render(s, RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, l := range options(units[0], "Service", "ExecStopPost") {
		if strings.Contains(l, "kaylee-evidence") {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: %d evidence lines, want 1: %q", s.EngineName(), len(found), found)
	}
	return found[0], units[0]
}

func TestRenderEvidenceEveryEngine(t *testing.T) {
	for _, engine := range []string{EngineDocker, EngineRkt, EnginePodman} {
		s := &Spec{Name: "api", Engine: engine, Apps: []App{{Image: "docker://example/api:1"}},
			Env: []EnvVar{{Name: "TOKEN", Value: "s3cret-value"}}}
		line, u := evidenceLine(t, s)
		checkEvidenceLine(t, u, line)
		if len(line) > MaxLineLen {
			t.Errorf("%s: evidence line is %d bytes, fleet's limit %d", engine, len(line), MaxLineLen)
		}
		if strings.Contains(line, "s3cret") || strings.Contains(line, "TOKEN") {
			t.Errorf("%s: the evidence line holds the env: %s", engine, line)
		}
	}
}

// fakeTool writes an executable script into dir.
func fakeTool(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/bash\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestEvidenceScriptWritesFile runs the rendered evidence step with bash
// as systemd would after a failed start: journalctl and systemctl are
// fakes on PATH (the host's journal has no such unit), EvidenceDir is a
// directory of the test's. Its journal lines are of this run of the unit
// (systemd's $INVOCATION_ID). The file it leaves has how the process ended,
// the restart count, the probe's answer and the last journal lines,
// bounded, and never the unit's environment.
func TestEvidenceScriptWritesFile(t *testing.T) {
	needBash(t)
	for _, tool := range []string{"mktemp", "grep", "cut", "tail", "sed", "head", "date", "mv", "chmod", "find"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOutsideCI(t, "no %s: %v", tool, err)
		}
	}
	s := &Spec{Name: "api", Engine: EngineDocker, Apps: []App{{Image: "nope:1"}},
		Env: []EnvVar{{Name: "TOKEN", Value: "s3cret-value"}}}
	line, u := evidenceLine(t, s)
	argv := evidenceArgv(t, line)
	dir, bin := t.TempDir(), t.TempDir()
	argv[2] = strings.ReplaceAll(argv[2], EvidenceDir, dir)
	name, _ := ParseUnitName(DefaultUnitPrefix, u.Name)
	id := name.InstanceID()
	// 25 lines, one of 1000 bytes: the file keeps the last 20, each cut
	// to 300 bytes.
	fakeTool(t, bin, "journalctl", `[ "$1" = --sync ] && exit 0
[ "$1 $2" = "_SYSTEMD_UNIT=`+u.Name+` _SYSTEMD_INVOCATION_ID=0123abcd" ] || { echo "journalctl: unexpected $*" >&2; exit 1; }
echo "kaylee-health: `+u.Name+` not healthy within 30s (last: HTTP 500 from 172.17.0.2:8080)"
for i in $(seq 1 23); do echo "line $i"; done
printf 'x%.0s' $(seq 1 1000); echo
echo "docker: Unable to find image 'nope:1' locally"
`)
	fakeTool(t, bin, "systemctl", `[ "$*" = "show -p NRestarts --value `+u.Name+`" ] && echo 3`)
	run := func(result, code, status string) {
		t.Helper()
		cmd := exec.Command(argv[0], argv[1], argv[2], argv[3], u.Name, id)
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "TOKEN=s3cret-value",
			"SERVICE_RESULT="+result, "EXIT_CODE="+code, "EXIT_STATUS="+status, "INVOCATION_ID=0123abcd")
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Fatalf("evidence step: %v\n%s", err, out)
		}
	}
	run("exit-code", "exited", "125")
	b, err := os.ReadFile(filepath.Join(dir, u.Name))
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	for _, want := range []string{"result=exit-code", "code=exited", "status=125", "restarts=3", "probe=kaylee-health: " + u.Name + " not healthy within 30s (last: HTTP 500 from 172.17.0.2:8080)",
		"j=docker: Unable to find image 'nope:1' locally", "j=line 6", "j=" + strings.Repeat("x", 300)} {
		if !slices.Contains(lines, want) {
			t.Errorf("evidence file has no line %q:\n%s", want, got)
		}
	}
	if !strings.HasPrefix(lines[0], "time=20") {
		t.Errorf("evidence file starts with %q, want time=<RFC 3339>", lines[0])
	}
	j := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "j=") {
			j++
		}
	}
	if j != 20 || slices.Contains(lines, "j=line 5") {
		t.Errorf("%d journal lines, want the last 20:\n%s", j, got)
	}
	if strings.Contains(got, "s3cret") || strings.Contains(got, "TOKEN") {
		t.Errorf("the evidence file holds the unit's environment:\n%s", got)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".e.*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	// Kaylee stops the replica whose rollout failed: that clean stop
	// leaves the failure's record.
	run("success", "killed", "TERM")
	if b, _ := os.ReadFile(filepath.Join(dir, u.Name)); string(b) != got {
		t.Errorf("a clean stop replaced the failure's record:\n%s", b)
	}
}
