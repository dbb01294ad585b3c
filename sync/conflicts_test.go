package sync

import (
	"context"
	"strings"
	"testing"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store"
)

// A unit's conflicts keep its replicas off machines running the units it
// names, and fleet matches them against every unit on the cluster. Issue
// 20: a unit of one team's source evicted another team's units. A unit
// may only name units of its own source, unless the source's config
// allows more (conflictsWith); anything else is a file error that keeps
// the unit as it was.

// teams is one store with several git sources, each its own repository.
type teams struct {
	*env
	repos map[string]*gittest.Repo
	srcs  map[string]*gitsource.Source
}

func newTeams(t *testing.T, names ...string) *teams {
	w := &teams{env: newEnv(t), repos: map[string]*gittest.Repo{}, srcs: map[string]*gitsource.Source{}}
	for _, n := range names {
		r := gittest.NewRepo(t)
		src, err := gitsource.New(gitsource.Config{URL: r.FileURL(), Path: "units", CacheDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		w.repos[n], w.srcs[n] = r, src
	}
	return w
}

// sync commits files (a whole units/ folder) to the source's repository
// and runs a pass of it.
func (w *teams) sync(source string, files map[string]string, o Options) *Result {
	w.t.Helper()
	wr := map[string]string{"README.md": "units\n"}
	for k, v := range files {
		wr["units/"+k] = v
	}
	w.repos[source].Git("rm", "-rq", "--ignore-unmatch", "units")
	w.repos[source].Write(wr)
	w.repos[source].Commit("change")
	snap, err := w.srcs[source].Fetch(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	o.Source = source
	res, err := Pass(context.Background(), w.store, snap, o)
	if err != nil {
		w.t.Fatalf("pass of %s: %v", source, err)
	}
	return res
}

func (w *teams) run(spec string) {
	w.t.Helper()
	docs, err := deploy.Load("run.yaml", []byte(spec))
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.store.PutUnit(context.Background(), &docs[0].Spec, store.Fence{}); err != nil {
		w.t.Fatal(err)
	}
}

const (
	teamBWeb = "name: web\nreplicas: 2\napps:\n- image: docker://web\n"
	teamBDB  = "name: db\napps:\n- image: docker://db\n"
	evilNone = "name: evil\nglobal: true\napps:\n- image: docker://evil:1\n"
)

func evil(conflicts ...string) string {
	return "name: evil\nglobal: true\napps:\n- image: docker://evil:2\nconflicts:\n- " + strings.Join(conflicts, "\n- ") + "\n"
}

func TestConflictsOnlyOwnUnits(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(w *teams) // before team-a's pass
		a     map[string]string
		opts  Options
		errs  string // team-a's file errors
		evil  string // evil in etcd afterwards ("" none); a fragment
	}{
		{"another team's unit", nil, map[string]string{"evil.yaml": evil("web")}, Options{},
			`units/evil.yaml:6: conflicts[0]: "web" is a unit of source "team-b", not of source "team-a": a unit may only conflict with units of its own source, unless the source's conflictsWith (config file) allows it; the unit is not created`, ""},
		{"another team's unit, existing unit held", func(w *teams) {
			w.sync("team-a", map[string]string{"evil.yaml": evilNone}, Options{})
		}, map[string]string{"evil.yaml": evil("db")}, Options{},
			`units/evil.yaml:6: conflicts[0]: "db" is a unit of source "team-b", not of source "team-a": a unit may only conflict with units of its own source, unless the source's conflictsWith (config file) allows it; the unit is left as it was`, `"image":"docker://evil:1"`},
		{"a family reaching another team's unit", nil,
			map[string]string{"evil.yaml": evil("web-*"), "web.yaml": "name: web-a\napps:\n- image: docker://a\n"}, Options{},
			`units/evil.yaml:6: conflicts[0]: "web-*" matches "web-b", a unit of source "team-b", not of source "team-a"`, ""},
		{"a unit made with kaylee run", func(w *teams) {
			w.run("name: ops\napps:\n- image: docker://ops\n")
		}, map[string]string{"evil.yaml": evil("ops")}, Options{},
			`units/evil.yaml:6: conflicts[0]: "ops" is a unit stored with kaylee run (no source), not of source "team-a"`, ""},
		{"a name no unit has", nil, map[string]string{"evil.yaml": evil("cache")}, Options{},
			`units/evil.yaml:6: conflicts[0]: no unit of source "team-a" is named "cache": a unit may only conflict with units of its own source`, ""},
		{"a unit of its own this pass prunes", func(w *teams) {
			w.sync("team-a", map[string]string{"cache.yaml": "name: cache\napps:\n- image: docker://c\n", "evil.yaml": evilNone}, Options{})
		}, map[string]string{"evil.yaml": evil("cache")}, Options{MaxPrune: 1},
			`units/evil.yaml:6: conflicts[0]: no unit of source "team-a" is named "cache"`, `"image":"docker://evil:1"`},
		{"a family with no unit", nil, map[string]string{"evil.yaml": evil("cache-*")}, Options{},
			`units/evil.yaml:6: conflicts[0]: "cache-*" matches no unit of source "team-a"`, ""},
		{"second entry", nil, map[string]string{"evil.yaml": evil("mine", "db"), "mine.yaml": "name: mine\napps:\n- image: docker://m\n"}, Options{},
			`units/evil.yaml:7: conflicts[1]: "db" is a unit of source "team-b"`, ""},
		{"own units", nil, map[string]string{"evil.yaml": evil("mine", "mine-*"), "mine.yaml": "name: mine\napps:\n- image: docker://m\n---\nname: mine-2\napps:\n- image: docker://m\n"}, Options{},
			"", `"conflicts":["mine","mine-*"]`},
		{"own unit defined in a failing file", nil, map[string]string{"evil.yaml": evil("mine"), "mine.yaml": "name: mine\nreplicas: -1\napps:\n- image: docker://m\n"}, Options{},
			`units/mine.yaml:2: replicas: -1 is out of range`, `"conflicts":["mine"]`},
		{"allowed by conflictsWith", nil, map[string]string{"evil.yaml": evil("web", "db")}, Options{ConflictsWith: []string{"web", "db-*"}},
			`units/evil.yaml:7: conflicts[1]: "db" is a unit of source "team-b"`, ""},
		{"allowed by conflictsWith, a family", nil, map[string]string{"evil.yaml": evil("web", "db")}, Options{ConflictsWith: []string{"web", "db-*", "db"}},
			"", `"conflicts":["web","db"]`},
		{"allowed by conflictsWith, a name no one has", nil, map[string]string{"evil.yaml": evil("cache-*")}, Options{ConflictsWith: []string{"cache-*"}},
			"", `"conflicts":["cache-*"]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newTeams(t, "team-a", "team-b")
			if r := w.sync("team-b", map[string]string{"web.yaml": teamBWeb, "db.yaml": teamBDB, "web-b.yaml": "name: web-b\napps:\n- image: docker://b\n"}, Options{}); len(r.Errors) > 0 {
				t.Fatalf("team-b: %s", errorStrings(r))
			}
			if tt.setup != nil {
				tt.setup(w)
			}
			before := w.stored()
			r := w.sync("team-a", tt.a, tt.opts)
			if got := errorStrings(r); tt.errs == "" && got != "" || !strings.Contains(got, tt.errs) {
				t.Fatalf("team-a's errors:\n%s\nwant:\n%s", got, tt.errs)
			}
			after := w.stored()
			if got := after["evil"]; tt.evil == "" && got != "" || !strings.Contains(got, tt.evil) {
				t.Fatalf("evil in etcd: %s, want %s", got, tt.evil)
			}
			for _, n := range []string{"web", "db", "web-b", "ops"} {
				if after[n] != before[n] {
					t.Fatalf("%s changed: %s → %s", n, before[n], after[n])
				}
			}
			rec, err := w.store.GetSyncRecord(context.Background(), "team-a")
			if err != nil || strings.Join(rec.ConflictsWith, ",") != strings.Join(tt.opts.ConflictsWith, ",") {
				t.Fatalf("team-a's record: %+v %v", rec, err)
			}
		})
	}
}

// The other direction: a unit another source makes after a family
// already names it (or a unit stored before these checks) is not created,
// unless the family's source is allowed to conflict with it. A conflict
// of a unit made with kaylee run is the operator's: not checked.
func TestConflictsOtherDirection(t *testing.T) {
	for _, tt := range []struct {
		name  string
		evil  string   // team-a's evil conflicts with
		allow []string // team-a's conflictsWith
		run   string   // a kaylee run unit stored first
		errs  string   // team-b's errors
		webB  bool     // web-b created
	}{
		{"a family of another source", "web-*", nil, "",
			`units/web-b.yaml:1: unit "web-b" is not created: unit "evil" of source "team-a" conflicts with it (conflicts: web-*), so fleet would keep the two apart; rename it, or have team-a's evil name its units (or allow web-b with conflictsWith on source team-a)`, false},
		{"allowed by that source", "web-*", []string{"web-*"}, "", "", true},
		{"a unit made with kaylee run", "web-a", nil, "name: ops\napps:\n- image: docker://ops\nconflicts: [web-b]\n", "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newTeams(t, "team-a", "team-b")
			if tt.run != "" {
				w.run(tt.run)
			}
			if r := w.sync("team-a", map[string]string{"evil.yaml": evil(tt.evil), "web.yaml": "name: web-a\napps:\n- image: docker://a\n"}, Options{ConflictsWith: tt.allow}); len(r.Errors) > 0 {
				t.Fatalf("team-a: %s", errorStrings(r))
			}
			r := w.sync("team-b", map[string]string{"web-b.yaml": "name: web-b\napps:\n- image: docker://b\n", "db.yaml": teamBDB}, Options{})
			if got := errorStrings(r); tt.errs == "" && got != "" || !strings.Contains(got, tt.errs) {
				t.Fatalf("team-b's errors:\n%s\nwant:\n%s", got, tt.errs)
			}
			after := w.stored()
			if _, ok := after["web-b"]; ok != tt.webB {
				t.Fatalf("web-b in etcd: %v, want %v", ok, tt.webB)
			}
			if after["db"] == "" {
				t.Fatal("db, a unit no one conflicts with, was not created")
			}
		})
	}
}
