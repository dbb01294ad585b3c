package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

func writeConfig(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// kaylee sync --once --config with two sources, one checked with SSH
// signatures, one with OpenPGP: signed revisions apply, an unsigned one or
// one signed by another key writes nothing for its source (exit 3, the
// commit and the reason named) while the other source syncs on.
func TestSyncOnceVerifiedSources(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	dir := t.TempDir()
	alice := gittest.NewSSHSigner(t, "alice@example.com")
	mallory := gittest.NewSSHSigner(t, "mallory@example.com")
	bob := gittest.NewGPGSigner(t, "Bob <bob@example.com>")
	writeConfig(t, dir, "team-a.signers", alice.AllowedSigner(`namespaces="git"`)+"\n")
	writeConfig(t, dir, "team-b.asc", string(bob.PublicKey))

	repoA, repoB := gittest.NewRepo(t), gittest.NewRepo(t)
	repoA.Write(map[string]string{"prod/web.yaml": unitWeb})
	revA := repoA.CommitSigned("a1", alice)
	repoB.Write(map[string]string{"api.yaml": unitAPI})
	revB := repoB.CommitSigned("b1", bob)
	cfg := writeConfig(t, dir, "kaylee.yaml", fmt.Sprintf(`sources:
- name: team-a
  repo: %s
  path: prod
  verify: {mode: HEAD, allowedSigners: team-a.signers}
- name: team-b
  repo: %s
  allowEmpty: true
  verify: {keyring: team-b.asc}
`, repoA.FileURL(), repoB.FileURL()))
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_CACHE_DIR": t.TempDir()}

	r := kaylee(t, env, "sync", "--once", "--config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "team-a: main@"+revA[:7]+": 1 created") || !strings.Contains(r.stdout, "team-b: main@"+revB[:7]+": 1 created") {
		t.Fatalf("signed revisions: exit %d\n%s%s", r.code, r.stdout, r.err)
	}

	tests := []struct {
		name   string
		commit func() string
		want   string // on stderr, after the short commit
	}{
		{"unsigned", func() string {
			repoA.Write(map[string]string{"prod/web.yaml": unitWeb2})
			return repoA.Commit("unsigned")
		}, " (main) is not signed"},
		{"signed by a key not allowed", func() string {
			repoA.Write(map[string]string{"prod/web.yaml": unitWeb2})
			return repoA.CommitSigned("mallory", mallory)
		}, " (main) is signed with SSH key " + mallory.Fingerprint + " which is not in allowed signers file team-a.signers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rev := tt.commit()
			before := storedUnits(t, e)["web"]
			r := kaylee(t, env, "sync", "--once", "--config", cfg)
			if r.code != 3 || !strings.Contains(r.err, "kaylee: source team-a: commit "+rev[:7]+tt.want) ||
				!strings.Contains(r.err, "nothing was written, the last verified revision stays applied") {
				t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.err)
			}
			if !strings.Contains(r.stdout, "team-b: main@"+revB[:7]+": 0 created, 0 updated, 0 pruned, 1 unchanged") {
				t.Errorf("team-b did not sync beside the refused team-a:\n%s", r.stdout)
			}
			if got := storedUnits(t, e)["web"]; got != before || !strings.Contains(got, "nginx:1") {
				t.Fatalf("an unverified revision changed web: %s", got)
			}
			src := kaylee(t, env, "sources", "team-a")
			for _, want := range []string{"Applied:       " + revA, "Last attempt:  unverified", "Fetched:       " + rev + " (not applied)", tt.want} {
				if !strings.Contains(src.stdout, want) {
					t.Errorf("kaylee sources team-a lacks %q:\n%s", want, src.stdout)
				}
			}
		})
	}

	// A signed commit on top applies again; naming a source syncs it only.
	repoA.Write(map[string]string{"prod/web.yaml": unitWeb2})
	revA = repoA.CommitSigned("a2", alice)
	r = kaylee(t, env, "sync", "--once", "--config", cfg, "team-a")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "team-a: main@"+revA[:7]+": 0 created, 1 updated, 0 pruned, 0 unchanged" {
		t.Fatalf("signed again: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	if r := kaylee(t, env, "sync", "--once", "--config", cfg, "team-c"); r.code != exitSetup || !strings.Contains(r.err, `no source "team-c" in the config file (it has team-a, team-b)`) {
		t.Fatalf("unknown source: exit %d\n%s", r.code, r.err)
	}

	// allowEmpty alone lets a pass empty its source.
	repoB.Git("rm", "-q", "api.yaml")
	repoB.Write(map[string]string{"README.md": "no units for now\n"})
	repoB.CommitSigned("empty", bob)
	r = kaylee(t, env, "sync", "--once", "--config", cfg, "team-b")
	if _, left := storedUnits(t, e)["api"]; r.code != 0 || !strings.Contains(r.stdout, "1 pruned") || left {
		t.Fatalf("emptying with allowEmpty: exit %d\n%s%s", r.code, r.stdout, r.err)
	}

	// A config file and the one-source flags are not mixed.
	if r := kaylee(t, env, "sync", "--once", "--config", cfg, "--repo", repoA.Dir); r.code != exitSetup || !strings.Contains(r.err, "--config "+cfg+" and --repo (or KAYLEE_REPO) both given") {
		t.Fatalf("--config with --repo: exit %d\n%s", r.code, r.err)
	}
	bad := writeConfig(t, dir, "bad.yaml", "sources:\n- name: x\n  repo: r\n  verify: {mode: Commit, keyring: k}\n")
	if r := kaylee(t, env, "sync", "--once", "--config", bad); r.code != exitSetup || !strings.Contains(r.err, bad+`:4: sources[0].verify.mode: "Commit": use HEAD`) {
		t.Fatalf("bad config: exit %d\n%s", r.code, r.err)
	}
}

// Tag mode: only a signed annotated tag applies.
func TestSyncOnceVerifiedTag(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	dir := t.TempDir()
	alice := gittest.NewSSHSigner(t, "alice@example.com")
	writeConfig(t, dir, "signers", alice.AllowedSigner("")+"\n")
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"web.yaml": unitWeb})
	repo.Commit("not signed: the tag is")
	repo.TagSigned("v1", "release 1", alice)
	repo.Git("tag", "v1-light")
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_CACHE_DIR": t.TempDir()}
	cfg := func(ref string) string {
		return writeConfig(t, dir, ref+".yaml", fmt.Sprintf("sources:\n- name: rel\n  repo: %s\n  ref: %s\n  verify: {mode: Tag, allowedSigners: signers}\n", repo.FileURL(), ref))
	}
	if r := kaylee(t, env, "sync", "--once", "--config", cfg("v1-light")); r.code != 3 || !strings.Contains(r.err, "tag v1-light (commit") || !strings.Contains(r.err, "is a lightweight tag") {
		t.Fatalf("lightweight tag: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	if len(storedUnits(t, e)) != 0 {
		t.Fatal("a refused tag wrote")
	}
	if r := kaylee(t, env, "sync", "--once", "--config", cfg("v1")); r.code != 0 || !strings.Contains(r.stdout, "v1@") || !strings.Contains(r.stdout, "1 created") {
		t.Fatalf("signed tag: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	if r := kaylee(t, env, "sync", "--once", "--config", cfg("main")); r.code != 3 || !strings.Contains(r.err, "main is a branch; the ref must name an annotated tag") {
		t.Fatalf("Tag mode on a branch: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
}

// Units a git source owns: run, rm and restart refuse (exit 1, nothing
// changed, the source and file named, what to do instead); --force does
// it anyway; units of kaylee run are not protected.
func TestGitOwnedUnitsProtected(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"units/web.yaml": unitWeb})
	rev := repo.Commit("first")
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_CACHE_DIR": t.TempDir()}
	if r := kaylee(t, env, "sync", "--once", "--repo", repo.FileURL(), "--path", "units", "--source", "team-a"); r.code != 0 {
		t.Fatalf("sync: %d %s", r.code, r.err)
	}
	changed := writeFiles(t, map[string]string{"web.yaml": unitWeb2, "own.yaml": "name: own\napps:\n- image: docker://own\n"})
	before := storedUnits(t, e)["web"]
	owner := `unit "web" is owned by units/web.yaml in git source "team-a" (` + repo.FileURL() + ", main@" + rev[:7] + ")"
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"run", filepath.Join(changed, "web.yaml")}, owner + ": the next sync puts the file's version back. Commit the change to units/web.yaml instead"},
		{[]string{"run", changed}, owner + ": the next sync"},
		{[]string{"rm", "web"}, owner + ": removing it stops every replica, and the next sync creates it again. Delete units/web.yaml in git instead"},
		{[]string{"restart", "web"}, owner + ": git owns how it runs. Commit a change to units/web.yaml to roll it; or pass --force to restart web anyway; nothing was changed"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[:1], " "), func(t *testing.T) {
			r := kaylee(t, env, tt.args...)
			if r.code != 1 || !strings.Contains(r.err, tt.want) || !strings.Contains(r.err, "nothing was changed") {
				t.Fatalf("exit %d, want 1 with %q:\n%s%s", r.code, tt.want, r.stdout, r.err)
			}
			units := storedUnits(t, e)
			if units["web"] != before {
				t.Fatalf("web changed: %s", units["web"])
			}
			if _, ok := units["own"]; ok {
				t.Fatal("run stored own.yaml although web.yaml was refused: all or nothing")
			}
		})
	}
	// Unchanged git units may be run again: nothing changes.
	same := writeFiles(t, map[string]string{"web.yaml": unitWeb})
	if r := kaylee(t, env, "run", same); r.code != 0 || !strings.Contains(r.stdout, "web unchanged") {
		t.Fatalf("run of the unchanged file: %d %s%s", r.code, r.stdout, r.err)
	}
	if r := kaylee(t, env, "run", "--force", changed); r.code != 0 || !strings.Contains(r.err, "warning: "+owner) || !strings.Contains(storedUnits(t, e)["web"], "nginx:2") {
		t.Fatalf("run --force: %d %s%s", r.code, r.stdout, r.err)
	}
	if r := kaylee(t, env, "restart", "own"); r.code != 0 {
		t.Fatalf("restart of a unit of kaylee run: %d %s", r.code, r.err)
	}
	if r := kaylee(t, env, "rm", "--force", "web"); r.code != 0 || storedUnits(t, e)["web"] != "" {
		t.Fatalf("rm --force: %d %s%s", r.code, r.stdout, r.err)
	}

	// kaylee status names each unit's source and marks one whose file
	// fails in git.
	repo.Write(map[string]string{"units/web.yaml": unitWeb, "units/api.yaml": unitAPI})
	repo.Commit("web back, api")
	kaylee(t, env, "sync", "--once", "--repo", repo.FileURL(), "--path", "units", "--source", "team-a")
	repo.Write(map[string]string{"units/api.yaml": "name: api\nreplicas: lots\napps:\n- image: docker://api\n"})
	repo.Commit("api broken")
	if r := kaylee(t, env, "sync", "--once", "--repo", repo.FileURL(), "--path", "units", "--source", "team-a"); r.code != 1 {
		t.Fatalf("sync of a broken file: %d", r.code)
	}
	r := kaylee(t, env, "status")
	lines := map[string]string{}
	for _, l := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			lines[f[0]] = l
		}
	}
	if l := lines["api"]; !strings.Contains(l, " team-a! ") || !strings.Contains(l, "its file fails in git (units/api.yaml:2: replicas:") {
		t.Errorf("status of api: %q", l)
	}
	if l := lines["web"]; !strings.Contains(l, " team-a ") || strings.Contains(l, "fails in git") {
		t.Errorf("status of web: %q", l)
	}
	if l := lines["own"]; !strings.Contains(l, " - ") {
		t.Errorf("status of own (kaylee run): %q", l)
	}
	if !strings.Contains(r.stdout, "1 unit(s) marked ! have a file that fails in git: see kaylee sources") {
		t.Errorf("status lacks the footnote:\n%s", r.stdout)
	}
	r = kaylee(t, env, "status", "api", "-o", "json")
	if !strings.Contains(r.stdout, `"source": "team-a"`) || !strings.Contains(r.stdout, `"gitErrors": [`) {
		t.Errorf("status api -o json:\n%s", r.stdout)
	}
}

// Two kaylee sync --once on one cache directory at once (two CI jobs on
// one runner) take turns: both succeed.
func TestSyncOnceSharedCache(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"web.yaml": unitWeb, "api.yaml": unitAPI})
	rev := repo.Commit("first")
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_CACHE_DIR": t.TempDir()}
	var wg gosync.WaitGroup
	results := make([]result, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = kaylee(t, env, "sync", "--once", "--repo", repo.FileURL(), "--source", fmt.Sprintf("job%d", i%2))
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 && r.code != 1 || !strings.Contains(r.stdout, "main@"+rev[:7]) {
			t.Errorf("job %d: exit %d\n%s%s", i, r.code, r.stdout, r.err)
		}
	}
	// The two sources define the same units: whichever claimed them
	// first owns both, and the other is told so (exit 1), run after run.
	// Had both claimed them, each would now find them another's and
	// refuse to prune them all (exit 3).
	codes := map[int]int{}
	for _, src := range []string{"job0", "job1"} {
		r := kaylee(t, env, "sync", "--once", "--repo", repo.FileURL(), "--source", src)
		codes[r.code]++
		if r.code == 1 && !strings.Contains(r.stdout+r.err, "belongs to git source") {
			t.Errorf("%s: exit 1 without naming the owner\n%s%s", src, r.stdout, r.err)
		}
	}
	if codes[0] != 1 || codes[1] != 1 {
		t.Errorf("the sources' passes after the jobs exited %v (code: count); want one 0 (the owner) and one 1", codes)
	}
}
