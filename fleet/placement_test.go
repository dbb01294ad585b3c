package fleet

import (
	"slices"
	"strings"
	"testing"

	"github.com/coreos/fleet/machine"
	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// placeWorld is a fleet cluster for Place: machines and the fleet units on
// them.
type placeWorld struct {
	t *testing.T
	c Cluster
}

func newPlaceWorld(t *testing.T) *placeWorld { return &placeWorld{t: t} }

// machineID is machine n's ID: its digit 32 times ("11111111…").
func machineID(n int) string { return strings.Repeat(string(rune('0'+n)), 32) }

// machine adds live machine n with metadata "k=v,k=v".
func (w *placeWorld) machine(n int, metadata string) *placeWorld {
	md := map[string]string{}
	for _, kv := range strings.Split(metadata, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			md[k] = v
		}
	}
	w.c.Machines = append(w.c.Machines, machine.MachineState{ID: machineID(n), PublicIP: "192.0.2." + string(rune('0'+n)), Metadata: md})
	return w
}

// unit adds a fleet unit scheduled to machine n (0: none) and loaded
// there, with X-Fleet options "Name=Value".
func (w *placeWorld) unit(name string, n int, xfleet ...string) *placeWorld {
	u := &schema.Unit{Name: name, DesiredState: "launched", Options: []*schema.UnitOption{{Section: "Service", Name: "ExecStart", Value: "/bin/true"}}}
	for _, o := range xfleet {
		k, v, _ := strings.Cut(o, "=")
		u.Options = append(u.Options, &schema.UnitOption{Section: "X-Fleet", Name: k, Value: v})
	}
	if n > 0 {
		u.MachineID = machineID(n)
		w.c.States = append(w.c.States, &schema.UnitState{Name: name, MachineID: u.MachineID, SystemdActiveState: "active", SystemdSubState: "running"})
	}
	w.c.Units = append(w.c.Units, u)
	return w
}

// members adds the fleet units of a stateful unit's members pinned to
// machines ns, as the scheduler renders them.
func (w *placeWorld) members(file string, ns ...int) *placeWorld {
	d := loadDoc(w.t, file)
	pins := make([]string, len(ns))
	for i, n := range ns {
		pins[i] = machineID(n)
	}
	units, err := deploy.Render(&d.Spec, deploy.RenderOptions{Members: pins})
	if err != nil {
		w.t.Fatal(err)
	}
	for i, u := range units {
		u.MachineID = pins[i]
		w.c.Units = append(w.c.Units, u)
	}
	return w
}

func loadDoc(t *testing.T, file string) *deploy.Document {
	t.Helper()
	docs, err := deploy.Load("units/db.yaml", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	return docs[0]
}

// threeZones: machines 1, 2 in az=a (ssd), 3 in az=b (hdd).
func threeZones(t *testing.T) *placeWorld {
	return newPlaceWorld(t).machine(1, "az=a,disk=ssd").machine(2, "az=a,disk=ssd").machine(3, "az=b,disk=hdd")
}

const (
	statefulDB = "name: db\nreplicas: 2\nstateful: true\napps:\n- image: docker://postgres\n"
)

// TestPlace holds every case in which no placement exists, each told at
// the field that causes it as FILE:LINE: field: why, and placements that
// exist, as "runs on" says them.
func TestPlace(t *testing.T) {
	for _, tt := range []struct {
		name  string
		world *placeWorld
		file  string
		want  string
		note  string // a note it must have
	}{
		{
			name:  "machine matches no live machine",
			world: threeZones(t),
			file:  "name: db\napps:\n- image: docker://postgres\nmachine: [disk=nvme]\n",
			want:  "units/db.yaml:4: machine: no live machine has disk=nvme (3 live machines: 11111111 az=a,disk=ssd; 22222222 az=a,disk=ssd; 33333333 az=b,disk=hdd); change machine, or give machines that metadata (fleetd's metadata setting)",
		},
		{
			name:  "machine: values of one key OR'd, keys AND'd",
			world: threeZones(t),
			file:  "name: db\napps:\n- image: docker://postgres\nmachine: [az=a, az=b, disk=hdd]\n",
			want:  "runs on: 33333333 (192.0.2.3) (1 of 3 machines match)",
		},
		{
			name:  "machine: keys AND'd leave none",
			world: threeZones(t),
			file:  "name: db\napps:\n- image: docker://postgres\nmachine: [az=a, disk=hdd]\n",
			want:  "units/db.yaml:4: machine: no live machine has az=a, and disk=hdd (3 live machines: 11111111 az=a,disk=ssd; 22222222 az=a,disk=ssd; 33333333 az=b,disk=hdd); change machine, or give machines that metadata (fleetd's metadata setting)",
		},
		{
			name:  "replicas more than matching machines x maxReplicasPerHost",
			world: threeZones(t),
			file:  "name: web\nreplicas: 5\nmaxReplicasPerHost: 2\napps:\n- image: docker://nginx\nmachine: [disk=ssd]\n",
			want:  "units/db.yaml:2: replicas: 5 replicas at most 2 per machine (maxReplicasPerHost) need 3 machines; 2 of 3 live machines match (11111111, 22222222); lower replicas, raise maxReplicasPerHost, or add machines",
		},
		{
			name:  "replicas fit matching machines x maxReplicasPerHost",
			world: threeZones(t),
			file:  "name: web\nreplicas: 4\nmaxReplicasPerHost: 2\napps:\n- image: docker://nginx\nmachine: [disk=ssd]\n",
			want:  "runs on: 11111111 (192.0.2.1), 22222222 (192.0.2.2) (2 of 3 machines match)",
		},
		{
			name:  "replicas without maxReplicasPerHost share a machine",
			world: newPlaceWorld(t).machine(1, "az=a"),
			file:  "name: web\nreplicas: 5\napps:\n- image: docker://nginx\n",
			want:  "runs on: 11111111 (192.0.2.1) (1 of 1 machines match)",
		},
		{
			name:  "spread skew the zones cannot meet",
			world: threeZones(t),
			file:  "name: web\nreplicas: 3\nmaxReplicasPerHost: 1\napps:\n- image: docker://nginx\nspread:\n  key: disk\n",
			want:  "units/db.yaml:6: spread: the zones of disk cannot hold 3 replicas within maxSkew 1: an even spread puts 2 in disk=hdd, which has room for 1 (1 machine free to take them, maxReplicasPerHost 1) (disk=hdd: 2 replicas, 1 machine; disk=ssd: 1 replica, 2 machines); add machines to disk=hdd, or lower replicas",
		},
		{
			name:  "spread the zones can meet",
			world: threeZones(t),
			file:  "name: web\nreplicas: 2\nmaxReplicasPerHost: 1\napps:\n- image: docker://nginx\nspread:\n  key: az\n",
			want:  "runs on: 11111111 (192.0.2.1), 22222222 (192.0.2.2), 33333333 (192.0.2.3) (3 of 3 machines match)",
		},
		{
			name: "conflicts pattern leaves no machine",
			world: threeZones(t).
				unit("k2:cache:abcdef:123456:0.service", 1).unit("k2:cache-b:abcdef:123456:0.service", 2).unit("k2:cache:abcdef:123456:1.service", 3),
			file: "name: web\napps:\n- image: docker://nginx\nconflicts: [cache, cache-*]\n",
			want: "units/db.yaml:4: conflicts: on every machine that matches runs k2:cache-b:abcdef:123456:0.service, k2:cache:abcdef:123456:0.service and k2:cache:abcdef:123456:1.service, which its conflicts keep it away from; change conflicts, or make room on a machine",
		},
		{
			name:  "conflicts pattern leaves one machine",
			world: threeZones(t).unit("k2:cache:abcdef:123456:0.service", 1).unit("k2:cache:abcdef:123456:1.service", 3),
			file:  "name: web\nreplicas: 2\napps:\n- image: docker://nginx\nconflicts: [cache]\n",
			want:  "runs on: 22222222 (192.0.2.2) (3 of 3 machines match, 2 kept off by conflicts)",
		},
		{
			name:  "another unit's Conflicts leave no machine",
			world: threeZones(t).unit("monitor.service", 1, "Conflicts=k2:web:*").unit("other.service", 2, "Conflicts=k2:web:*").unit("third.service", 3, "Conflicts=k2:*"),
			file:  "name: web\napps:\n- image: docker://nginx\n",
			want:  "units/db.yaml:1: name: on every machine that matches runs monitor.service, other.service and third.service, whose own Conflicts keep k2:web:",
		},
		{
			name:  "its own old fleet units are no conflict",
			world: threeZones(t).unit("k2:web:abcdef:123456:0.service", 1, "Conflicts=k2:web:*.service"),
			file:  "name: web\napps:\n- image: docker://nginx\nmachine: [az=a]\n",
			want:  "runs on: 11111111 (192.0.2.1), 22222222 (192.0.2.2) (2 of 3 machines match)",
		},
		{
			name:  "machineId not in the cluster",
			world: threeZones(t),
			file:  "name: db\napps:\n- image: docker://postgres\nmachineId: 99999999999999999999999999999999\n",
			want:  "units/db.yaml:4: machineId: no live machine has ID 99999999999999999999999999999999 (3 live machines: 11111111 az=a,disk=ssd; 22222222 az=a,disk=ssd; 33333333 az=b,disk=hdd); give the ID of a machine fleet lists (fleetctl list-machines -full)",
		},
		{
			name:  "machineId in the cluster",
			world: threeZones(t),
			file:  "name: db\napps:\n- image: docker://postgres\nmachineId: 33333333333333333333333333333333\n",
			want:  "runs on: 33333333 (192.0.2.3) (1 of 3 machines match)",
		},
		{
			name:  "stateful member's machine gone",
			world: threeZones(t).members(statefulDB, 1, 9),
			file:  statefulDB,
			want:  "units/db.yaml:3: stateful: member 1 is pinned to machine 99999999, which is not in the cluster (3 live machines: 11111111 az=a,disk=ssd; 22222222 az=a,disk=ssd; 33333333 az=b,disk=hdd): it waits for that machine, its data is there; bring the machine back, or set onMachineLoss: move to let the member start elsewhere",
		},
		{
			name:  "stateful members on live machines",
			world: threeZones(t).members(statefulDB, 1, 3),
			file:  statefulDB,
			want:  "runs on: 11111111 (192.0.2.1), 33333333 (192.0.2.3) (3 of 3 machines match)",
		},
		{
			name:  "stateful members placed anew",
			world: threeZones(t),
			file:  "name: db\nreplicas: 3\nmaxReplicasPerHost: 1\nstateful: true\napps:\n- image: docker://postgres\n",
			want:  "runs on: 11111111 (192.0.2.1), 22222222 (192.0.2.2), 33333333 (192.0.2.3) (3 of 3 machines match)",
		},
		{
			name:  "stateful members more than machines x maxReplicasPerHost",
			world: threeZones(t),
			file:  "name: db\nreplicas: 4\nmaxReplicasPerHost: 1\nstateful: true\napps:\n- image: docker://postgres\n",
			want:  "units/db.yaml:2: replicas: 4 members at most 1 per machine (maxReplicasPerHost) need 4 machines; 3 of 3 live machines match (11111111, 22222222, 33333333); lower replicas, raise maxReplicasPerHost, or add machines",
		},
		{
			name:  "stateful member's machine gone, onMachineLoss move",
			world: threeZones(t).members(statefulDB+"onMachineLoss: move\n", 1, 9),
			file:  statefulDB + "onMachineLoss: move\n",
			want:  "runs on: 11111111 (192.0.2.1) (3 of 3 machines match)",
			note:  "member 1's machine 99999999 is gone: it moves to another machine once it has been gone for the scheduler's machine-loss grace",
		},
		{
			name:  "stateful member pinned to a machine its machine field no longer matches",
			world: threeZones(t).members(statefulDB, 1, 3),
			file:  "name: db\nreplicas: 2\nstateful: true\napps:\n- image: docker://postgres\nmachine: [disk=ssd]\n",
			want:  "units/db.yaml:6: machine: member 1 is pinned to machine 33333333 (192.0.2.3), which does not have disk=ssd (it has az=b,disk=hdd): fleet will not run it there",
		},
		{
			name:  "spread key no machine has",
			world: threeZones(t),
			file:  "name: web\nreplicas: 2\nmaxReplicasPerHost: 1\napps:\n- image: docker://nginx\nspread:\n  key: rack\n",
			want:  "runs on: 11111111 (192.0.2.1), 22222222 (192.0.2.2), 33333333 (192.0.2.3) (3 of 3 machines match)",
			note:  "no machine that matches has rack: the replicas are placed without spread",
		},
		{
			name:  "rolling global runs on every machine that matches",
			world: threeZones(t),
			file:  "name: agent\nglobal: true\nupdate:\n  strategy: rolling\napps:\n- image: docker://agent\nmachine: [disk=ssd]\n",
			want:  "runs on: 11111111 (192.0.2.1), 22222222 (192.0.2.2) (2 of 3 machines match)",
		},
		{
			name:  "global runs on every machine that matches",
			world: threeZones(t),
			file:  "name: agent\nglobal: true\napps:\n- image: docker://agent\nmachine: [az=a]\n",
			want:  "runs on: 11111111 (192.0.2.1), 22222222 (192.0.2.2) (2 of 3 machines match)",
		},
		{
			name:  "no live machine at all",
			world: newPlaceWorld(t),
			file:  "name: web\napps:\n- image: docker://nginx\n",
			want:  "units/db.yaml:1: fleet has no live machine: nothing can run anywhere; check that fleetd runs on the machines and reaches etcd",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := loadDoc(t, tt.file)
			p := Place(d, nil, &tt.world.c)
			got := ""
			if p.Err != nil {
				got = p.Err.Error()
			} else {
				got = p.RunsOn()
			}
			// A want ending in "k2:web:" stops before a spec hash.
			if got != tt.want && !(strings.HasSuffix(tt.want, "k2:web:") && strings.HasPrefix(got, tt.want)) {
				t.Errorf("Place:\n got %s\nwant %s", got, tt.want)
			}
			if tt.note != "" && !slices.Contains(p.Notes, tt.note) {
				t.Errorf("Place: notes %q, want %q", p.Notes, tt.note)
			}
		})
	}
}
