package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// statusJSON is what kaylee status NAME -o json says, as a script reads it.
type statusJSON struct {
	Phase      string
	State      string
	StateNote  string
	Running    int
	Serving    int
	Revision   string
	RolledBack *struct {
		Revision    int64
		GitRevision string
		By          string
	}
	Suspended *struct{ By string }
}

func statusOf(t *testing.T, env map[string]string, name string) statusJSON {
	t.Helper()
	r := kaylee(t, env, "status", name, "-o", "json")
	var v statusJSON
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("status %s -o json: exit %d %v\n%s%s", name, r.code, err, r.stdout, r.err)
	}
	return v
}

// statusRow is the line of the status table about name.
func statusRow(t *testing.T, env map[string]string, name string) (header, row string) {
	t.Helper()
	lines := strings.Split(kaylee(t, env, "status").stdout, "\n")
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, name+" ") {
			return lines[0], l
		}
	}
	t.Fatalf("status lists no %s:\n%s", name, strings.Join(lines, "\n"))
	return "", ""
}

// A unit of a git source rolled back with kaylee rollback, then
// suspended: kaylee status (table, one unit, JSON) says so, and names the
// revision it runs, not the one git has.
func TestStatusShowsRollbackAndSuspension(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	startFleet(t, e, 2)
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_CACHE_DIR": t.TempDir(), "USER": "ops"}
	startKaylee(t, env, "server", "--min-ready", "500ms", "--lease-ttl", "2s")
	repo := gittest.NewRepo(t)
	sync := func() {
		t.Helper()
		if r := kaylee(t, env, "sync", "--once", "--repo", repo.FileURL(), "--path", "units", "--source", "team-a"); r.code != 0 {
			t.Fatalf("sync: exit %d\n%s%s", r.code, r.stdout, r.err)
		}
	}
	deployed := func(rev string) {
		t.Helper()
		waitFor(t, 60*time.Second, "web running at "+rev[:7], func() bool {
			v := statusOf(t, env, "web")
			return v.Phase == store.PhaseRunning && v.Revision == rev && v.Running == 2
		})
	}
	repo.Write(map[string]string{"units/web.yaml": "name: web\nreplicas: 2\napps:\n- image: docker://web:1\n"})
	rev1 := repo.Commit("web 1")
	sync()
	deployed(rev1)
	repo.Write(map[string]string{"units/web.yaml": "name: web\nreplicas: 2\napps:\n- image: docker://web:2\n"})
	rev2 := repo.Commit("web 2")
	sync()
	deployed(rev2)
	waitFor(t, 10*time.Second, "revision 2 deployed", func() bool {
		return strings.Contains(kaylee(t, env, "history", "web").stdout, "2         ")
	})
	if r := kaylee(t, env, "rollback", "web", "--wait", "--timeout", "2m"); r.code != 0 {
		t.Fatalf("rollback: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	sync() // git still has web 2: the source keeps the rollback

	v := statusOf(t, env, "web")
	if v.State != "rolled back" || v.RolledBack == nil || v.RolledBack.Revision != 1 || v.RolledBack.GitRevision != rev1 || !strings.HasPrefix(v.RolledBack.By, "ops@") {
		t.Errorf("status web -o json: state %q, rolledBack %+v; want rolled back to revision 1 (git %s) by ops@…", v.State, v.RolledBack, rev1[:7])
	}
	want := "rolled back to revision 1 (git " + rev1[:7]
	if !strings.Contains(v.StateNote, want) || !strings.Contains(v.StateNote, rev2[:7]+" is not applied") {
		t.Errorf("status web -o json: stateNote %q, want %q… and git's %s not applied", v.StateNote, want, rev2[:7])
	}
	header, row := statusRow(t, env, "web")
	if !strings.Contains(header, "SERVING") || !strings.Contains(row, "web   rolled back  2/2      2  ") || !strings.Contains(row, want) {
		t.Errorf("status table:\n%s\n%s\nwant web rolled back, 2/2 running, 2 serving, %q", header, row, want)
	}
	one := kaylee(t, env, "status", "web").stdout
	flat := strings.Join(strings.Fields(one), " ")
	for _, w := range []string{"Phase: rolled back (the scheduler: running)", "Note: " + want, "Replicas: 2 running, 2 serving, 2 desired"} {
		if !strings.Contains(flat, w) {
			t.Errorf("status web lacks %q:\n%s", w, one)
		}
	}
	if strings.Contains(flat, "Phase: running") {
		t.Errorf("status web says running as if it ran git's version:\n%s", one)
	}

	if r := kaylee(t, env, "suspend", "web"); r.code != 0 {
		t.Fatalf("suspend: exit %d %s", r.code, r.err)
	}
	v = statusOf(t, env, "web")
	if v.State != store.PhaseSuspended || v.Suspended == nil || !strings.HasPrefix(v.Suspended.By, "ops@") {
		t.Errorf("status web -o json after suspend: state %q, suspended %+v; want suspended by ops@…", v.State, v.Suspended)
	}
	if _, row := statusRow(t, env, "web"); !strings.HasPrefix(row, "web   suspended  ") {
		t.Errorf("status table after suspend: %q, want web suspended", row)
	}
}

// A unit suspended while no scheduler runs (or before it has taken the
// suspension up) shows suspended, not the running its last status says.
func TestStatusSuspendedBeforeTheScheduler(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "USER": "ops"}
	dir := writeFiles(t, map[string]string{"web.yaml": "name: web\nreplicas: 2\napps:\n- image: docker://web:1\n"})
	if r := kaylee(t, env, "run", dir); r.code != 0 {
		t.Fatalf("run: exit %d %s", r.code, r.err)
	}
	// The last status a scheduler wrote before it stopped.
	s := store.New(e.Client(t), store.DefaultPrefix)
	if err := s.PutStatus(context.Background(), &store.Status{Name: "web", Phase: store.PhaseRunning, SpecHash: "3cbb8d9a",
		Desired: 2, Running: 2, Serving: 2, Message: "2 of 2 running", Units: []store.UnitStatus{}, Time: time.Now()}, store.Fence{}); err != nil {
		t.Fatal(err)
	}
	if r := kaylee(t, env, "suspend", "web"); r.code != 0 {
		t.Fatalf("suspend: exit %d %s", r.code, r.err)
	}
	_, row := statusRow(t, env, "web")
	if !strings.HasPrefix(row, "web   suspended  2/2") || !strings.Contains(row, "suspended by ops@") || !strings.Contains(row, "no scheduler has taken it up yet") {
		t.Errorf("status row %q: want web suspended by ops@…, not yet taken up by a scheduler", row)
	}
	if v := statusOf(t, env, "web"); v.State != store.PhaseSuspended || v.Suspended == nil {
		t.Errorf("status web -o json: state %q, suspended %+v; want suspended", v.State, v.Suspended)
	}
}

// The original's fleet units of a name that is not stored (a status the
// scheduler writes with the phase left-alone): kaylee status lists them
// with what removes them (not for a name a refused unit holds: nothing
// removes those), lists their fleet units, and kaylee ls, which lists
// stored units, does not.
func TestStatusLeftAlone(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "USER": "ops"}
	dir := writeFiles(t, map[string]string{"web.yaml": "name: web\nreplicas: 2\napps:\n- image: docker://web:1\n"})
	if r := kaylee(t, env, "run", dir); r.code != 0 {
		t.Fatalf("run: exit %d %s", r.code, r.err)
	}
	s := store.New(e.Client(t), store.DefaultPrefix)
	for _, st := range []*store.Status{
		{Name: "gone", Phase: store.PhaseLeftAlone, Running: 1, Serving: 1, Time: time.Now(),
			Message: "1 fleet unit of monder/kaylee; no unit named gone is stored: left alone",
			Units:   []store.UnitStatus{{Name: "k2:gone:d4beae:030405:0.service", MachineID: "m0abcdef0123", MachineIP: "10.0.0.1", ActiveState: "active", SubState: "running"}}},
		{Name: "reports", Phase: store.PhaseLeftAlone, HeldBy: "web", Time: time.Now(),
			Message: "1 fleet unit of monder/kaylee; held by the refused unit web (its JSON's name is reports): left alone, never removed",
			Units:   []store.UnitStatus{{Name: "k2:reports:0a1b2c:030405:0.service", MachineID: "m1", ActiveState: "inactive", SubState: "dead"}}},
	} {
		if err := s.PutStatus(context.Background(), st, store.Fence{}); err != nil {
			t.Fatal(err)
		}
	}
	_, row := statusRow(t, env, "gone")
	if want := "gone left-alone 1/0 1 - - "; !strings.HasPrefix(strings.Join(strings.Fields(row), " "), want) ||
		!strings.HasSuffix(row, "1 fleet unit of monder/kaylee; no unit named gone is stored: left alone; kaylee migrate --remove-original removes them") {
		t.Errorf("status row %q: want %q… with the message and kaylee migrate --remove-original", row, want)
	}
	if _, row := statusRow(t, env, "reports"); !strings.HasSuffix(row, "left alone, never removed") {
		t.Errorf("status row %q: want the held message, and no command that would not remove them", row)
	}
	r := kaylee(t, env, "status", "gone")
	flat := strings.Join(strings.Fields(r.stdout), " ")
	for _, w := range []string{"Phase: left-alone", "Replicas: 1 running, 1 serving, 0 desired",
		"Message: 1 fleet unit of monder/kaylee; no unit named gone is stored: left alone; kaylee migrate --remove-original removes them",
		"k2:gone:d4beae:030405:0.service m0abcdef0123 10.0.0.1 active/running"} {
		if r.code != 0 || !strings.Contains(flat, w) {
			t.Errorf("status gone: exit %d, lacks %q:\n%s%s", r.code, w, r.stdout, r.err)
		}
	}
	if v := statusOf(t, env, "reports"); v.Phase != store.PhaseLeftAlone {
		t.Errorf("status reports -o json: phase %q, want %s", v.Phase, store.PhaseLeftAlone)
	}
	if r := kaylee(t, env, "ls"); r.code != 0 || r.stdout != "web\n" {
		t.Errorf("ls: exit %d %q, want only the stored unit web", r.code, r.stdout)
	}
}
