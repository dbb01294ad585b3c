package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"runtime"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// heapPeak samples the process's heap until stop is called and returns
// the highest value seen, in bytes.
func heapPeak() (stop func() uint64) {
	var (
		mu   gosync.Mutex
		peak uint64
	)
	done := make(chan struct{})
	go func() {
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			mu.Lock()
			peak = max(peak, m.HeapAlloc)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() uint64 {
		close(done)
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// Issue 20: a team commits a 42 KB alias bomb to its source. The agent
// that follows it and another team's source reports the file with its line
// and keeps the unit's last good version, with its heap bounded; the other
// source goes on syncing, before and after.
func TestAgentSurvivesAliasBomb(t *testing.T) {
	// Not parallel: heapPeak reads the whole process's heap, which other
	// tests' agents and etcds would add to.
	e := etcdtest.New(t)
	a, b := gittest.NewRepo(t), gittest.NewRepo(t)
	a.Write(map[string]string{"web.yaml": unitWeb})
	a.Commit("web")
	b.Write(map[string]string{"api.yaml": "name: api\napps:\n- image: docker://api:1\n"})
	b.Commit("api")
	cfg := writeConfig(t, t.TempDir(), "kaylee.yaml", fmt.Sprintf(
		"sources:\n- name: team-a\n  repo: %s\n- name: team-b\n  repo: %s\n", a.FileURL(), b.FileURL()))
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	startKaylee(t, env, "agent", "--config", cfg, "--cache-dir", t.TempDir(), "--listen", freePort(t),
		"--interval", "1s", "--lease-ttl", "2s")
	s := store.New(e.Client(t), store.DefaultPrefix)
	unit := func(name string) string {
		u, err := s.GetUnit(context.Background(), name)
		if err != nil || u == nil {
			return ""
		}
		return string(u.Raw)
	}
	waitFor(t, 60*time.Second, "both sources stored", func() bool {
		return strings.Contains(unit("web"), "nginx:1") && strings.Contains(unit("api"), "api:1")
	})
	webBefore := unit("web")

	var bomb strings.Builder
	bomb.WriteString("name: web\napps:\n- &a {image: x, args: [" + strings.TrimSuffix(strings.Repeat("a,", 10000), ",") + "]}\n")
	for range 5000 {
		bomb.WriteString("- *a\n")
	}
	runtime.GC()
	stop := heapPeak()
	a.Write(map[string]string{"web.yaml": bomb.String()})
	bombRev := a.Commit("bomb")
	b.Write(map[string]string{"api.yaml": "name: api\napps:\n- image: docker://api:2\n"})
	b.Commit("api 2")
	const want = "web.yaml:4: apps[1]: aliases expand to more than 10000 values"
	waitFor(t, 60*time.Second, "team-a's attempt names the bomb and team-b applies api:2", func() bool {
		rec, err := s.GetSyncRecord(context.Background(), "team-a")
		return err == nil && rec.Revision == bombRev && strings.Contains(fmt.Sprint(rec.Errors), want) &&
			strings.Contains(unit("api"), "api:2")
	})
	b.Write(map[string]string{"api.yaml": "name: api\napps:\n- image: docker://api:3\n"})
	b.Commit("api 3")
	waitFor(t, 30*time.Second, "team-b applies api:3 while team-a holds the bomb", func() bool {
		return strings.Contains(unit("api"), "api:3")
	})
	peak := stop()
	if got := unit("web"); got != webBefore {
		t.Fatalf("web in etcd: %s, want its last good version %s", got, webBefore)
	}
	// Before the bound, this pass alone took ~0.9 GB at 21 KB and ran
	// out of memory at 42 KB.
	if limit := uint64(256 << 20); peak > limit {
		t.Fatalf("the agent's heap peaked at %d MB while following the bomb, want under %d MB", peak>>20, limit>>20)
	}
	t.Logf("heap peak while following a 42 KB alias bomb: %d MB", peak>>20)
}

// Issue 20: one team's unit may not conflict with another team's. With
// kaylee sync --once over both sources: a conflict on the other team's
// unit is a file error (exit 1) and the unit is not created, "*" is
// refused at its line, and the operator's conflictsWith lets it through.
func TestSyncOnceConflictsAcrossSources(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	a, b := gittest.NewRepo(t), gittest.NewRepo(t)
	a.Write(map[string]string{"web.yaml": unitWeb})
	a.Commit("web")
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_CACHE_DIR": t.TempDir()}
	dir := t.TempDir()
	config := func(allow string) string {
		return writeConfig(t, dir, "kaylee.yaml", fmt.Sprintf("sources:\n- name: team-a\n  repo: %s\n- name: team-b\n  repo: %s\n%s",
			a.FileURL(), b.FileURL(), allow))
	}
	for _, tt := range []struct {
		name, evil, allow string
		code              int
		stderr            string
		stored            bool
	}{
		{"another team's unit", "name: evil\nglobal: true\napps:\n- image: docker://x\nconflicts: [web]\n", "", 1,
			`evil.yaml:5: conflicts[0]: "web" is a unit of source "team-a", not of source "team-b"`, false},
		{"everything", "name: evil\nglobal: true\napps:\n- image: docker://x\nconflicts: [\"*\"]\n", "", 1,
			`evil.yaml:5: conflicts[0]: "*" would conflict with every unit on the cluster, other teams' too`, false},
		{"allowed by the operator", "name: evil\nglobal: true\napps:\n- image: docker://x\nconflicts: [web]\n", "  conflictsWith: [web]\n", 0, "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b.Write(map[string]string{"evil.yaml": tt.evil})
			b.Commit(tt.name)
			r := kaylee(t, env, "sync", "--once", "--config", config(tt.allow))
			if r.code != tt.code || !strings.Contains(r.err, tt.stderr) {
				t.Fatalf("exit %d, want %d with %q\n%s%s", r.code, tt.code, tt.stderr, r.stdout, r.err)
			}
			s := storedUnits(t, e)
			if _, ok := s["evil"]; ok != tt.stored || s["web"] == "" {
				t.Fatalf("units in etcd: %v; want evil stored: %v, web kept", s, tt.stored)
			}
		})
	}
}

// Issue 21.5: one limit, one message, every path. A unit file one byte
// over deploy.MaxFileSize is refused by validate, render, run and sync
// with the same words, and nothing is stored; a unit's JSON that big,
// written into etcd by hand, is refused by the same words too.
func TestOneSizeLimitEveryPath(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	body := "name: big\napps:\n- image: docker://x\n"
	big := body + "#" + strings.Repeat("x", deploy.MaxFileSize+1-len(body)-2) + "\n"
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"units/big.yaml": big, "units/web.yaml": unitWeb})
	repo.Commit("big")
	file := filepath.Join(repo.Dir, "units", "big.yaml")
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_CACHE_DIR": t.TempDir()}
	const want = "big.yaml: 1048577 bytes; unit files over 1048576 bytes are refused"
	for _, args := range [][]string{
		{"validate", file},
		{"render", file},
		{"run", file},
		{"sync", "--once", "--repo", repo.FileURL(), "--path", "units"},
	} {
		r := kaylee(t, env, args...)
		if r.code != 1 || !strings.Contains(r.err, want) {
			t.Errorf("kaylee %s: exit %d, want 1 with %q\n%s%s", args[0], r.code, want, r.stdout, r.err)
		}
	}
	if s := storedUnits(t, e); s["big"] != "" || s["web"] == "" {
		t.Fatalf("units in etcd: %v; want web and no big", s)
	}
	// By hand: etcd takes a value this big; Kaylee reads it as a bad unit.
	value := `{"name":"big","apps":[{"image":"docker://x"}],"args":["` + strings.Repeat("x", deploy.MaxFileSize) + `"]}`
	if _, err := e.Client(t).Put(context.Background(), "/kaylee2/units/big", value); err != nil {
		t.Fatal(err)
	}
	// Issue 21.7: a stored unit's error names its key, not "<input>".
	if _, err := e.Client(t).Put(context.Background(), "/kaylee2/units/bad", `{"name":"bad","replicas":-1,"apps":[{"image":"docker://x"}]}`); err != nil {
		t.Fatal(err)
	}
	r := kaylee(t, env, "ls")
	if out := r.stdout + r.err; !strings.Contains(out, fmt.Sprintf("/kaylee2/units/big: %d bytes; unit files over 1048576 bytes are refused", len(value))) ||
		!strings.Contains(out, "/kaylee2/units/bad:1: replicas: -1 is out of range") || strings.Contains(out, "<input>") {
		t.Fatalf("kaylee ls with a unit's JSON of %d bytes and a bad unit in etcd: exit %d\n%s", len(value), r.code, out)
	}
}

// Issue 21.7: who made a change, when $USER is unset (systemd, cron, CI).
func TestWhoWithoutUSER(t *testing.T) {
	t.Parallel()
	u, err := osuser.Current()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no current user to compare with: %v", err)
		}
		t.Skipf("no current user: %v", err)
	}
	host, _ := os.Hostname()
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"USER": "alice"}, "alice@" + host},
		{map[string]string{"LOGNAME": "bob"}, "bob@" + host},
		{map[string]string{}, u.Username + "@" + host},
	} {
		a := &app{getenv: func(k string) string { return tt.env[k] }}
		if got := a.who(); got != tt.want {
			t.Errorf("who() with %v = %q, want %q", tt.env, got, tt.want)
		}
	}
}

// Issue 21.4: a CI runner's checkout is named after its origin, so two
// workspaces of one repository (two runners, two paths) are one source,
// not two that fight over the same units.
func TestSyncOnceCheckoutsShareASource(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"prod/web.yaml": unitWeb})
	repo.Commit("web")
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_CACHE_DIR": t.TempDir()}
	var outs []string
	for i := range 2 {
		ws := filepath.Join(t.TempDir(), []string{"ci-repo", "build-7f3a"}[i]) // runners name workspaces as they like
		if out, err := exec.Command("git", "clone", "-q", repo.Dir, ws).CombinedOutput(); err != nil {
			t.Fatalf("git clone: %v\n%s", err, out)
		}
		if out, err := exec.Command("git", "-C", ws, "remote", "set-url", "origin", "https://x-access-token:ghs_s3cret@github.com/acme/deploy.git").CombinedOutput(); err != nil {
			t.Fatalf("git remote set-url: %v\n%s", err, out)
		}
		r := kaylee(t, env, "sync", "--once", "--repo", ws, "--path", "prod")
		if r.code != 0 {
			t.Fatalf("workspace %d: exit %d\n%s%s", i, r.code, r.stdout, r.err)
		}
		outs = append(outs, r.stdout)
	}
	if !strings.Contains(outs[0], "1 created") || !strings.Contains(outs[1], "1 unchanged") {
		t.Fatalf("two workspaces: %q", outs)
	}
	r := kaylee(t, env, "sources")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "deploy-prod ") || strings.Contains(r.stdout, "ghs_s3cret") {
		t.Fatalf("kaylee sources:\n%s%s", r.stdout, r.err)
	}
}

// Issue 21.4: a stale source record is removed with kaylee sources rm, not
// etcdctl: refused while the source owns units or a process syncs it,
// with the way out named; its units stay.
func TestSourcesRm(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"units/web.yaml": unitWeb})
	repo.Commit("web")
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_CACHE_DIR": t.TempDir()}
	if r := kaylee(t, env, "sync", "--once", "--repo", repo.FileURL(), "--path", "units", "--source", "old"); r.code != 0 {
		t.Fatalf("sync: %d %s", r.code, r.err)
	}
	for _, tt := range []struct {
		args   []string
		code   int
		out    string
		exists bool // the record after
	}{
		{[]string{"sources", "rm", "ghost"}, 1, `kaylee: no git source named "ghost" (see kaylee sources)`, true},
		{[]string{"sources", "rm", "old"}, 1, `kaylee: source "old" owns 1 unit(s) (web): delete their files in git and let it sync, or remove them with kaylee rm, first; or keep them, with no git source to prune them; or pass --keep-units; nothing was changed`, true},
		{[]string{"sources", "rm", "old", "--keep-units"}, 0, "source old removed", false},
		{[]string{"sources", "rm", "old"}, 1, `no git source named "old"`, false},
	} {
		r := kaylee(t, env, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stdout+r.err, tt.out) {
			t.Fatalf("kaylee %s: exit %d, want %d with %q\n%s%s", strings.Join(tt.args, " "), r.code, tt.code, tt.out, r.stdout, r.err)
		}
		s := store.New(e.Client(t), store.DefaultPrefix)
		if _, err := s.GetSyncRecord(context.Background(), "old"); (err == nil) != tt.exists {
			t.Fatalf("after kaylee %s: record: %v, want it there: %v", strings.Join(tt.args, " "), err, tt.exists)
		}
	}
	if storedUnits(t, e)["web"] == "" {
		t.Fatal("sources rm removed the unit")
	}
	// A source a process leads is not removed.
	cfg := writeConfig(t, t.TempDir(), "kaylee.yaml", fmt.Sprintf("sources:\n- name: live\n  repo: %s\n  path: units\n", repo.FileURL()))
	startKaylee(t, env, "agent", "--config", cfg, "--cache-dir", t.TempDir(), "--listen", freePort(t), "--interval", "1h", "--lease-ttl", "2s")
	waitFor(t, 30*time.Second, "the agent leads source live", func() bool {
		l, err := store.New(e.Client(t), store.DefaultPrefix).SourceLeaders(context.Background())
		return err == nil && l["live"] != ""
	})
	if r := kaylee(t, env, "sources", "rm", "live", "--keep-units"); r.code != 1 || !strings.Contains(r.err, `source "live" is synced now by `) {
		t.Fatalf("rm of a led source: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
}

// Issue 21.4: kaylee sync's setup errors have their own exit code (4), so
// that CI tells a wrong job from a repository whose files failed (1).
func TestSyncSetupErrorsExit4(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"units/web.yaml": unitWeb})
	repo.Commit("web")
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_CACHE_DIR": t.TempDir()}
	base := []string{"sync", "--once", "--repo", repo.FileURL(), "--path", "units"}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no known_hosts", []string{"sync", "--once", "--repo", "ssh://git@127.0.0.1:1/units.git", "--known-hosts", "/nonexistent/known_hosts"}, "--known-hosts: known hosts file /nonexistent/known_hosts"},
		{"a missing key", []string{"sync", "--once", "--repo", "ssh://git@127.0.0.1:1/units.git", "--ssh-key", "/nonexistent/key", "--insecure-skip-host-key-check"}, "--ssh-key: SSH key /nonexistent/key"},
		{"a bad flag value", append(base, "--max-prune", "abc"), "--max-prune"},
		{"an unknown flag", append(base, "--max-prunes", "0.5"), "unknown flag: --max-prunes"},
		{"a bad output", append(base, "-o", "yaml"), "yaml"},
		{"a missing config file", []string{"sync", "--once", "--config", "/nonexistent/kaylee.yaml"}, "/nonexistent/kaylee.yaml"},
	} {
		r := kaylee(t, env, tt.args...)
		if r.code != exitSetup || !strings.Contains(r.err, tt.want) {
			t.Errorf("%s: exit %d, want %d with %q\n%s%s", tt.name, r.code, exitSetup, tt.want, r.stdout, r.err)
		}
	}
	if len(storedUnits(t, e)) != 0 {
		t.Fatal("a setup error stored something")
	}
}
