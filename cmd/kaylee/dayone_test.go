package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// Issue 21.10: a unit with no engine runs with rkt, the seed's default,
// which no current host has. validate, render, run and sync --once say so
// on stderr and go on (exit 0); engine: rkt written out silences it.
func TestImplicitRktWarned(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"units/web.yaml": "name: web\napps:\n- image: nginx\n", "units/old.yaml": "name: old\nengine: rkt\napps:\n- image: quay.io/old\n"})
	repo.Commit("web")
	dir := filepath.Join(repo.Dir, "units")
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_CACHE_DIR": t.TempDir()}
	const want = "warning: units/web.yaml:2: engine: none given, so web runs with rkt (the seed format's default), which is archived and on no current host; write engine: docker, or engine: rkt to keep it\n"
	for _, args := range [][]string{
		{"validate", dir},
		{"render", dir},
		{"run", dir},
		{"sync", "--once", "--repo", repo.FileURL(), "--path", "units", "--source", "s"},
	} {
		r := kaylee(t, env, args...)
		got := strings.ReplaceAll(r.err, dir, "units") // sync names files in the repository already
		if r.code != 0 || got != want {
			t.Errorf("kaylee %s: exit %d, stderr %q, want 0 and %q", args[0], r.code, got, want)
		}
	}
}
