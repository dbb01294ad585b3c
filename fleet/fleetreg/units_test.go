package fleetreg_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	etcd "github.com/coreos/etcd/client"
	"github.com/coreos/fleet/client"
	"github.com/coreos/fleet/job"
	"github.com/coreos/fleet/schema"
	"github.com/coreos/fleet/unit"

	"github.com/kaylee-gitops/kaylee/fleet/fleetreg"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// countingKeys counts the reads under each of fleet's directories.
type countingKeys struct {
	etcd.KeysAPI
	mu    sync.Mutex
	reads map[string]int
}

func (c *countingKeys) Get(ctx context.Context, key string, opts *etcd.GetOptions) (*etcd.Response, error) {
	c.mu.Lock()
	dir := strings.Split(strings.TrimPrefix(key, "/_coreos.com/fleet/"), "/")[0]
	c.reads[dir]++
	c.mu.Unlock()
	return c.KeysAPI.Get(ctx, key, opts)
}

func (c *countingKeys) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reads
	c.reads = map[string]int{}
	return r
}

// TestUnitsAsFleetsClient: Units answers what fleet's own registry client
// answers (unit files, target states, machines, job states: inactive,
// loaded, launched), as units are created, scheduled, run and destroyed,
// and after the first call reads no unit file it already parsed: a call
// reads the units' records and the states, and a new unit file alone.
func TestUnitsAsFleetsClient(t *testing.T) {
	e := etcdtest.New(t)
	c, err := etcd.New(etcd.Config{Endpoints: e.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	keys := &countingKeys{KeysAPI: etcd.NewKeysAPI(c), reads: map[string]int{}}
	api := fleetreg.New(keys, "/_coreos.com/fleet/")
	reg := api.Registry()
	fleets := &client.RegistryClient{Registry: reg}
	create := func(name, exec string, target job.JobState) *unit.UnitFile {
		t.Helper()
		uf, err := unit.NewUnitFile("[Service]\nExecStart=" + exec + "\n")
		if err != nil {
			t.Fatal(err)
		}
		if err := reg.CreateUnit(&job.Unit{Name: name, Unit: *uf, TargetState: target}); err != nil {
			t.Fatal(err)
		}
		return uf
	}
	same := func(when string) {
		t.Helper()
		want, err := fleets.Units()
		if err != nil {
			t.Fatal(err)
		}
		keys.take()
		got, err := api.Units()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: Units answers\n%s\nfleet's client answers\n%s", when, unitsString(got), unitsString(want))
		}
	}
	same("no unit")
	// More new unit files than are read one by one.
	for i := range 40 {
		create(fmt.Sprintf("many-%02d.service", i), fmt.Sprintf("/bin/sleep %d", i), job.JobStateLaunched)
	}
	create("web-0.service", "/bin/web", job.JobStateLaunched)
	create("web-1.service", "/bin/web", job.JobStateLaunched) // the same unit file
	create("db.service", "/bin/db", job.JobStateLoaded)
	create("off.service", "/bin/off", job.JobStateInactive)
	same("created, none scheduled")
	for _, n := range []string{"web-0.service", "web-1.service", "db.service", "many-07.service"} {
		if err := reg.ScheduleUnit(n, "m1"); err != nil {
			t.Fatal(err)
		}
	}
	same("scheduled, no state")
	reg.SaveUnitState("web-0.service", &unit.UnitState{LoadState: "loaded", ActiveState: "active", SubState: "running", MachineID: "m1", UnitHash: "x", UnitName: "web-0.service"}, time.Hour)
	reg.SaveUnitState("db.service", &unit.UnitState{LoadState: "loaded", ActiveState: "inactive", SubState: "dead", MachineID: "m1", UnitHash: "y", UnitName: "db.service"}, time.Hour)
	reg.SaveUnitState("web-1.service", &unit.UnitState{LoadState: "loaded", ActiveState: "active", SubState: "running", MachineID: "m2", UnitHash: "x", UnitName: "web-1.service"}, time.Hour)
	if err := reg.UnitHeartbeat("web-0.service", "m1", time.Hour); err != nil {
		t.Fatal(err)
	}
	same("states published, one heartbeat")
	keys.take()
	if _, err := api.Units(); err != nil {
		t.Fatal(err)
	}
	if got, want := keys.take(), map[string]int{"job": 1, "states": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("a call with every unit file parsed already read %v, want %v", got, want)
	}
	create("new.service", "/bin/new", job.JobStateLaunched)
	if err := reg.DestroyUnit("off.service"); err != nil {
		t.Fatal(err)
	}
	same("one created, one destroyed")
	create("newer.service", "/bin/newer", job.JobStateLaunched)
	keys.take()
	if _, err := api.Units(); err != nil {
		t.Fatal(err)
	}
	if got, want := keys.take(), map[string]int{"job": 1, "states": 1, "unit": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("a call with one new unit file read %v, want %v", got, want)
	}
}

func unitsString(units []*schema.Unit) string {
	var b strings.Builder
	for _, u := range units {
		var opts []string
		for _, o := range u.Options {
			opts = append(opts, o.Section+"."+o.Name+"="+o.Value)
		}
		fmt.Fprintf(&b, "  %s desired=%s current=%s machine=%s %v\n", u.Name, u.DesiredState, u.CurrentState, u.MachineID, opts)
	}
	return b.String()
}
