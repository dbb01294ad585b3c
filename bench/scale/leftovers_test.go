package scale

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	etcd "github.com/coreos/etcd/client"
	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/fleet/fleetreg"
	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
)

// dropLeftovers removes from fleet's registry what its fleet units left
// behind once they were all destroyed, so that the next phase starts on a
// registry like the floor's: every unit file no fleet unit uses (fleet
// never deletes one, and every agent of fleet reads and parses all of
// them on each of its reconciliations, so the floor's 3,000 would double
// that work in Kaylee's run) and every empty fleet unit directory (a
// destroyed unit's last heartbeat recreates it). It is the scheduler's
// own sweep (fleetreg.SweepLeftovers) with everything claimed: nothing
// else writes to fleet's registry between two phases.
func dropLeftovers(c *fleetsim.Cluster) (fleetreg.Leftovers, error) {
	api, ok := c.API().(*fleetreg.API)
	if !ok {
		return fleetreg.Leftovers{}, fmt.Errorf("fleet's client is a %T, not fleet's registry", c.API())
	}
	all := func(string) bool { return true }
	return api.SweepLeftovers(context.Background(), all, all)
}

// After fleet's own DestroyUnit, the unit file stays in fleet's registry;
// dropLeftovers removes it and an emptied fleet unit's directory, and
// leaves the live fleet unit and its file as fleet reads them.
func TestDropLeftovers(t *testing.T) {
	e := newEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := fleetsim.Start(ctx, fleetsim.Config{Endpoints: e.Endpoints(), Machines: fleetsim.Machines(1), TTL: 4 * time.Second,
		EngineInterval: time.Second, StartDelay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	api := c.API()
	unit := func(name, exec string) *schema.Unit {
		return &schema.Unit{Name: name, DesiredState: "loaded",
			Options: []*schema.UnitOption{{Section: "Service", Name: "ExecStart", Value: exec}}}
	}
	for _, u := range []*schema.Unit{unit("kx:gone.service", "/bin/gone"), unit("kx:kept.service", "/bin/kept")} {
		if err := api.CreateUnit(u); err != nil {
			t.Fatal(err)
		}
	}
	if err := api.DestroyUnit("kx:gone.service"); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, e.ClientURL()+"/v2/keys"+c.KeyPrefix()+"job/kx:empty.service?dir=true", nil)
	if resp, err := httpClient.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("making an empty fleet unit directory: %v %v", resp, err)
	}
	ec, err := etcd.New(etcd.Config{Endpoints: e.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	unitFiles := func() int {
		r, err := etcd.NewKeysAPI(ec).Get(context.Background(), c.KeyPrefix()+"unit", nil)
		if err != nil {
			t.Fatal(err)
		}
		return len(r.Node.Nodes)
	}
	if n := unitFiles(); n != 2 {
		t.Fatalf("before: %d unit files in fleet's registry, want 2 (fleet keeps a destroyed unit's)", n)
	}

	left, err := dropLeftovers(c)
	if err != nil || left.UnitFiles != 1 || left.Dirs != 1 {
		t.Fatalf("dropLeftovers: %+v, %v; want 1 unit file, 1 directory", left, err)
	}
	if n := unitFiles(); n != 1 {
		t.Errorf("after: %d unit files, want 1", n)
	}
	units, err := api.Units()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range units {
		names = append(names, u.Name)
		if u.Name == "kx:kept.service" && (len(u.Options) != 1 || u.Options[0].Value != "/bin/kept") {
			t.Errorf("kx:kept.service's unit file as fleet reads it: %+v", u.Options)
		}
	}
	if strings.Join(names, " ") != "kx:kept.service" {
		t.Errorf("fleet's units after: %v, want kx:kept.service only", names)
	}
	if left, err := dropLeftovers(c); err != nil || left != (fleetreg.Leftovers{}) {
		t.Errorf("again: %+v, %v; want none", left, err)
	}
}
