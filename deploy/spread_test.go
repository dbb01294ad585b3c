package deploy

import (
	"strings"
	"testing"
)

func zoneCounts(zs []string) map[string]int {
	out := map[string]int{}
	for _, z := range zs {
		out[z]++
	}
	return out
}

func TestAssignZones(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		zones   string // comma-separated
		prev    string // comma-separated, per replica
		skew    int
		want    string
		maxMove int // at most this many replicas change zone
	}{
		{name: "fresh: round the zones", n: 6, zones: "a,b,c", want: "a,b,c,a,b,c"},
		{name: "balanced stays", n: 6, zones: "a,b,c", prev: "c,a,b,c,a,b", want: "c,a,b,c,a,b"},
		{name: "zone a lost: its replicas go to b and c", n: 6, zones: "b,c", prev: "a,b,c,a,b,c", want: "b,b,c,c,b,c", maxMove: 2},
		{name: "zone a back: two replicas move to it", n: 6, zones: "a,b,c", prev: "b,b,c,c,b,c", maxMove: 2},
		{name: "uneven: one zone gets one more", n: 7, zones: "a,b,c", prev: "a,b,c,a,b,c,a", want: "a,b,c,a,b,c,a"},
		{name: "skewed before: evened out", n: 4, zones: "a,b,c", prev: "a,a,b,b", maxMove: 1},
		{name: "skew 2 allowed: nothing moves", n: 4, zones: "a,b,c", prev: "a,a,b,b", skew: 2, want: "a,a,b,b"},
		{name: "no zone: no constraint", n: 3, zones: "", want: ",,"},
		{name: "more zones than replicas", n: 2, zones: "a,b,c,d", want: "a,b"},
		{name: "a new replica: the emptiest zone", n: 4, zones: "a,b,c", prev: "a,b,c", want: "a,b,c,a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var zones, prev []string
			if tt.zones != "" {
				zones = strings.Split(tt.zones, ",")
			}
			if tt.prev != "" {
				prev = strings.Split(tt.prev, ",")
			}
			got := AssignZones(tt.n, zones, prev, tt.skew)
			if tt.want != "" && strings.Join(got, ",") != tt.want {
				t.Errorf("got %s, want %s", strings.Join(got, ","), tt.want)
			}
			if len(zones) > 0 {
				c := zoneCounts(got)
				lo, hi := tt.n, 0
				for _, z := range zones {
					lo, hi = min(lo, c[z]), max(hi, c[z])
				}
				skew := max(tt.skew, 1)
				if hi-lo > skew {
					t.Errorf("%s: skew %d, more than %d", strings.Join(got, ","), hi-lo, skew)
				}
			}
			if tt.maxMove > 0 {
				moved := 0
				for i := range got {
					if i < len(prev) && prev[i] != got[i] {
						moved++
					}
				}
				if moved > tt.maxMove {
					t.Errorf("%s from %s: %d replicas moved, want at most %d", strings.Join(got, ","), tt.prev, moved, tt.maxMove)
				}
			}
		})
	}
}

func TestSpreadRendersAZone(t *testing.T) {
	docs, err := Load("u.yaml", []byte("name: web\nreplicas: 3\nmachine: [role=worker]\nspread: {key: az}\napps:\n- image: docker://web\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := &docs[0].Spec
	machines := []Machine{{ID: "1", Metadata: map[string]string{"az": "b", "role": "worker"}}, {ID: "2", Metadata: map[string]string{"az": "a", "role": "worker"}},
		{ID: "3", Metadata: map[string]string{"az": "c", "role": "edge"}}, {ID: "4", Metadata: map[string]string{"role": "worker"}}}
	zones := Zones(s, machines)
	if strings.Join(zones, ",") != "a,b" {
		t.Fatalf("zones %v: want a,b (c's machine is no worker, 4 has no az)", zones)
	}
	units, err := Render(s, RenderOptions{Zones: AssignZones(3, zones, nil, 1)})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"az=a", "az=b", "az=a"} {
		var md []string
		for _, o := range units[i].Options {
			if o.Name == "MachineMetadata" {
				md = append(md, o.Value)
			}
		}
		if strings.Join(md, " ") != "role=worker "+want || ZoneOf(s, md) != want[3:] {
			t.Errorf("replica %d: MachineMetadata %v, want role=worker %s", i, md, want)
		}
	}
}
