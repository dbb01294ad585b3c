package migrate

import (
	"errors"
	"reflect"
	"testing"
)

func TestMake(t *testing.T) {
	a, b := []byte(`{"name":"a"}`), []byte(`{"name":"b"}`)
	check := func(name string, v []byte) error {
		if string(v) == "bad" {
			return errors.New("refused")
		}
		return nil
	}
	tests := []struct {
		name      string
		w         World
		copy      []Copy
		adopt     []Original
		refused   []string // name and where
		leftAlone []Original
		remove    []string // nil: every unit left alone
	}{
		{name: "v3 has none: copy", w: World{V2: map[string][]byte{"x": a}},
			copy: []Copy{{"x", "/kaylee2/units/x", CopyNew}}},
		{name: "the same: nothing", w: World{V2: map[string][]byte{"x": a}, V3: map[string][]byte{"x": a}},
			copy: []Copy{{"x", "/kaylee2/units/x", CopySame}}},
		{name: "differs: v3 kept", w: World{V2: map[string][]byte{"x": a}, V3: map[string][]byte{"x": b}},
			copy: []Copy{{"x", "/kaylee2/units/x", CopyKeepV3}}},
		{name: "differs, --overwrite", w: World{V2: map[string][]byte{"x": a}, V3: map[string][]byte{"x": b}, Overwrite: true},
			copy: []Copy{{"x", "/kaylee2/units/x", CopyOverwrite}}},
		{name: "refused in v3 and in v2 (copied); a v2 value v3 keeps is not checked",
			w:       World{V2: map[string][]byte{"x": []byte("bad"), "y": []byte("bad")}, V3: map[string][]byte{"y": a, "z": []byte("bad")}},
			copy:    []Copy{{"x", "/kaylee2/units/x", CopyNew}, {"y", "/kaylee2/units/y", CopyKeepV3}},
			refused: []string{"x v2 /kaylee2/units/x", "z v3 /kaylee2/units/z"}},
		{name: "the original's units: adopted when stored (v2 or v3), left alone otherwise; others not listed",
			w: World{V2: map[string][]byte{"x": a}, V3: map[string][]byte{"y": []byte("bad")}, FleetUnits: []string{
				"k2:x:aaaaaa:bbbbbb:2.service", "k2:x:aaaaaa:bbbbbb:1.service", "k2:y:aaaaaa:bbbbbb:1.service",
				"k2:gone:aaaaaa:bbbbbb:1.service", "k2:x:0123abcd:bbbbbb:0.service", "k3:x:aaaaaa:bbbbbb:1.service", "etcd.service"}},
			copy:      []Copy{{"x", "/kaylee2/units/x", CopyNew}},
			adopt:     []Original{{Name: "x", FleetUnits: []string{"k2:x:aaaaaa:bbbbbb:1.service", "k2:x:aaaaaa:bbbbbb:2.service"}}, {Name: "y", FleetUnits: []string{"k2:y:aaaaaa:bbbbbb:1.service"}, Waits: true}},
			refused:   []string{"y v3 /kaylee2/units/y"},
			leftAlone: []Original{{Name: "gone", FleetUnits: []string{"k2:gone:aaaaaa:bbbbbb:1.service"}}}},
		{name: "a key that differs from the JSON's name (v3 or v2, refused): the original's units of the JSON's name are held, never removed",
			w: World{V3: map[string][]byte{"web": []byte(`{"name":"frontend","apps":[]}`)}, V2: map[string][]byte{"api": []byte(`{"name":"backend"`)}, FleetUnits: []string{
				"k2:frontend:abcdef:123456:1.service", "k2:backend:abcdef:123456:1.service", "k2:gone:aaaaaa:bbbbbb:1.service"}},
			copy: []Copy{{"api", "/kaylee2/units/api", CopyNew}},
			leftAlone: []Original{{Name: "backend", FleetUnits: []string{"k2:backend:abcdef:123456:1.service"}, HeldBy: "api"},
				{Name: "frontend", FleetUnits: []string{"k2:frontend:abcdef:123456:1.service"}, HeldBy: "web"},
				{Name: "gone", FleetUnits: []string{"k2:gone:aaaaaa:bbbbbb:1.service"}}},
			remove: []string{"k2:gone:aaaaaa:bbbbbb:1.service"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.w.Prefix, tt.w.UnitPrefix, tt.w.Check = "/kaylee2", "k2", check
			p := Make(tt.w)
			var refused []string
			for _, r := range p.Refused {
				refused = append(refused, r.Name+" "+r.Where)
			}
			if !reflect.DeepEqual(p.Copy, append([]Copy{}, tt.copy...)) || !reflect.DeepEqual(refused, tt.refused) ||
				!reflect.DeepEqual(p.Adopt, append([]Original{}, tt.adopt...)) || !reflect.DeepEqual(p.LeftAlone, append([]Original{}, tt.leftAlone...)) {
				t.Fatalf("Make:\ncopy %+v\nadopt %+v\nrefused %q\nleft alone %+v", p.Copy, p.Adopt, refused, p.LeftAlone)
			}
			remove := tt.remove
			if remove == nil {
				for _, o := range tt.leftAlone {
					remove = append(remove, o.FleetUnits...)
				}
			}
			if !reflect.DeepEqual(p.Remove(), remove) {
				t.Fatalf("Remove() = %q, want %q", p.Remove(), remove)
			}
			if p.HasRefused() != (len(tt.refused) > 0) {
				t.Fatalf("HasRefused %v", p.HasRefused())
			}
		})
	}
}

// Read again just before the original's units are stopped: those of a
// name stored since (v3 or v2, or held under another key) are kept.
func TestStillRemovable(t *testing.T) {
	check := func(string, []byte) error { return nil }
	units := []string{"k2:gone:aaaaaa:bbbbbb:1.service", "k2:old:aaaaaa:bbbbbb:1.service", "k2:held:aaaaaa:bbbbbb:1.service", "k2:stays:aaaaaa:bbbbbb:1.service"}
	before := Make(World{Prefix: "/kaylee2", UnitPrefix: "k2", FleetUnits: units, Check: check})
	now := World{Prefix: "/kaylee2", UnitPrefix: "k2", FleetUnits: units, Check: check,
		V3: map[string][]byte{"gone": []byte(`{"name":"gone"}`), "web": []byte(`{"name":"held"}`)},
		V2: map[string][]byte{"old": []byte(`{"name":"old"}`)}}
	remove, kept := StillRemovable(before, now)
	if !reflect.DeepEqual(remove, []string{"k2:stays:aaaaaa:bbbbbb:1.service"}) ||
		!reflect.DeepEqual(kept, []string{"k2:gone:aaaaaa:bbbbbb:1.service", "k2:held:aaaaaa:bbbbbb:1.service", "k2:old:aaaaaa:bbbbbb:1.service"}) {
		t.Fatalf("StillRemovable: remove %q, kept %q", remove, kept)
	}
}
