package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coreos/fleet/client"
	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// planWorld is a cluster for kaylee plan: etcd, a simulated fleet of three
// machines (az=a disk=ssd, az=a disk=ssd, az=b disk=hdd), and a source
// synced once from a repository with api (2 replicas), cache and old.
type planWorld struct {
	e    *etcdtest.Server
	env  map[string]string
	repo *gittest.Repo
	c    *fleetsim.Cluster
	ids  []string // the machines' IDs, short, by fleetsim's index (IP 192.0.2.i+1)
}

// on is "runs on"'s list of machines i..., in ID order.
func (w *planWorld) on(is ...int) string {
	sort.Slice(is, func(a, b int) bool { return w.ids[is[a]] < w.ids[is[b]] })
	parts := make([]string, len(is))
	for k, i := range is {
		parts[k] = fmt.Sprintf("%s (192.0.2.%d)", w.ids[i], i+1)
	}
	return strings.Join(parts, ", ")
}

// machines is the machine list of an error, in ID order.
func (w *planWorld) machines() string {
	md := []string{"az=a,disk=ssd", "az=a,disk=ssd", "az=b,disk=hdd"}
	is := []int{0, 1, 2}
	sort.Slice(is, func(a, b int) bool { return w.ids[is[a]] < w.ids[is[b]] })
	parts := make([]string, len(is))
	for k, i := range is {
		parts[k] = w.ids[i] + " " + md[i]
	}
	return "3 live machines: " + strings.Join(parts, "; ")
}

func newPlanWorld(t *testing.T) *planWorld {
	t.Helper()
	e := etcdtest.New(t)
	c, err := fleetsim.Start(context.Background(), fleetsim.Config{Endpoints: e.Endpoints(),
		Machines: fleetsim.Machines(3, map[string]string{"az": "a", "disk": "ssd"}, map[string]string{"az": "a", "disk": "ssd"}, map[string]string{"az": "b", "disk": "hdd"}),
		TTL:      4 * time.Second, EngineInterval: time.Second, StartDelay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	w := &planWorld{e: e, c: c, repo: gittest.NewRepo(t),
		env: map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_CACHE_DIR": t.TempDir()}}
	for _, m := range c.Machines() {
		w.ids = append(w.ids, m.ID()[:8])
	}
	w.repo.Write(map[string]string{
		"units/api.yaml":   "name: api\nreplicas: 2\nmaxReplicasPerHost: 1\nengine: docker\napps:\n- image: docker://api:1\n",
		"units/cache.yaml": "name: cache\nengine: docker\napps:\n- image: docker://redis\nmachine: [az=b]\n",
		"units/old.yaml":   "name: old\nengine: docker\napps:\n- image: docker://old\n",
	})
	w.repo.Commit("v1")
	if r := kaylee(t, w.env, "sync", "--once", "--source", "main", "--source", "main", "--repo", w.repo.Dir, "--path", "units"); r.code != 0 {
		t.Fatalf("sync --once: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	return w
}

// etcdRevision is etcd's revision: it moves with every write.
func (w *planWorld) etcdRevision(t *testing.T) int64 {
	t.Helper()
	r, err := w.e.Client(t).Get(context.Background(), "/")
	if err != nil {
		t.Fatal(err)
	}
	return r.Header.Revision
}

// TestPlanCommand: kaylee plan shows each unit's change (the field diff
// kaylee sync --once --dry-run shows) and where it could run on the
// simulated fleet; a unit no machine can take is FILE:LINE: field: why,
// exit 1; fixed, exit 0. It writes nothing to etcd and creates no fleet
// unit. kaylee sync --once --dry-run --placement says the same.
func TestPlanCommand(t *testing.T) {
	t.Parallel()
	w := newPlanWorld(t)
	w.repo.Write(map[string]string{
		"units/api.yaml": "name: api\nreplicas: 3\nmaxReplicasPerHost: 1\nengine: docker\napps:\n- image: docker://api:1\n",
		"units/db.yaml":  "name: db\nengine: docker\napps:\n- image: docker://postgres\nmachine: [disk=nvme]\n",
		"units/web.yaml": "name: web\nreplicas: 3\nmaxReplicasPerHost: 2\nengine: docker\napps:\n- image: docker://nginx\nmachine: [az=a]\n",
	})
	w.repo.Git("rm", "-q", "units/old.yaml")
	w.repo.Commit("v2")
	before := w.etcdRevision(t)

	r := kaylee(t, w.env, "plan", "--source", "main", "--repo", w.repo.Dir, "--path", "units")
	if r.code != 1 {
		t.Fatalf("plan: exit %d, want 1 (db can run on no machine)\n%s%s", r.code, r.stdout, r.err)
	}
	dbErr := fmt.Sprintf("units/db.yaml:5: machine: no live machine has disk=nvme (%s); change machine, or give machines that metadata (fleetd's metadata setting)", w.machines())
	want := fmt.Sprintf(`update    api (units/api.yaml)
          ~ replicas: 2 → 3
          runs on: %[1]s (3 of 3 machines match)
unchanged cache (units/cache.yaml)
          runs on: %[2]s (1 of 3 machines match)
create    db (units/db.yaml)
          cannot run: %[3]s
prune     old (units/old.yaml)
create    web (units/web.yaml)
          runs on: %[4]s (2 of 3 machines match)
`, w.on(0, 1, 2), w.on(2), dbErr, w.on(0, 1))
	if !strings.HasPrefix(r.stdout, want) || !strings.Contains(r.stdout, "2 created, 1 updated, 1 pruned, 1 unchanged (dry run: nothing written); 1 can run on no machine\n") {
		t.Errorf("plan: stdout\n%s\nwant\n%s…1 can run on no machine", r.stdout, want)
	}
	if !strings.Contains(r.err, dbErr+"\n") {
		t.Errorf("plan: stderr\n%s\nwant the line\n%s", r.err, dbErr)
	}

	r = kaylee(t, w.env, "plan", "--source", "main", "--repo", w.repo.Dir, "--path", "units", "-o", "json")
	if r.code != 1 {
		t.Fatalf("plan -o json: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	var got struct {
		Revision string
		Units    []struct {
			Name, File, Change string
			Diff               []string
			Machines           []struct{ ID, IP string }
			Match, Live        *int
			Error              *struct {
				File, Field, Message string
				Line                 int
			}
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("plan -o json: %v\n%s", err, r.stdout)
	}
	byName := map[string]int{}
	for i, u := range got.Units {
		byName[u.Name] = i
	}
	api, db := got.Units[byName["api"]], got.Units[byName["db"]]
	if api.Change != "update" || len(api.Diff) != 1 || api.Diff[0] != "~ replicas: 2 → 3" || len(api.Machines) != 3 || *api.Match != 3 || *api.Live != 3 || api.Error != nil {
		t.Errorf("plan -o json: api is %+v", api)
	}
	if db.Change != "create" || db.Error == nil || db.Error.File != "units/db.yaml" || db.Error.Line != 5 || db.Error.Field != "machine" ||
		!strings.HasPrefix(db.Error.Message, "no live machine has disk=nvme") || len(db.Machines) != 0 || db.Match == nil || *db.Match != 0 {
		t.Errorf("plan -o json: db is %+v (error %+v)", db, db.Error)
	}
	if u := got.Units[byName["old"]]; u.Change != "prune" || u.Match != nil || u.Machines != nil {
		t.Errorf("plan -o json: old is %+v", u)
	}

	r = kaylee(t, w.env, "sync", "--once", "--dry-run", "--placement", "--source", "main", "--repo", w.repo.Dir, "--path", "units")
	if r.code != 1 || !strings.HasPrefix(r.stdout, want) || !strings.Contains(r.err, dbErr) {
		t.Errorf("sync --once --dry-run --placement: exit %d (want 1)\n%s%s", r.code, r.stdout, r.err)
	}

	if after := w.etcdRevision(t); after != before {
		t.Errorf("plan wrote to etcd: revision %d → %d", before, after)
	}
	if us, err := w.c.API().Units(); err != nil || len(us) != 0 {
		t.Errorf("plan touched fleet: %d units (%v)", len(us), err)
	}

	w.repo.Write(map[string]string{"units/db.yaml": "name: db\nengine: docker\napps:\n- image: docker://postgres\nmachine: [disk=ssd]\n"})
	w.repo.Commit("v3")
	r = kaylee(t, w.env, "plan", "--source", "main", "--repo", w.repo.Dir, "--path", "units")
	if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("create    db (units/db.yaml)\n          runs on: %s (2 of 3 machines match)\n", w.on(0, 1))) {
		t.Errorf("plan with db fixed: exit %d (want 0)\n%s%s", r.code, r.stdout, r.err)
	}
}

// A conflicts entry that leaves no machine, on fleet's own engine: a
// fleet unit of cache's runs on every machine (global), web names cache
// in conflicts. The error is at web's conflicts line; the local-files
// form (PATH..., --source) plans the same.
func TestPlanConflictsOnFleet(t *testing.T) {
	t.Parallel()
	w := newPlanWorld(t)
	api := w.c.API()
	cache := &schema.Unit{Name: "k2:cache:abcdef:123456:0.service", DesiredState: "launched", Options: []*schema.UnitOption{
		{Section: "Service", Name: "ExecStart", Value: "/bin/sleep 1000"}, {Section: "X-Fleet", Name: "Global", Value: "true"}}}
	if err := api.CreateUnit(cache); err != nil {
		t.Fatal(err)
	}
	waitStates(t, api, cache.Name, 3)
	w.repo.Write(map[string]string{
		"units/web.yaml": "name: web\nreplicas: 2\nengine: docker\napps:\n- image: docker://nginx\nconflicts: [cache]\n",
	})
	w.repo.Commit("web")
	const wantErr = "units/web.yaml:6: conflicts: on every machine that matches runs k2:cache:abcdef:123456:0.service, which its conflicts keep it away from; change conflicts, or make room on a machine\n"
	r := kaylee(t, w.env, "plan", "--source", "main", "--repo", w.repo.Dir, "--path", "units")
	if r.code != 1 || !strings.Contains(r.err, wantErr) || !strings.Contains(r.stdout, "create    web (units/web.yaml)\n          cannot run: "+wantErr) {
		t.Errorf("plan: exit %d (want 1)\n%s%s\nwant on stderr\n%s", r.code, r.stdout, r.err, wantErr)
	}
	r = kaylee(t, w.env, "plan", "--source", "main", w.repo.Dir+"/units")
	if local := w.repo.Dir + "/" + wantErr; r.code != 1 || !strings.Contains(r.err, local) {
		t.Errorf("plan PATH: exit %d (want 1)\n%s%s\nwant on stderr\n%s", r.code, r.stdout, r.err, local)
	}
}

// waitStates waits until fleet's agents report unit name on n machines.
func waitStates(t *testing.T, api client.API, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		states, err := api.UnitStates()
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, s := range states {
			if s.Name == name {
				got++
			}
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has states on %d machines, want %d", name, got, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Exit codes a CI job gates on: 2 when fleet cannot be read, 4 for a
// wrong flag (--placement without --dry-run, -o yaml).
func TestPlanExitCodes(t *testing.T) {
	t.Parallel()
	w := newPlanWorld(t)
	for _, tt := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"plan", "--source", "main", "--repo", w.repo.Dir, "--path", "units"}, 0, ""},
		{[]string{"plan", "--source", "main", "--repo", w.repo.Dir, "--path", "units", "--fleet-endpoint", "http://127.0.0.1:1"}, 2, "kaylee: cannot read fleet: "},
		{[]string{"plan", "--repo", w.repo.Dir, "-o", "yaml"}, 4, `-o "yaml": use text or json`},
		{[]string{"sync", "--once", "--placement", "--repo", w.repo.Dir}, 4, "--placement needs --once --dry-run"},
		{[]string{"plan", "--no-such-flag"}, 4, "unknown flag: --no-such-flag"},
	} {
		r := kaylee(t, w.env, tt.args...)
		if r.code != tt.code || !strings.Contains(r.err, tt.err) {
			t.Errorf("kaylee %s: exit %d (want %d)\n%s%s", strings.Join(tt.args, " "), r.code, tt.code, r.stdout, r.err)
		}
	}
}

// TestPlanDuringFreeze: a freeze fails no plan (a pull request may merge
// while the cluster is frozen): the held changes are planned and placed,
// each saying what holds it; exit 0, or 1 for a unit no machine can take.
func TestPlanDuringFreeze(t *testing.T) {
	t.Parallel()
	w := newPlanWorld(t)
	if r := kaylee(t, w.env, "freeze", "main", "--reason", "release 4.2"); r.code != 0 {
		t.Fatalf("freeze main: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	w.repo.Write(map[string]string{
		"units/api.yaml": "name: api\nreplicas: 3\nmaxReplicasPerHost: 1\nengine: docker\napps:\n- image: docker://api:1\n",
	})
	w.repo.Commit("v2")
	r := kaylee(t, w.env, "plan", "--source", "main", "--repo", w.repo.Dir, "--path", "units")
	if r.code != 0 {
		t.Fatalf("plan during a freeze: exit %d, want 0\n%s%s", r.code, r.stdout, r.err)
	}
	for _, want := range []string{"api (units/api.yaml)", "held by the freeze of source main", "release 4.2", "~ replicas: 2 → 3", "runs on: " + w.on(0, 1, 2) + " (3 of 3 machines match)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("plan during a freeze: stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	w.repo.Write(map[string]string{"units/db.yaml": "name: db\nengine: docker\napps:\n- image: docker://postgres\nmachine: [disk=nvme]\n"})
	w.repo.Commit("v3")
	r = kaylee(t, w.env, "plan", "--source", "main", "--repo", w.repo.Dir, "--path", "units")
	if r.code != 1 || !strings.Contains(r.err, "units/db.yaml:5: machine: no live machine has disk=nvme") {
		t.Errorf("plan during a freeze, db unschedulable: exit %d, want 1 with db's FILE:LINE\n%s%s", r.code, r.stdout, r.err)
	}
}
