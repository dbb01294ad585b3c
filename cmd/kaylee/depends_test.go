package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// Issue 27: validate and render check dependsOn across the files they
// read (they know no other unit); kaylee run knows the units stored in
// etcd too. Each error names FILE:LINE; nothing is stored when run
// refuses.
func TestDependsOnAcrossFiles(t *testing.T) {
	unit := func(name string, deps ...string) string {
		return "name: " + name + "\nengine: docker\napps:\n- image: " + name + "\ndependsOn: [" + strings.Join(deps, ", ") + "]\n"
	}
	dir := writeFiles(t, map[string]string{
		"good/web.yaml":  unit("web", "db"),
		"good/db.yaml":   unit("db"),
		"typo/web.yaml":  unit("web", "dbb"),
		"typo/db.yaml":   unit("db"),
		"cycle/a.yaml":   unit("a", "b"),
		"cycle/b.yaml":   unit("b", "a"),
		"alone/api.yaml": unit("api", "db"),
	})
	e := etcdtest.New(t)
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	tests := []struct {
		args   []string
		code   int
		stdout string // exactly; "-" for anything
		stderr string // exactly; "-" for anything
	}{
		{[]string{"validate", dir + "/good"}, 0, "-", ""},
		{[]string{"validate", dir + "/typo"}, 1, "-",
			`typo/web.yaml:5: dependsOn[0]: "dbb" is no unit of the given files (did you mean "db"?)` + "\n"},
		{[]string{"validate", dir + "/cycle"}, 1, "-",
			`cycle/a.yaml:5: dependsOn: cycle a -> b -> a (cycle/b.yaml:5): no unit of it could ever start; remove one of its dependsOn entries` + "\n" +
				`cycle/b.yaml:5: dependsOn: cycle b -> a -> b (cycle/a.yaml:5): no unit of it could ever start; remove one of its dependsOn entries` + "\n"},
		{[]string{"render", dir + "/typo"}, 1, "", "-"},
		// Offline, db is no unit; against etcd, it is once stored.
		{[]string{"validate", dir + "/alone"}, 1, "-",
			`alone/api.yaml:5: dependsOn[0]: "db" is no unit of the given files; add that unit or remove the name` + "\n"},
		{[]string{"run", dir + "/alone"}, 1, "",
			`alone/api.yaml:5: dependsOn[0]: "db" is no unit of the given files or of etcd; add that unit or remove the name` + "\n" + "nothing stored: fix the errors above\n"},
		{[]string{"run", filepath.Join(dir, "good", "db.yaml")}, 0, "db stored\n", "-"},
		{[]string{"run", dir + "/alone"}, 0, "api stored\n", "-"},
	}
	for _, tt := range tests {
		r := kaylee(t, env, tt.args...)
		out := strings.ReplaceAll(r.stdout, dir+"/", "")
		errb := strings.ReplaceAll(r.err, dir+"/", "")
		if r.code != tt.code || tt.stdout != "-" && out != tt.stdout || tt.stderr != "-" && errb != tt.stderr {
			t.Errorf("kaylee %s: exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(tt.args, " "), r.code, out, errb, tt.code, tt.stdout, tt.stderr)
		}
	}
}
