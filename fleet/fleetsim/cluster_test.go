package fleetsim

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coreos/fleet/client"
	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/internal/testutil"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

func startCluster(t *testing.T, machines []MachineConfig) *Cluster {
	t.Helper()
	e := etcdtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Start(ctx, Config{Endpoints: e.Endpoints(), Machines: machines, TTL: 4 * time.Second, EngineInterval: time.Second, StartDelay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func svc(name string, opts ...[3]string) *schema.Unit {
	u := &schema.Unit{Name: name, DesiredState: "launched"}
	u.Options = append(u.Options, &schema.UnitOption{Section: "Service", Name: "ExecStart", Value: "/bin/true"})
	for _, o := range opts {
		u.Options = append(u.Options, &schema.UnitOption{Section: o[0], Name: o[1], Value: o[2]})
	}
	return u
}

// running returns, per unit name, the machines where fleet reports it
// active/running.
func running(t *testing.T, api client.API) map[string][]string {
	t.Helper()
	states, err := api.UnitStates()
	if err != nil {
		t.Fatalf("UnitStates: %v", err)
	}
	out := map[string][]string{}
	for _, s := range states {
		if s.SystemdActiveState == "active" && s.SystemdSubState == "running" {
			out[s.Name] = append(out[s.Name], s.MachineID)
		}
	}
	for _, ms := range out {
		sort.Strings(ms)
	}
	return out
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	testutil.EventuallyEvery(t, 200*time.Millisecond, timeout, what, cond)
}

func TestMachinesRegister(t *testing.T) {
	ms := Machines(3, map[string]string{"az": "a"}, map[string]string{"az": "b"}, map[string]string{"az": "c"})
	c := startCluster(t, ms)
	got, err := c.API().Machines()
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]string{}
	for _, m := range got {
		byID[m.ID] = m.PublicIP + " az=" + m.Metadata["az"]
	}
	for i, m := range ms {
		if want := fmt.Sprintf("192.0.2.%d az=%c", i+1, 'a'+i); byID[m.ID] != want {
			t.Errorf("machine %s: %q, want %q", m.ID, byID[m.ID], want)
		}
	}
}

func TestConflictsSpreadUnits(t *testing.T) {
	c := startCluster(t, Machines(3))
	api := c.API()
	for i := range 3 {
		if err := api.CreateUnit(svc(fmt.Sprintf("spread:%d.service", i), [3]string{"X-Fleet", "Conflicts", "spread:*.service"})); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "three conflicting units on three machines", func() (bool, string) {
		r := running(t, api)
		hosts := map[string]bool{}
		for i := range 3 {
			for _, m := range r[fmt.Sprintf("spread:%d.service", i)] {
				hosts[m] = true
			}
		}
		return len(r) == 3 && len(hosts) == 3, fmt.Sprint(r)
	})
	// A fourth conflicting unit has nowhere to go: fleet leaves it unscheduled.
	if err := api.CreateUnit(svc("spread:3.service", [3]string{"X-Fleet", "Conflicts", "spread:*.service"})); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	u, err := api.Unit("spread:3.service")
	if err != nil || u == nil || u.MachineID != "" {
		t.Fatalf("fourth unit was scheduled: %+v %v", u, err)
	}
}

func TestMachineMetadataAndGlobal(t *testing.T) {
	ms := Machines(3, map[string]string{"az": "a", "role": "edge"}, map[string]string{"az": "b"}, map[string]string{"az": "c", "role": "edge"})
	c := startCluster(t, ms)
	api := c.API()
	if err := api.CreateUnit(svc("pinned.service", [3]string{"X-Fleet", "MachineMetadata", "az=b"})); err != nil {
		t.Fatal(err)
	}
	if err := api.CreateUnit(svc("edge.service", [3]string{"X-Fleet", "Global", "true"}, [3]string{"X-Fleet", "MachineMetadata", "role=edge"})); err != nil {
		t.Fatal(err)
	}
	if err := api.CreateUnit(svc("everywhere.service", [3]string{"X-Fleet", "Global", "true"})); err != nil {
		t.Fatal(err)
	}
	edge := []string{ms[0].ID, ms[2].ID}
	sort.Strings(edge)
	eventually(t, 20*time.Second, "metadata and global units placed", func() (bool, string) {
		r := running(t, api)
		ok := fmt.Sprint(r["pinned.service"]) == fmt.Sprint([]string{ms[1].ID}) &&
			fmt.Sprint(r["edge.service"]) == fmt.Sprint(edge) &&
			len(r["everywhere.service"]) == 3
		return ok, fmt.Sprint(r)
	})
}

func TestKilledMachineUnitsMove(t *testing.T) {
	c := startCluster(t, Machines(2))
	api := c.API()
	if err := api.CreateUnit(svc("mover.service")); err != nil {
		t.Fatal(err)
	}
	var first string
	eventually(t, 20*time.Second, "unit running", func() (bool, string) {
		r := running(t, api)["mover.service"]
		if len(r) == 1 {
			first = r[0]
		}
		return len(r) == 1, fmt.Sprint(r)
	})
	if err := c.Kill(first); err != nil {
		t.Fatal(err)
	}
	if c.Machine(first).Alive() {
		t.Fatal("killed machine still alive")
	}
	eventually(t, 30*time.Second, "unit moved off the killed machine", func() (bool, string) {
		r := running(t, api)["mover.service"]
		return len(r) == 1 && r[0] != first, fmt.Sprint(r)
	})
	if err := c.Revive(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "revived machine back in fleet", func() (bool, string) {
		ms, _ := api.Machines()
		return len(ms) == 2, fmt.Sprint(len(ms))
	})
	// fleet's scheduling is sticky: the unit stays where it moved.
	if r := running(t, api)["mover.service"]; len(r) != 1 || r[0] == first {
		t.Fatalf("unit after revive: %v", r)
	}
}

func TestFailMarkerFailsUnit(t *testing.T) {
	c := startCluster(t, Machines(1))
	api := c.API()
	u := svc("bad.service")
	u.Options[0].Value = "/usr/bin/rkt run docker://sim-fail:latest"
	if err := api.CreateUnit(u); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "unit failed", func() (bool, string) {
		states, _ := api.UnitStates()
		var got []string
		for _, s := range states {
			got = append(got, s.Name+"="+s.SystemdActiveState+"/"+s.SystemdSubState)
			if s.Name == "bad.service" && s.SystemdActiveState == "failed" && s.SystemdSubState == "failed" && s.Hash != "" {
				return true, ""
			}
		}
		return false, strings.Join(got, " ")
	})
}

func TestStopAndDestroy(t *testing.T) {
	c := startCluster(t, Machines(1))
	api := c.API()
	if err := api.CreateUnit(svc("s.service")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "running", func() (bool, string) { return len(running(t, api)["s.service"]) == 1, "" })
	if err := api.SetUnitTargetState("s.service", "loaded"); err != nil {
		t.Fatal(err)
	}
	m := c.Machines()[0]
	eventually(t, 20*time.Second, "stopped in systemd", func() (bool, string) {
		a, s := m.Systemd().State("s.service")
		return a == "inactive", a + "/" + s
	})
	if err := api.DestroyUnit("s.service"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "unloaded and state gone", func() (bool, string) {
		a, _ := m.Systemd().State("s.service")
		states, _ := api.UnitStates()
		return a == "" && len(states) == 0, fmt.Sprint(a, len(states))
	})
}
