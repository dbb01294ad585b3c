package sync

import (
	"strings"
	"testing"
)

// dependant is a unit waiting for deps (dependsOn on line 4).
func dependant(name, image string, deps ...string) string {
	return "name: " + name + "\napps:\n- image: docker://" + image + "\ndependsOn: [" + strings.Join(deps, ", ") + "]\n"
}

// A pass refuses a unit whose dependsOn names no unit of the revision nor
// of etcd (another source's and kaylee run's count, a unit this pass
// prunes does not), or closes a cycle: the error names FILE:LINE, and
// the unit keeps its stored value or is not created (safety rule 1).
func TestPassDependsOn(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(w *teams) // after team-b's pass (unit web), before team-a's
		a     map[string]string
		opts  Options
		errs  []string
		want  map[string]string // unit → a fragment of its stored JSON; "" not stored
	}{
		{"a unit of the same revision", nil,
			map[string]string{"db.yaml": site("db", "db", "db.example.com"), "api.yaml": dependant("api", "api", "db")}, Options{},
			nil, map[string]string{"api": `"dependsOn":["db"]`, "db": `"name":"db"`}},
		{"another source's unit and a kaylee run unit", func(w *teams) {
			w.run(dependant("ops", "ops"))
		}, map[string]string{"api.yaml": dependant("api", "api", "web", "ops")}, Options{},
			nil, map[string]string{"api": `"dependsOn":["web","ops"]`}},
		{"unknown, did you mean", nil,
			map[string]string{"db.yaml": site("db", "db", "db.example.com"), "api.yaml": dependant("api", "api", "dbb")}, Options{},
			[]string{`units/api.yaml:4: dependsOn[0]: "dbb" is no unit of this source or of etcd (did you mean "db"?)`},
			map[string]string{"api": "", "db": `"name":"db"`}},
		{"unknown: the existing unit is left as it was", func(w *teams) {
			w.sync("team-a", map[string]string{"db.yaml": site("db", "db", "db.example.com"), "api.yaml": dependant("api", "api:1", "db")}, Options{})
		}, map[string]string{"api.yaml": dependant("api", "api:2", "db")}, Options{MaxPrune: 1},
			// db is pruned by this very pass: it is no unit any more.
			[]string{`units/api.yaml:4: dependsOn[0]: "db" is no unit of this source or of etcd (did you mean "web"?)`},
			map[string]string{"api": `"docker://api:1"`, "db": ""}},
		{"a cycle", nil,
			map[string]string{"a.yaml": dependant("a", "a", "b"), "b.yaml": dependant("b", "b", "a"), "c.yaml": dependant("c", "c", "web")}, Options{},
			[]string{
				`units/a.yaml:4: dependsOn: cycle a -> b -> a (units/b.yaml:4): no unit of it could ever start; remove one of its dependsOn entries`,
				`units/b.yaml:4: dependsOn: cycle b -> a -> b (units/a.yaml:4): no unit of it could ever start; remove one of its dependsOn entries`,
			}, map[string]string{"a": "", "b": "", "c": `"dependsOn":["web"]`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newTeams(t, "team-a", "team-b")
			if r := w.sync("team-b", map[string]string{"web.yaml": site("web", "web", "www.example.com")}, Options{}); len(r.Errors) > 0 {
				t.Fatalf("team-b: %s", errorStrings(r))
			}
			if tt.setup != nil {
				tt.setup(w)
			}
			r := w.sync("team-a", tt.a, tt.opts)
			if got, want := errorStrings(r), strings.Join(tt.errs, "\n"); got != want {
				t.Fatalf("team-a's errors:\n%s\nwant:\n%s", got, want)
			}
			after := w.stored()
			for name, frag := range tt.want {
				if got := after[name]; frag == "" && got != "" || !strings.Contains(got, frag) {
					t.Errorf("%s in etcd: %s, want %s", name, got, frag)
				}
			}
		})
	}
}
