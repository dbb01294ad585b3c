package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// render DIR renders every unit file of the directory as validate finds
// them (recursively, *.yaml and *.yml, in name order): the same output as
// rendering each file in turn.
func TestRenderDirectory(t *testing.T) {
	files := []string{"api.yaml", "countly.yaml", "db-primary.yaml", "ingress.yaml", "node-exporter.yaml", "search.yaml"}
	var each []string
	var eachJSON []json.RawMessage
	for _, f := range files {
		r := kaylee(t, nil, "render", filepath.Join("../../examples", f))
		if r.code != 0 {
			t.Fatalf("render %s: exit %d %s", f, r.code, r.err)
		}
		each = append(each, r.stdout)
		var units []json.RawMessage
		if err := json.Unmarshal([]byte(kaylee(t, nil, "render", "-o", "json", filepath.Join("../../examples", f)).stdout), &units); err != nil {
			t.Fatal(err)
		}
		eachJSON = append(eachJSON, units...)
	}
	r := kaylee(t, nil, "render", "../../examples/")
	if r.code != 0 || r.stdout != strings.Join(each, "\n") {
		t.Fatalf("render examples/: exit %d, stderr %q\nstdout:\n%s\nwant each file's units in name order:\n%s", r.code, r.err, r.stdout, strings.Join(each, "\n"))
	}
	var units []json.RawMessage
	j := kaylee(t, nil, "render", "-o", "json", "../../examples")
	if err := json.Unmarshal([]byte(j.stdout), &units); err != nil || j.code != 0 || len(units) != len(eachJSON) {
		t.Fatalf("render -o json examples: exit %d, %v, %d units, want %d", j.code, err, len(units), len(eachJSON))
	}

	dir := writeFiles(t, map[string]string{
		"b.yaml":        "name: b\napps:\n- image: x\n",
		"a.yaml":        "name: a\napps:\n- image: x\n",
		"nested/c.yml":  "name: c\napps:\n- image: x\n",
		"README.md":     "not a unit",
		".hidden/d.yml": "name: d\napps:\n- image: x\n",
	})
	r = kaylee(t, nil, "render", dir)
	names := regexp.MustCompile(`(?m)^# k2:([a-z]+):`).FindAllStringSubmatch(r.stdout, -1)
	var got []string
	for _, n := range names {
		got = append(got, n[1])
	}
	if r.code != 0 || strings.Join(got, " ") != "a b c" {
		t.Fatalf("render DIR: exit %d, units %v, want a b c\n%s%s", r.code, got, r.stdout, r.err)
	}

	bad := writeFiles(t, map[string]string{"a.yaml": "name: a\napps:\n- image: x\n", "b.yaml": "name: b\nreplcas: 2\napps:\n- image: x\n"})
	r = kaylee(t, nil, "render", bad)
	if want := filepath.Join(bad, "b.yaml") + `:2: unknown field "replcas" (did you mean "replicas"?)`; r.code != 1 || r.stdout != "" || !strings.Contains(r.err, want) {
		t.Fatalf("render DIR with a bad file: exit %d, stdout %q, stderr %q; want 1, nothing, %q", r.code, r.stdout, r.err, want)
	}
}
