package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// history, rollback, suspend and resume as a user runs them, against a
// kaylee server on fleet's engine and agents.
func TestHistoryRollbackSuspend(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	startFleet(t, e, 2)
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "USER": "ops"}
	srv := startKaylee(t, env, "server", "--min-ready", "500ms", "--lease-ttl", "2s")
	dir := writeFiles(t, map[string]string{
		"v1.yaml": "name: web\nreplicas: 2\napps:\n- image: docker://web:1\n",
		"v2.yaml": "name: web\nreplicas: 2\napps:\n- image: docker://web:2\n",
		"v3.yaml": "name: web\nreplicas: 2\napps:\n- image: docker://web:3\n",
	})
	must := func(want string, args ...string) string {
		t.Helper()
		r := kaylee(t, env, args...)
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("kaylee %v: exit %d\nstdout %q\nstderr %q\nwant stdout containing %q\nserver:\n%s", args, r.code, r.stdout, r.err, want, srv.errb.String())
		}
		return r.stdout
	}
	fails := func(want string, args ...string) {
		t.Helper()
		r := kaylee(t, env, args...)
		if r.code == 0 || !strings.Contains(r.err, want) {
			t.Fatalf("kaylee %v: exit %d\nstdout %q\nstderr %q\nwant a failure containing %q", args, r.code, r.stdout, r.err, want)
		}
	}
	must("web: running, 2/2", "run", "--wait", "--timeout", "2m", filepath.Join(dir, "v1.yaml"))
	fails("no earlier revision than the stored one was ever deployed (see kaylee history web)", "rollback", "web")
	must("web: running, 2/2", "run", "--wait", "--timeout", "2m", filepath.Join(dir, "v2.yaml"))
	waitFor(t, 10e9, "revision 2 deployed", func() bool {
		return strings.Contains(kaylee(t, env, "history", "web").stdout, "2         ")
	})

	must("web rolled back to revision 1", "rollback", "web", "--wait", "--timeout", "2m")
	var hist []struct {
		Revision   int64
		Outcome    string
		RollbackTo int64
	}
	waitFor(t, 10e9, "revision 3 deployed", func() bool {
		_ = json.Unmarshal([]byte(kaylee(t, env, "history", "web", "-o", "json").stdout), &hist)
		return len(hist) == 3 && hist[2].Outcome == "deployed"
	})
	if hist[0].Outcome != "deployed" || hist[1].Outcome != "rolled back" || hist[2].RollbackTo != 1 {
		t.Fatalf("history after the rollback: %+v", hist)
	}
	out := must("REVISION", "history", "web")
	if !strings.Contains(out, "rolled back") || !strings.Contains(out, "rollback to 1") {
		t.Fatalf("history table:\n%s", out)
	}

	fails(`"99" is neither a revision number nor a spec hash in its history (revisions 1 to 3)`, "rollback", "web", "--to", "99")
	fails("revision 3 is what is stored now", "rollback", "web", "--to", "3")
	fails(`no unit named "ghost"`, "rollback", "ghost")
	fails(`no unit named "ghost"`, "history", "ghost")
	fails(`no unit named "ghost"`, "suspend", "ghost")
	fails(`no unit named "ghost"`, "resume", "ghost")
	fails("--history 0: keep at least 1 revision", "server", "--history", "0")

	must("web suspended: the scheduler leaves it as it is until kaylee resume web", "suspend", "web")
	must("web was suspended already", "suspend", "web")
	waitFor(t, 10e9, "status suspended", func() bool {
		return strings.Contains(kaylee(t, env, "status").stdout, "suspended")
	})
	r := kaylee(t, env, "run", "--wait", "--timeout", "1m", filepath.Join(dir, "v3.yaml"))
	if r.code == 0 || !strings.Contains(r.err, "web is suspended: the scheduler rolls nothing out until kaylee resume web") {
		t.Fatalf("run --wait on a suspended unit: exit %d %q %q", r.code, r.stdout, r.err)
	}
	waitFor(t, 10e9, "the suspended status to name the stored spec", func() bool {
		s := must("suspended by ops@", "status", "web")
		return strings.Contains(s, "is rolled out on resume")
	})
	must("web resumed", "resume", "web")
	must("web: running, 2/2", "run", "--wait", "--timeout", "2m", filepath.Join(dir, "v3.yaml"))
	must("web was neither suspended nor rolled back: nothing to do", "resume", "web")
}

// Issue 21, item 2: a revision that changed only replicas shares its spec
// hash with the one before it, and kaylee history says what changed and
// that no replica was replaced.
func TestHistoryTableNotesInPlaceChange(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)
	var b strings.Builder
	writeHistory(&b, []*store.HistoryEntry{
		{Unit: "web", Revision: 1, SpecHash: "1a2b3c4d", Time: now.Add(-10 * time.Minute), Outcome: store.OutcomeDeployed},
		{Unit: "web", Revision: 2, SpecHash: "1a2b3c4d", Time: now.Add(-time.Minute), Outcome: store.OutcomeDeployed, Change: "replicas 2 → 3"},
	}, now)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[2], "replicas 2 → 3: no replica replaced") || !strings.HasPrefix(lines[2], "2 ") || !strings.Contains(lines[2], "1a2b3c4d") {
		t.Fatalf("history table:\n%s", b.String())
	}
}
