package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/coreos/fleet/schema"
)

// Machine is a fleet machine, as a rolling global unit is rendered for it.
type Machine struct {
	ID       string
	Metadata map[string]string
}

// ExampleMachineID is the machine a rolling global unit is rendered for
// when RenderOptions.Machines is nil (kaylee render, validation), taken to
// match its machine constraints.
const ExampleMachineID = "0123456789abcdef0123456789abcdef"

// Matches reports whether a machine satisfies the spec's machine
// constraints as fleet reads MachineMetadata: for every key named, the
// machine has one of the values given for it.
func (s *Spec) Matches(m Machine) bool {
	want := map[string][]string{}
	for _, kv := range s.Machine {
		k, v, _ := strings.Cut(kv, "=")
		want[k] = append(want[k], v)
	}
	for k, vs := range want {
		ok := false
		for _, v := range vs {
			ok = ok || m.Metadata[k] == v
		}
		if !ok {
			return false
		}
	}
	return true
}

// renderRolling renders a rolling global unit: one fleet unit per machine
// that matches, pinned to it with MachineID, in machine ID order. The
// group of a unit's name is derived from the spec hash and the machine
// ID, so a machine keeps its unit's name as others join and leave (two
// machines whose group collides are told apart by the index).
func renderRolling(s *Spec, o RenderOptions, hash string) ([]*schema.Unit, error) {
	var match []Machine
	for _, m := range o.Machines {
		if s.Matches(m) {
			match = append(match, m)
		}
	}
	if o.Machines == nil {
		match = []Machine{{ID: ExampleMachineID}} // a machine that matches
	}
	sort.Slice(match, func(i, j int) bool { return match[i].ID < match[j].ID })
	used := map[string]int{}
	units := make([]*schema.Unit, 0, len(match))
	for _, m := range match {
		sum := sha256.Sum256([]byte(hash + "/machine/" + m.ID))
		group := hex.EncodeToString(sum[:])[:6]
		name := UnitName{Prefix: o.UnitPrefix, Name: s.Name, SpecHash: hash, Group: group, Index: used[group]}
		used[group]++
		r := renderer{spec: s, name: name, machineID: m.ID}
		u := &schema.Unit{Name: name.String(), DesiredState: "launched", Options: r.options(false)}
		if err := checkLines(s, u); err != nil {
			return nil, err
		}
		units = append(units, u)
	}
	return units, nil
}

// checkLines refuses a rendered unit with a line longer than fleet accepts.
func checkLines(s *Spec, u *schema.Unit) error {
	for _, opt := range u.Options {
		if l := len(opt.Name) + 1 + len(opt.Value); l >= MaxLineLen {
			fix := "shorten args, env or volumes"
			if opt.Name == "Environment" {
				fix = "put a value this long in a file on the machines and name it in envFiles"
			}
			return fmt.Errorf("rendered %s= line of %s is %d bytes; fleet's limit is %d: %s", opt.Name, s.Name, l, MaxLineLen-1, fix)
		}
	}
	return nil
}

// CleanMachine holds a machine that fleet reports to the rules a unit
// file holds its own values to, since Kaylee renders a machine's ID
// (MachineID=, a rolling global unit) and its metadata values
// (MachineMetadata=, a spread unit) into unit files: metadata whose key or
// value could not stand in a MachineMetadata=key=value line (a newline,
// a space, =, a quote) is left out, and ok is false when the ID itself is
// not one (the machine is left out). dropped says what was left out.
func CleanMachine(m Machine) (clean Machine, dropped []string, ok bool) {
	if !machineIDRe.MatchString(m.ID) || len(m.ID) > 64 {
		return Machine{}, []string{fmt.Sprintf("machine ID %q is not letters and digits", m.ID)}, false
	}
	clean = Machine{ID: m.ID, Metadata: make(map[string]string, len(m.Metadata))}
	for k, v := range m.Metadata {
		if !ValidMetadataKey(k) || !ValidMetadataValue(v) {
			dropped = append(dropped, fmt.Sprintf("metadata %q=%q", k, v))
			continue
		}
		clean.Metadata[k] = v
	}
	sort.Strings(dropped)
	return clean, dropped, true
}
