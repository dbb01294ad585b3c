package scale

import (
	"fmt"
	"strings"
	"testing"

	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// Every benchmark unit is valid, has 3 replicas on docker, and its
// constraints cycle through the four patterns.
func TestUnits(t *testing.T) {
	files := Units(8)
	specs, err := Specs(files)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"maxReplicasPerHost=1", "machine=[role=worker]", "spread=zone", "machine=[role=web] conflicts=[u0001]",
		"maxReplicasPerHost=1", "machine=[role=worker]", "spread=zone", "machine=[role=web] conflicts=[u0005]"}
	for i, s := range specs {
		if s.Name != UnitName(i) || files[i].Path != "units/"+s.Name+".yaml" || s.Replicas != Replicas || s.EngineName() != deploy.EngineDocker {
			t.Errorf("unit %d: %s in %s, %d replicas on %s", i, s.Name, files[i].Path, s.Replicas, s.EngineName())
		}
		var got string
		switch {
		case s.MaxReplicasPerHost > 0:
			got = fmt.Sprintf("maxReplicasPerHost=%d", s.MaxReplicasPerHost)
		case len(s.Conflicts) > 0:
			got = fmt.Sprintf("machine=%v conflicts=%v", s.Machine, s.Conflicts)
		case len(s.Machine) > 0:
			got = fmt.Sprintf("machine=%v", s.Machine)
		case s.Spread != nil:
			got = "spread=" + s.Spread.Key
		}
		if got != want[i] {
			t.Errorf("unit %d: %s, want %s", i, got, want[i])
		}
	}
}

// Render gives fleet's floor the units the scheduler would create: 3
// per unit, under the floor's prefix, a spread unit's replicas one per
// zone, a maxReplicasPerHost unit's replicas in conflict with each other.
func TestRender(t *testing.T) {
	specs, err := Specs(Units(4))
	if err != nil {
		t.Fatal(err)
	}
	var machines []deploy.Machine
	for i := range 6 {
		machines = append(machines, deploy.Machine{ID: fmt.Sprintf("m%d", i), Metadata: MachineMetadata(i)})
	}
	units, err := Render(specs, machines, "kf")
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 4*Replicas {
		t.Fatalf("%d fleet units, want %d", len(units), 4*Replicas)
	}
	opt := func(u *schema.Unit, name string) []string {
		var out []string
		for _, o := range u.Options {
			if o.Section == "X-Fleet" && o.Name == name {
				out = append(out, o.Value)
			}
		}
		return out
	}
	var zones []string
	for _, u := range units {
		if !strings.HasPrefix(u.Name, "kf:") || u.DesiredState != "launched" {
			t.Errorf("%s desired %s: want kf: and launched", u.Name, u.DesiredState)
		}
		switch {
		case strings.HasPrefix(u.Name, "kf:u0000:"):
			if c := opt(u, "Conflicts"); len(c) == 0 {
				t.Errorf("%s: no Conflicts (maxReplicasPerHost 1)", u.Name)
			}
		case strings.HasPrefix(u.Name, "kf:u0001:"):
			if md := opt(u, "MachineMetadata"); len(md) != 1 || md[0] != "role=worker" {
				t.Errorf("%s: MachineMetadata %v, want role=worker", u.Name, md)
			}
		case strings.HasPrefix(u.Name, "kf:u0002:"):
			zones = append(zones, strings.Join(opt(u, "MachineMetadata"), ","))
		case strings.HasPrefix(u.Name, "kf:u0003:"):
			if c := strings.Join(opt(u, "Conflicts"), " "); !strings.Contains(c, "kf:u0001:*") {
				t.Errorf("%s: Conflicts %q, want kf:u0001:*", u.Name, c)
			}
		}
	}
	if strings.Join(zones, " ") != "zone=a zone=b zone=c" {
		t.Errorf("spread unit's zones %v, want one replica in each of a, b, c", zones)
	}
}

func TestMachineMetadata(t *testing.T) {
	var got []string
	for i := range 6 {
		md := MachineMetadata(i)
		got = append(got, md["role"]+"/"+md["zone"])
	}
	if strings.Join(got, " ") != "web/a worker/b web/c worker/a web/b worker/c" {
		t.Errorf("metadata %v", got)
	}
}
