package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// The CI use under a freeze: kaylee freeze SOURCE; sync --once records the
// revision, applies nothing and exits 3 saying until when and how to
// override; kaylee sources and kaylee freeze show it; --force applies it,
// told with who; unfreeze ends it.
func TestFreezeCLI(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"units/web.yaml": unitWeb, "units/api.yaml": unitAPI})
	repo.Commit("first")
	cfg := writeFiles(t, map[string]string{"kaylee.yaml": "sources:\n- name: team\n  repo: " + repo.FileURL() + "\n  path: units\n"})
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_CACHE_DIR": t.TempDir(), "USER": "ann"}
	syncArgs := []string{"sync", "--once", "--config", cfg + "/kaylee.yaml"}
	if r := kaylee(t, env, syncArgs...); r.code != 0 {
		t.Fatalf("first sync: %d %s%s", r.code, r.stdout, r.err)
	}
	host, _ := os.Hostname()

	// Names: unknown, ambiguous.
	if r := kaylee(t, env, "freeze", "nope"); r.code == 0 || !strings.Contains(r.err, `"nope" is not a source or a unit: sources are team; units are api, web`) {
		t.Fatalf("unknown name: %d %s", r.code, r.err)
	}
	if r := kaylee(t, env, "run", writeFiles(t, map[string]string{"team.yaml": "name: team\napps: [{image: docker://t}]\n"})+"/team.yaml"); r.code != 0 {
		t.Fatalf("run: %s", r.err)
	}
	if r := kaylee(t, env, "freeze", "team"); r.code == 0 || !strings.Contains(r.err, `"team" is both a source and a unit: say which: --source or --unit`) {
		t.Fatalf("ambiguous name: %d %s", r.code, r.err)
	}
	if r := kaylee(t, env, "freeze", "team", "--until", "yesterday"); r.code == 0 || !strings.Contains(r.err, `--until "yesterday" is neither a time (2026-12-24T18:00:00+01:00, RFC 3339) nor a duration (2h)`) {
		t.Fatalf("bad until: %d %s", r.code, r.err)
	}
	r := kaylee(t, env, "freeze", "team", "--source", "--until", "2h", "--reason", "release 4.2")
	if r.code != 0 || !strings.Contains(r.stdout, "source team frozen until ") {
		t.Fatalf("freeze: %d %s%s", r.code, r.stdout, r.err)
	}

	repo.Write(map[string]string{"units/web.yaml": unitWeb2, "units/api.yaml": unitAPI})
	rev := repo.Commit("second")
	r = kaylee(t, env, syncArgs...)
	if r.code != 3 || !strings.Contains(r.err, "kaylee: source team: frozen until ") ||
		!strings.Contains(r.err, "(kaylee freeze by ann@"+host+": release 4.2): revision main@"+rev[:7]+" was recorded, nothing was applied; --force applies it anyway") {
		t.Fatalf("sync during a freeze: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	if !strings.Contains(storedUnits(t, e)["web"], "nginx:1") {
		t.Fatal("applied during a freeze")
	}
	r = kaylee(t, env, "sources")
	if !strings.Contains(r.stdout, "team: revision recorded, not applied: kaylee freeze by ann@") ||
		!strings.Contains(r.stdout, "team: revision "+rev[:7]+" held until ") {
		t.Fatalf("sources:\n%s%s", r.stdout, r.err)
	}
	r = kaylee(t, env, "freeze")
	if !strings.Contains(r.stdout, "KIND    NAME  ORIGIN  UNTIL") || !strings.Contains(r.stdout, "release 4.2 (by ann@"+host+")  "+rev[:7]) {
		t.Fatalf("freeze list:\n%s%s", r.stdout, r.err)
	}
	if r := kaylee(t, env, "freeze", "-o", "json"); !strings.Contains(r.stdout, `"origin": "manual"`) || !strings.Contains(r.stdout, `"held": "`+rev+`"`) {
		t.Fatalf("freeze -o json:\n%s", r.stdout)
	}

	// --force: applied, told as freeze-overridden by who.
	r = kaylee(t, env, append(syncArgs, "--force")...)
	if r.code != 0 || !strings.Contains(storedUnits(t, e)["web"], "nginx:2") {
		t.Fatalf("--force: %d %s%s", r.code, r.stdout, r.err)
	}
	r = kaylee(t, env, "events", "team")
	if !strings.Contains(r.stdout, "freeze-overridden") || !strings.Contains(r.stdout, "ann@"+host+" forced") {
		t.Fatalf("events:\n%s%s", r.stdout, r.err)
	}

	// --now needs a process that syncs.
	if r := kaylee(t, env, "sync", "--now", "team"); r.code == 0 || !strings.Contains(r.err, "no process syncs team now (sources with a leader: none)") {
		t.Fatalf("--now without a leader: %d %s", r.code, r.err)
	}
	if r := kaylee(t, env, "unfreeze", "team", "--source"); r.code != 0 || !strings.Contains(r.stdout, "source team unfrozen") {
		t.Fatalf("unfreeze: %d %s%s", r.code, r.stdout, r.err)
	}
	if r := kaylee(t, env, "freeze"); strings.TrimSpace(r.stdout) != "no freeze holds" {
		t.Fatalf("after unfreeze: %s", r.stdout)
	}
	s := store.New(e.Client(t), store.DefaultPrefix)
	if fs, err := s.ListFreezes(context.Background()); err != nil || len(fs) != 0 {
		t.Fatalf("freezes left: %v %v", fs, err)
	}
}

// kaylee sync --now reaches the process that syncs a source through its
// trigger key: without --force a frozen source stays frozen; with it the
// running loop applies once, told as freeze-overridden naming who.
func TestSyncNowForce(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"units/web.yaml": unitWeb})
	repo.Commit("first")
	cfg := writeFiles(t, map[string]string{"kaylee.yaml": "sources:\n- name: team\n  repo: " + repo.FileURL() + "\n  path: units\n"})
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_CACHE_DIR": t.TempDir(), "USER": "ann"}
	startKaylee(t, env, "sync", "--config", cfg+"/kaylee.yaml", "--interval", "1h", "--lease-ttl", "2s")
	s := store.New(e.Client(t), store.DefaultPrefix)
	ctx := context.Background()
	attempt := func() *store.SyncAttempt {
		as, _ := s.ListSyncAttempts(ctx)
		return as["team"]
	}
	waitFor(t, 30*time.Second, "the first pass", func() bool { return strings.Contains(storedUnits(t, e)["web"], "nginx:1") })
	if r := kaylee(t, env, "freeze", "team", "--reason", "release"); r.code != 0 {
		t.Fatalf("freeze: %s", r.err)
	}
	repo.Write(map[string]string{"units/web.yaml": unitWeb2})
	rev := repo.Commit("second")
	if r := kaylee(t, env, "sync", "--now"); r.code != 0 || !strings.Contains(r.stdout, "team: sync now: ") {
		t.Fatalf("sync --now: %d %s%s", r.code, r.stdout, r.err)
	}
	waitFor(t, 30*time.Second, "a frozen pass", func() bool {
		a := attempt()
		return a != nil && a.Result == store.AttemptFrozen && a.Revision == rev
	})
	if strings.Contains(storedUnits(t, e)["web"], "nginx:2") {
		t.Fatal("sync --now without --force went through the freeze")
	}
	r := kaylee(t, env, "sync", "--now", "--force", "team")
	if r.code != 0 || !strings.Contains(r.stdout, "through its freezes (--force)") {
		t.Fatalf("sync --now --force: %d %s%s", r.code, r.stdout, r.err)
	}
	waitFor(t, 30*time.Second, "the forced pass", func() bool { return strings.Contains(storedUnits(t, e)["web"], "nginx:2") })
	// kaylee unfreeze makes a pass at once (the interval is an hour).
	repo.Write(map[string]string{"units/web.yaml": unitWeb})
	repo.Commit("third")
	if r := kaylee(t, env, "sync", "--now"); r.code != 0 {
		t.Fatalf("sync --now: %s", r.err)
	}
	waitFor(t, 30*time.Second, "a frozen pass", func() bool { a := attempt(); return a != nil && a.Result == store.AttemptFrozen && a.Revision != rev })
	if r := kaylee(t, env, "unfreeze", "team"); r.code != 0 {
		t.Fatalf("unfreeze: %s", r.err)
	}
	waitFor(t, 30*time.Second, "the pass after unfreeze", func() bool { return strings.Contains(storedUnits(t, e)["web"], "nginx:1") })
	host, _ := os.Hostname()
	evs, _, err := s.ListEvents(ctx, "team", 0)
	if err != nil {
		t.Fatal(err)
	}
	var by []string
	for _, ev := range evs {
		if ev.Kind == store.EventFreezeOverridden {
			by = append(by, ev.By)
		}
	}
	if len(by) != 1 || by[0] != "ann@"+host {
		t.Fatalf("freeze-overridden events by %v, want one by ann@%s", by, host)
	}
}
