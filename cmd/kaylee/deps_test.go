package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The kaylee binary does not link the testing package: what `kaylee dev`
// needs at run time (an embedded etcd, the simulated fleet) lives in
// packages of its own, apart from the helpers that take a *testing.T.
// When it fails, it names the packages of the binary that import testing.
func TestBinaryLinksNoTesting(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("go"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI must run this test: no go command on PATH")
		}
		t.Skip("no go command on PATH")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}: {{join .Imports " "}}`, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps .: %v\n%s", err, out)
	}
	var linked bool
	var importers []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ": ")
		if pkg == "testing" {
			linked = true
		}
		for _, imp := range strings.Fields(imports) {
			if imp == "testing" {
				importers = append(importers, pkg)
			}
		}
	}
	if linked {
		t.Fatalf("the kaylee binary links package testing, imported by: %s", strings.Join(importers, ", "))
	}
}
