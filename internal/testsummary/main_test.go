package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The input is go's own: a module of passing, failing, skipped, panicking,
// timed-out and unbuildable tests, run with go test -json.
func TestSummaryOfGoTestJSON(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("go is not on PATH: %v", err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module x\ngo 1.22\n",
		"a/a_test.go": `package a
import "testing"
func TestOK(t *testing.T) { t.Log("noise of a passing test") }
func TestFail(t *testing.T) { t.Log("why it failed"); t.Run("sub", func(t *testing.T) { t.Error("the subtest's error") }) }
func TestSkip(t *testing.T) { t.Skip("no tool") }
`,
		"b/b_test.go": "package b\nimport \"testing\"\nfunc TestB(t *testing.T) { t.Log(\"noise of b\") }\n",
		"c/c_test.go": "package c\nimport \"testing\"\nfunc TestC(t *testing.T) { undefined() }\n",
		"d/d_test.go": `package d
import ("testing"; "time")
func TestQuick(t *testing.T) {}
func TestHangs(t *testing.T) { t.Log("hanging now"); time.Sleep(time.Minute) }
`,
		"e/e_test.go": "package e\nimport \"testing\"\nfunc TestBoom(t *testing.T) { var m map[string]int; m[\"x\"] = 1 }\n",
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "test", "-json", "-count=1", "-timeout", "3s", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	events, err := cmd.Output()
	if err == nil {
		t.Fatal("go test passed a module with failing tests")
	}
	s := newSummary()
	var out bytes.Buffer
	if err := s.read(bytes.NewReader(events), &out); err != nil {
		t.Fatal(err)
	}
	s.tail(&out, 3)
	got := out.String()
	for _, tt := range []struct {
		what, text string
		want       bool
	}{
		{"a failed test's log", "why it failed", true},
		{"its subtest's error", "the subtest's error", true},
		{"the failed subtest", "--- FAIL: TestFail/sub", true},
		{"the failed package", "FAIL\tx/a", true},
		{"a passing test's log", "noise of a passing test", false},
		{"another passing test's log", "noise of b", false},
		{"a passing package", "ok  \tx/b", true},
		{"the build error", "undefined: undefined", true},
		{"the panic", "assignment to entry in nil map", true},
		{"the timeout", "panic: test timed out after 3s", true},
		{"what the hung test printed", "hanging now", true},
		{"the skipped test", "--- 1 tests skipped:\n  x/a TestSkip\n", true},
		{"the slowest tests", "--- the 3 slowest tests:\n", true},
		{"=== RUN lines", "=== RUN", false},
	} {
		if strings.Contains(got, tt.text) != tt.want {
			t.Errorf("%s (%q): present %v, want %v; output:\n%s", tt.what, tt.text, !tt.want, tt.want, got)
		}
	}
	path := filepath.Join(t.TempDir(), "durations.tsv")
	if err := s.writeDurations(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"x/a\tTestFail/sub\t", "x/b\tTestB\t", "x/d\tTestQuick\t"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("durations: no line %q in\n%s", want, data)
		}
	}
}
