package deploy

import (
	"strings"
	"testing"
)

// A rolling global unit renders one fleet unit per matching machine,
// pinned with MachineID; names stay as machines join and leave.
func TestRenderRolling(t *testing.T) {
	s := loadOne(t, "testdata/render/global-rolling.yaml")
	m := func(id, role string) Machine { return Machine{ID: id, Metadata: map[string]string{"role": role}} }
	all := []Machine{m("c3", "worker"), m("a1", "edge"), m("b2", "db"), m("d4", "worker")}
	units, err := Render(s, RenderOptions{Machines: all})
	if err != nil {
		t.Fatal(err)
	}
	var ids, names []string
	for _, u := range units {
		ids = append(ids, strings.Join(options(u, "X-Fleet", "MachineID"), ","))
		names = append(names, u.Name)
		if g := options(u, "X-Fleet", "Global"); len(g) != 0 {
			t.Errorf("%s has Global=%v", u.Name, g)
		}
		if md := options(u, "X-Fleet", "MachineMetadata"); strings.Join(md, ",") != "role=worker,role=edge" {
			t.Errorf("%s metadata %v", u.Name, md)
		}
	}
	if strings.Join(ids, " ") != "a1 c3 d4" {
		t.Fatalf("rendered for machines %v, want a1 c3 d4 (b2's role does not match)", ids)
	}
	// d4 leaves: the others keep their names.
	fewer, _ := Render(s, RenderOptions{Machines: all[:3]})
	if len(fewer) != 2 || fewer[0].Name != names[0] || fewer[1].Name != names[1] {
		t.Fatalf("names changed when a machine left: %v → %v", names, []string{fewer[0].Name, fewer[1].Name})
	}
	for _, n := range names {
		id, ok := ParseUnitName("k2", n)
		if !ok || id.SpecHash != s.Hash(0) {
			t.Fatalf("%s does not parse back with the spec hash", n)
		}
	}
	// No machine matches: no unit. No machines given: one example.
	if none, _ := Render(s, RenderOptions{Machines: []Machine{}}); len(none) != 0 {
		t.Fatalf("%d units for no machine", len(none))
	}
	if ex, _ := Render(s, RenderOptions{}); len(ex) != 1 || options(ex[0], "X-Fleet", "MachineID")[0] != ExampleMachineID {
		t.Fatalf("example rendering: %v", ex)
	}
	// The default global unit is still fleet's one Global=true unit.
	plain := *s
	plain.Update = nil
	if us, _ := Render(&plain, RenderOptions{Machines: all}); len(us) != 1 || options(us[0], "X-Fleet", "Global")[0] != "true" {
		t.Fatalf("global without strategy: %v", us)
	}
}

func TestMatches(t *testing.T) {
	s := &Spec{Machine: []string{"role=worker", "role=edge", "az=a"}}
	for _, tt := range []struct {
		md   map[string]string
		want bool
	}{
		{map[string]string{"role": "worker", "az": "a"}, true},
		{map[string]string{"role": "edge", "az": "a", "ssd": "true"}, true},
		{map[string]string{"role": "db", "az": "a"}, false},
		{map[string]string{"role": "worker"}, false},
		{nil, false},
	} {
		if got := s.Matches(Machine{ID: "m", Metadata: tt.md}); got != tt.want {
			t.Errorf("Matches(%v) = %v, want %v", tt.md, got, tt.want)
		}
	}
	if !(&Spec{}).Matches(Machine{}) {
		t.Error("a spec without constraints does not match every machine")
	}
}
