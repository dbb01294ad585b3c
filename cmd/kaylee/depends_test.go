package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// Issue 27: validate and render check dependsOn across the files they
// read (they know no other unit); kaylee run knows the units stored in
// etcd too. Each error names FILE:LINE; nothing is stored when run
// refuses.
func TestDependsOnAcrossFiles(t *testing.T) {
	t.Parallel()
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

// Issue 27: kaylee status shows what a unit's rollout waits for: the
// table's message, and NAME's Depends on line; -o json has waitingFor.
func TestStatusShowsDependencyWait(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	s := store.New(e.Client(t), store.DefaultPrefix)
	now := time.Now().UTC()
	msg := "waiting for db (progressing: 0 of 1 running the current spec, 0 ready); the old version keeps running (3 serving) until then"
	if err := s.PutStatus(context.Background(), &store.Status{Name: "web", Phase: store.PhasePending, SpecHash: "4c2a2179", Deployed: "ecb6778e",
		Desired: 3, Serving: 3, Message: msg, DependsOn: []string{"db"}, WaitingFor: "db", Since: now, Time: now}, store.Fence{}); err != nil {
		t.Fatal(err)
	}
	if r := kaylee(t, env, "status"); r.code != 0 || !strings.Contains(r.stdout, msg) {
		t.Errorf("kaylee status: exit %d\n%s%s\nwant the message %q", r.code, r.stdout, r.err, msg)
	}
	r := kaylee(t, env, "status", "web")
	if !strings.Contains(r.stdout, "Depends on:  db (its rollout waits for db)\n") || !strings.Contains(r.stdout, msg) {
		t.Errorf("kaylee status web:\n%s%s", r.stdout, r.err)
	}
	if r := kaylee(t, env, "status", "web", "-o", "json"); !strings.Contains(r.stdout, `"waitingFor": "db"`) && !strings.Contains(r.stdout, `"waitingFor":"db"`) {
		t.Errorf("kaylee status web -o json:\n%s%s", r.stdout, r.err)
	}
}
