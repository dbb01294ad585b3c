package scale

import (
	"fmt"
	"strings"

	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// Replicas of every benchmark unit.
const Replicas = 3

// UnitFile is one unit file of the benchmark's repository.
type UnitFile struct {
	Name string // the unit's name
	Path string // in the repository: units/<name>.yaml
	YAML string
}

// UnitName is the name of the i-th unit.
func UnitName(i int) string { return fmt.Sprintf("u%04d", i) }

// Units are n unit files, each with 3 replicas on docker, their
// constraints cycling through four patterns:
//
//	i%4 == 0: maxReplicasPerHost: 1 (three machines)
//	i%4 == 1: machine: [role=worker]
//	i%4 == 2: spread: {key: zone}
//	i%4 == 3: machine: [role=web] and conflicts with unit i-2 (a
//	          role=worker one): fleet checks the conflict on every
//	          placement, and it can never leave the unit nowhere to run,
//	          whatever order fleet places them in
func Units(n int) []UnitFile {
	out := make([]UnitFile, n)
	for i := range out {
		out[i] = UnitFile{Name: UnitName(i), Path: "units/" + UnitName(i) + ".yaml", YAML: unitYAML(i)}
	}
	return out
}

func unitYAML(i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nreplicas: %d\nengine: docker\n", UnitName(i), Replicas)
	switch i % 4 {
	case 0:
		b.WriteString("maxReplicasPerHost: 1\n")
	case 1:
		b.WriteString("machine: [role=worker]\n")
	case 2:
		b.WriteString("spread: {key: zone}\n")
	case 3:
		fmt.Fprintf(&b, "machine: [role=web]\nconflicts: [%s]\n", UnitName(i-2))
	}
	fmt.Fprintf(&b, "env:\n- name: UNIT_INDEX\n  value: \"%d\"\napps:\n- image: registry.example/bench/app:1.%d\n", i, i)
	return b.String()
}

// MachineMetadata is the metadata of the i-th machine: role web or worker
// (every other machine), zone a, b or c (every third).
func MachineMetadata(i int) map[string]string {
	role := "web"
	if i%2 == 1 {
		role = "worker"
	}
	return map[string]string{"role": role, "zone": string(rune('a' + i%3))}
}

// Specs decodes and validates the unit files, as a sync pass does.
func Specs(files []UnitFile) ([]*deploy.Spec, error) {
	out := make([]*deploy.Spec, 0, len(files))
	for _, f := range files {
		docs, err := deploy.Load(f.Path, []byte(f.YAML))
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			out = append(out, &d.Spec)
		}
	}
	return out, nil
}

// Render renders every spec into its fleet units with Kaylee's renderer,
// under unitPrefix, as the scheduler would on these machines: a spread
// unit's replicas get their zones as the scheduler assigns them from
// scratch. fleet's floor creates these units directly.
func Render(specs []*deploy.Spec, machines []deploy.Machine, unitPrefix string) ([]*schema.Unit, error) {
	var out []*schema.Unit
	for _, s := range specs {
		o := deploy.RenderOptions{UnitPrefix: unitPrefix}
		if s.Spread != nil {
			o.Zones = deploy.AssignZones(s.Instances(), deploy.Zones(s, machines), nil, s.Spread.Skew())
		}
		us, err := deploy.Render(s, o)
		if err != nil {
			return nil, fmt.Errorf("rendering %s: %w", s.Name, err)
		}
		out = append(out, us...)
	}
	return out, nil
}
