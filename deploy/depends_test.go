package deploy

import (
	"strings"
	"testing"
)

// TestValidateDependsOn: each entry of dependsOn is a unit name, not the
// unit itself, not given twice; each error names the file, the entry's
// line and what to do.
func TestValidateDependsOn(t *testing.T) {
	in := "name: web\napps: [{image: x}]\ndependsOn:\n- db\n- web\n- db\n- Cache\n- ''\n"
	_, err := Load("units/web.yaml", []byte(in))
	var got []string
	for _, fe := range FieldErrors(err) {
		got = append(got, fe.Error())
	}
	want := []string{
		`units/web.yaml:5: dependsOn[1]: "web" is this unit itself: a unit cannot wait for itself; remove it`,
		`units/web.yaml:6: dependsOn[2]: "db" is also dependsOn[0]: name a unit once`,
		`units/web.yaml:7: dependsOn[3]: "Cache" is not a unit name (lowercase letters, digits and -, starting and ending with a letter or digit)`,
		`units/web.yaml:8: dependsOn[4]: required: the name of a unit this one waits for`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestDependsOnProblems: across the files of a source, a name that is no
// unit (of the files or of etcd) and cycles of two and three units are
// errors at FILE:LINE of each unit concerned; a stored unit is known and
// its dependsOn takes part in cycles.
func TestDependsOnProblems(t *testing.T) {
	load := func(file, in string) []*Document {
		docs, err := Load(file, []byte(in))
		if err != nil {
			t.Fatal(err)
		}
		return docs
	}
	unit := func(name string, deps ...string) string {
		return "name: " + name + "\napps: [{image: x}]\n\n\ndependsOn: [" + strings.Join(deps, ", ") + "]\n"
	}
	cases := []struct {
		name   string
		files  map[string]string
		stored map[string][]string
		want   []string
	}{{
		name:  "unknown, with a suggestion",
		files: map[string]string{"units/web.yaml": "name: web\napps: [{image: x}]\n\n\n\ndependsOn: [cache, dbb]\n", "units/db.yaml": unit("db")},
		want: []string{
			`units/web.yaml:6: dependsOn[1]: "dbb" is no unit of this source or of etcd (did you mean "db"?)`,
		},
		stored: map[string][]string{"cache": nil},
	}, {
		name:  "unknown, nothing close",
		files: map[string]string{"units/web.yaml": unit("web", "queue")},
		want:  []string{`units/web.yaml:5: dependsOn[0]: "queue" is no unit of this source or of etcd; add that unit or remove the name`},
	}, {
		name:  "cycle of two",
		files: map[string]string{"units/a.yaml": unit("a", "b"), "units/b.yaml": unit("b", "a")},
		want: []string{
			`units/a.yaml:5: dependsOn: cycle a -> b -> a (units/b.yaml:5): no unit of it could ever start; remove one of its dependsOn entries`,
			`units/b.yaml:5: dependsOn: cycle b -> a -> b (units/a.yaml:5): no unit of it could ever start; remove one of its dependsOn entries`,
		},
	}, {
		name:  "cycle of three, and a unit outside it that waits for one of it",
		files: map[string]string{"units/a.yaml": unit("a", "b"), "units/b.yaml": unit("b", "c"), "units/c.yaml": unit("c", "a"), "units/d.yaml": unit("d", "a")},
		want: []string{
			`units/a.yaml:5: dependsOn: cycle a -> b -> c -> a (units/b.yaml:5, units/c.yaml:5): no unit of it could ever start; remove one of its dependsOn entries`,
			`units/b.yaml:5: dependsOn: cycle b -> c -> a -> b (units/c.yaml:5, units/a.yaml:5): no unit of it could ever start; remove one of its dependsOn entries`,
			`units/c.yaml:5: dependsOn: cycle c -> a -> b -> c (units/a.yaml:5, units/b.yaml:5): no unit of it could ever start; remove one of its dependsOn entries`,
		},
	}, {
		name:   "cycle through a stored unit",
		files:  map[string]string{"units/a.yaml": unit("a", "x")},
		stored: map[string][]string{"x": {"a"}},
		want: []string{
			`units/a.yaml:5: dependsOn: cycle a -> x -> a (x: stored in etcd): no unit of it could ever start; remove one of its dependsOn entries`,
		},
	}, {
		name:  "a chain is fine",
		files: map[string]string{"units/web.yaml": unit("web", "api"), "units/api.yaml": unit("api", "db"), "units/db.yaml": unit("db")},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var docs []*Document
			for _, f := range []string{"units/a.yaml", "units/api.yaml", "units/b.yaml", "units/c.yaml", "units/d.yaml", "units/db.yaml", "units/web.yaml"} {
				if in, ok := tc.files[f]; ok {
					docs = append(docs, load(f, in)...)
				}
			}
			probs := DependsOnProblems(docs, tc.stored, "this source or of etcd")
			var got []string
			for _, d := range docs {
				for _, fe := range FieldErrors(probs[d]) {
					got = append(got, fe.Error())
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestDependsOnRollsNothing: dependsOn is out of the spec hash, and the
// canonical JSON puts it last.
func TestDependsOnRollsNothing(t *testing.T) {
	before := &Spec{Name: "web", Replicas: 2, Apps: []App{{Image: "x"}}, Domains: []string{"shop.example.com"}}
	after := *before
	after.DependsOn = []string{"db"}
	if before.Hash(0) != after.Hash(0) {
		t.Errorf("dependsOn changed the spec hash: %s → %s", before.Hash(0), after.Hash(0))
	}
	want := `{"name":"web","replicas":2,"apps":[{"image":"x"}],"domains":["shop.example.com"],"dependsOn":["db"]}`
	if got := string(after.CanonicalJSON()); got != want {
		t.Errorf("canonical JSON:\n%s\nwant:\n%s", got, want)
	}
}
