package fleet

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"testing"
	"time"

	etcd "github.com/coreos/etcd/client"
	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/store"
)

// Issue 29: fleet never deletes a unit file, so each rollout left one per
// replaced replica in fleet's registry, forever, for every agent of fleet
// to read and parse on each of its reconciliations (and an empty
// directory, recreated by the replaced replica's last heartbeat). After a
// rollout and a removed unit, the scheduler removes those of its own
// destroyed fleet units, SweepDelay after the destroys; the live fleet
// units' files stay, and so does what another client left.
func TestSweepsFleetLeftovers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fleetsim.Machines(3))
	foreign := &schema.Unit{Name: "other.service", DesiredState: "loaded",
		Options: []*schema.UnitOption{{Section: "Service", Name: "ExecStart", Value: "/bin/other"}}}
	if err := h.api.CreateUnit(foreign); err != nil {
		t.Fatal(err)
	}
	if err := h.api.DestroyUnit(foreign.Name); err != nil {
		t.Fatal(err)
	}
	c, err := etcd.New(etcd.Config{Endpoints: h.etcd.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	keys := etcd.NewKeysAPI(c)
	// leftovers lists the unit files no fleet unit uses (by the fleet
	// unit they render, or "foreign") and the empty fleet unit
	// directories.
	leftovers := func() string {
		t.Helper()
		ctx := context.Background()
		units, err := h.api.Units()
		if err != nil {
			t.Fatal(err)
		}
		live := map[string]bool{}
		for _, u := range units {
			live[strings.ReplaceAll(strings.TrimSuffix(u.Name, ".service"), ":", "_")] = true
		}
		var out []string
		files, err := keys.Get(ctx, path.Join(h.cluster.KeyPrefix(), "unit"), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files.Node.Nodes {
			id := "foreign"
			if _, after, ok := strings.Cut(f.Value, "KAYLEE_ID="); ok {
				id = strings.FieldsFunc(after, func(r rune) bool { return r == '\\' || r == '"' || r == '\n' })[0]
			}
			if !live[id] {
				out = append(out, "file "+id)
			}
		}
		jobs, err := keys.Get(ctx, path.Join(h.cluster.KeyPrefix(), "job"), &etcd.GetOptions{Recursive: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs.Node.Nodes {
			if len(j.Nodes) == 0 {
				out = append(out, "dir "+path.Base(j.Key))
			}
		}
		sort.Strings(out)
		return strings.Join(out, ", ")
	}

	h.serve(h.api, Options{MinReady: 200 * time.Millisecond, SweepDelay: 8 * time.Second})
	v1 := h.put(replicated(2, "docker://web:1"))
	h.waitUnits("web", v1, 2, 30*time.Second)
	v2 := h.put(replicated(2, "docker://web:2"))
	h.waitUnits("web", v2, 2, 60*time.Second)
	if got := leftovers(); !strings.Contains(got, "file k2_web_"+v1) {
		t.Errorf("right after the rollout: leftovers %q, want v1's unit files still there (SweepDelay)", got)
	}
	if _, err := h.store.DeleteUnit(context.Background(), "web", store.Fence{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() (bool, string) {
		got := leftovers()
		return got == "dir other.service, file foreign" || got == "file foreign", fmt.Sprintf("leftovers: %s", got)
	})
}
