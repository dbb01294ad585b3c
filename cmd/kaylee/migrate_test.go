package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/fleet/client"
	"github.com/coreos/fleet/schema"
	"github.com/coreos/fleet/unit"

	"github.com/kaylee-gitops/kaylee/fleet"
	"github.com/kaylee-gitops/kaylee/fleet/fleetreg"
	"github.com/kaylee-gitops/kaylee/fleet/fleetsim/fleetsimtest"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
	"github.com/kaylee-gitops/kaylee/store/v2units"
)

// migrateWorld is a cluster the original ran on, with one of each thing
// kaylee migrate lists: v2 units to copy (new), the same as v3, differing
// from v3, and refused; a v3 unit refused; the original's fleet units of
// stored names (adopted) and of a name not stored (left alone); Kaylee's
// own and a foreign fleet unit (not listed).
func migrateWorld(t *testing.T) (env map[string]string, api client.API) {
	t.Helper()
	e := etcdtest.New(t)
	ctx, c := context.Background(), e.Client(t)
	keys, err := v2units.NewKeys(v2units.KeysConfig{Endpoints: e.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	web := `{"name":"web","apps":[{"image":"docker://nginx"}]}`
	for k, v := range map[string]string{
		"countly": seedCountlyJSON(t),
		"web":     web,
		"api":     `{"name":"api","replicas":2,"apps":[{"image":"docker://api:1"}]}`,
		"cron":    `{"name":"cron","replicas":-2,"apps":[{"image":"docker://cron"}]}`,
	} {
		if _, err := keys.Set(ctx, "/kaylee2/units/"+k, v, nil); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range map[string]string{
		"web":    web,
		"api":    `{"name":"api","replicas":3,"apps":[{"image":"docker://api:2"}]}`,
		"worker": `{"name":"worker","replicas":"two","apps":[{"image":"docker://worker"}]}`,
		// The original ran it as frontend (its JSON's name): held.
		"site": `{"name":"frontend","apps":[{"image":"docker://site"}]}`,
	} {
		if _, err := c.Put(ctx, "/kaylee2/units/"+k, v); err != nil {
			t.Fatal(err)
		}
	}
	if api, err = fleet.NewAPI(fleet.Config{EtcdEndpoints: e.Endpoints()}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		"k2:countly:0a1b2c:d3e4f5:1.service", "k2:countly:0a1b2c:d3e4f5:2.service", "k2:countly:0a1b2c:9f8e7d:3.service",
		"k2:web:123abc:456def:1.service",
		"k2:worker:aaaaaa:bbbbbb:1.service",
		"k2:legacy:cccccc:dddddd:1.service", "k2:legacy:cccccc:eeeeee:2.service",
		"k2:frontend:abcdef:123456:1.service", // site's: held
		"k2:web:0123abcd:456def:0.service",    // Kaylee's own
		"monitoring.service",                  // someone else's
	} {
		u := &schema.Unit{Name: name, DesiredState: "loaded", Options: []*schema.UnitOption{{Section: "Service", Name: "ExecStart", Value: "/bin/sleep 1000"}}}
		if err := api.CreateUnit(u); err != nil {
			t.Fatal(err)
		}
	}
	return map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}, api
}

// golden compares got with testdata/NAME (KAYLEE_UPDATE_GOLDEN=1 rewrites
// it).
func golden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if os.Getenv("KAYLEE_UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("output differs from %s (KAYLEE_UPDATE_GOLDEN=1 rewrites it):\n--- got\n%s\n--- want\n%s", file, got, want)
	}
}

// kaylee migrate --dry-run lists (a) the v2 units to copy, (b) the
// original's units adopted, (c) the refused JSON with reason and fix, (d)
// the original's units left alone; it exits 1 because JSON is refused, and
// changes nothing.
func TestMigrateDryRun(t *testing.T) {
	t.Parallel()
	env, api := migrateWorld(t)
	r := kaylee(t, env, "migrate", "--dry-run")
	if r.code != 1 {
		t.Fatalf("migrate --dry-run: exit %d (want 1: JSON refused)\n%s%s", r.code, r.stdout, r.err)
	}
	golden(t, "migrate-dry-run.txt", r.stdout)
	r = kaylee(t, env, "migrate", "--dry-run", "-o", "json")
	if r.code != 1 {
		t.Fatalf("migrate --dry-run -o json: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	golden(t, "migrate-dry-run.json", r.stdout)
	if r := kaylee(t, env, "ls"); strings.Contains(r.stdout, "countly") {
		t.Fatalf("--dry-run copied countly:\n%s", r.stdout)
	}
	if n := len(fleetUnits(t, api, "k2:legacy:")); n != 2 {
		t.Fatalf("--dry-run removed the original's units: %d left", n)
	}
}

// Exit codes: 0 with nothing refused, 4 for a wrong flag, 2 when etcd
// does not answer.
func TestMigrateExitCodes(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	if _, err := e.Client(t).Put(context.Background(), "/kaylee2/units/web", `{"name":"web","apps":[{"image":"docker://nginx"}]}`); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"migrate", "--dry-run"}, 0, "(none)"},
		{[]string{"migrate", "--dry-run", "-o", "yaml"}, 4, `--output "yaml": use text or json`},
		{[]string{"migrate", "extra"}, 4, `unknown command "extra" for "kaylee migrate"`},
		{[]string{"migrate", "--dry-run", "--etcd-endpoints", "http://127.0.0.1:1"}, 2, "does not answer"},
	} {
		r := kaylee(t, env, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stdout+r.err, tt.want) {
			t.Errorf("%v: exit %d (want %d)\n%s%s\nwant %q", tt.args, r.code, tt.code, r.stdout, r.err, tt.want)
		}
	}
}

// Without --dry-run: the v2 units v3 lacks are copied (the one that
// differs is not, without --overwrite); --remove-original stops then
// destroys the original's units of names not stored, and no other.
func TestMigrateCopiesAndRemoves(t *testing.T) {
	t.Parallel()
	env, api := migrateWorld(t)
	r := kaylee(t, env, "migrate", "--remove-original")
	if r.code != 1 || !strings.Contains(r.stdout, "copied to v3: countly, cron") ||
		!strings.Contains(r.stdout, "destroyed: k2:legacy:cccccc:dddddd:1.service, k2:legacy:cccccc:eeeeee:2.service") {
		t.Fatalf("migrate --remove-original: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	if left := fleetUnits(t, api, "k2:legacy:"); len(left) != 0 {
		t.Fatalf("left: %q", left)
	}
	if n := len(fleetUnits(t, api, "k2:")); n != 7 {
		t.Fatalf("fleet units besides legacy's: %d, want 7 (countly's 3, web's 2, worker's, frontend's)", n)
	}
	if n := len(fleetUnits(t, api, "k2:frontend:")); n != 1 {
		t.Fatalf("--remove-original removed the unit held by site (JSON name frontend): %d left", n)
	}
	if r := kaylee(t, env, "ls"); r.code != 0 || !strings.Contains(r.stdout, "countly") {
		t.Fatalf("ls after migrate: %s%s", r.stdout, r.err)
	}
	r = kaylee(t, env, "migrate", "--dry-run", "--overwrite")
	if !strings.Contains(r.stdout, "copy over v3 (--overwrite)") || !strings.Contains(r.stdout, "nothing (v3 holds the same JSON)") {
		t.Fatalf("migrate --dry-run --overwrite after migrate:\n%s%s", r.stdout, r.err)
	}
}

// --remove-original when etcd has no v2 API: the original's units may be
// stored only there, so it is refused (exit 2) and nothing changes.
func TestMigrateRemoveOriginalWithoutV2(t *testing.T) {
	t.Parallel()
	e := etcdtest.NewNoV2(t)
	// fleet through its HTTP API (fleetd's registry on an etcd of its own).
	fe := etcdtest.New(t)
	api, err := fleet.NewAPI(fleet.Config{EtcdEndpoints: fe.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	endpoint := fleetsimtest.StartAPIServer(t, fe.Endpoints(), fleet.DefaultKeyPrefix)
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	u := &schema.Unit{Name: "k2:legacy:cccccc:dddddd:1.service", DesiredState: "loaded", Options: []*schema.UnitOption{{Section: "Service", Name: "ExecStart", Value: "/bin/sleep 1000"}}}
	if err := api.CreateUnit(u); err != nil {
		t.Fatal(err)
	}
	r := kaylee(t, env, "migrate", "--remove-original", "--fleet-endpoint", endpoint)
	want := "kaylee: --remove-original: the units written through etcd's v2 API could not be read"
	if r.code != 2 || !strings.Contains(r.err, want) || !strings.Contains(r.err, "nothing changed") {
		t.Fatalf("migrate --remove-original without v2: exit %d (want 2)\n%s%s\nwant %q", r.code, r.stdout, r.err, want)
	}
	if n := len(fleetUnits(t, api, "k2:legacy:")); n != 1 {
		t.Fatalf("the original's unit was removed: %d left", n)
	}
	if r := kaylee(t, env, "migrate", "--dry-run", "--fleet-endpoint", endpoint); r.code != 0 || !strings.Contains(r.stdout, "none read: reading /kaylee2/units: etcd's v2 API is not available") ||
		!strings.Contains(r.stdout, "  (--remove-original is refused: units stored only through v2 could not be read)\n  NAME    FLEET UNIT\n  legacy  k2:legacy:cccccc:dddddd:1.service") {
		t.Fatalf("migrate --dry-run without v2: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
}

// A migrate cancelled while it waits for the original's units to stop
// says what it did (copied, stopped but not destroyed) and exits 2.
func TestMigrateReportsWhenStopped(t *testing.T) {
	t.Parallel()
	env, api := migrateWorld(t)
	reg := api.(*fleetreg.API).Registry()
	for _, n := range []string{"k2:legacy:cccccc:dddddd:1.service", "k2:legacy:cccccc:eeeeee:2.service"} {
		if err := api.SetUnitTargetState(n, "launched"); err != nil {
			t.Fatal(err)
		}
		reg.SaveUnitState(n, &unit.UnitState{LoadState: "loaded", ActiveState: "active", SubState: "running", MachineID: "m1", UnitName: n, UnitHash: "0123abcd"}, time.Hour)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // cancel once both are told to stop
		for ctx.Err() == nil {
			us, _ := api.Units()
			stopped := 0
			for _, u := range us {
				if strings.HasPrefix(u.Name, "k2:legacy:") && u.DesiredState == "loaded" {
					stopped++
				}
			}
			if stopped == 2 {
				cancel()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var out, errb bytes.Buffer
	code := run(ctx, []string{"migrate", "--remove-original", "--stop-timeout", "1m"}, &stdio{in: strings.NewReader(""), out: &out, err: &errb}, func(k string) string { return env[k] })
	if code != 2 || !strings.Contains(out.String(), "copied to v3: countly, cron") ||
		!strings.Contains(out.String(), "stopped, not destroyed: k2:legacy:cccccc:dddddd:1.service, k2:legacy:cccccc:eeeeee:2.service") ||
		!strings.Contains(out.String(), "destroyed: none") || !strings.Contains(errb.String(), "kaylee: migrate stopped before it finished: ") {
		t.Fatalf("a cancelled migrate: exit %d (want 2)\n%s%s", code, out.String(), errb.String())
	}
}
