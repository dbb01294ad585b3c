package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// render DIR renders every unit file of the directory as validate finds
// them (recursively, *.yaml and *.yml, in name order): the same output as
// rendering each file in turn.
func TestRenderDirectory(t *testing.T) {
	t.Parallel()
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

// render of a stateful unit shows one fleet unit per member, its ordinal
// in the name, KAYLEE_MEMBER and the member's own volume.
func TestRenderStateful(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{"db.yaml": "name: db\nengine: docker\nreplicas: 3\nmaxReplicasPerHost: 1\nstateful: true\n" +
		"volumes:\n- id: vol-db-${KAYLEE_MEMBER}\n  source: /srv/db/${KAYLEE_MEMBER}\n  path: /var/lib/db\napps:\n- image: postgres:16\n"})
	r := kaylee(t, nil, "render", filepath.Join(dir, "db.yaml"))
	if r.code != 0 {
		t.Fatalf("render: exit %d %s", r.code, r.err)
	}
	names := regexp.MustCompile(`(?m)^# k2:db:[0-9a-f]{8}:[0-9a-f]{6}:([0-9]+)\.service$`).FindAllStringSubmatch(r.stdout, -1)
	if len(names) != 3 {
		t.Fatalf("%d member units, want 3:\n%s", len(names), r.stdout)
	}
	units := strings.Split(r.stdout, "\n\n# ")
	for i, n := range names {
		if n[1] != fmt.Sprint(i) {
			t.Fatalf("unit %d is member %s", i, n[1])
		}
		for _, want := range []string{fmt.Sprintf("Description=kaylee db member %d ", i), fmt.Sprintf(`Environment="KAYLEE_MEMBER=%d"`, i),
			fmt.Sprintf("-v /srv/db/%d:/var/lib/db", i), "-e KAYLEE_MEMBER", "Conflicts=k2:db:"} {
			if !strings.Contains(units[i], want) {
				t.Errorf("member %d lacks %q:\n%s", i, want, units[i])
			}
		}
	}
	if !strings.Contains(r.err, "db.yaml: stateful: one fleet unit per member, shown unplaced") {
		t.Errorf("stderr %q", r.err)
	}
}
