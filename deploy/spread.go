package deploy

import (
	"regexp"
	"sort"
	"strings"
)

// Spread places a unit's replicas evenly over the values of a machine
// metadata key (availability zones, racks) among the machines that match
// the unit's machine constraints.
type Spread struct {
	Key     string `json:"key" yaml:"key"`
	MaxSkew int    `json:"maxSkew,omitempty" yaml:"maxSkew"` // most replicas one value may have over another; default 1
}

// Skew is MaxSkew or its default, 1.
func (s *Spread) Skew() int {
	if s == nil || s.MaxSkew <= 0 {
		return 1
	}
	return s.MaxSkew
}

var metadataKeyRe = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// Zones are the values of the spread key among the machines that match
// the spec's machine constraints, sorted.
func Zones(s *Spec, machines []Machine) []string {
	if s.Spread == nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, m := range machines {
		v, ok := m.Metadata[s.Spread.Key]
		if !ok || v == "" || seen[v] || !s.Matches(m) {
			continue
		}
		seen[v] = true
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// AssignZones gives each of n replicas a zone so that no zone has more
// than maxSkew replicas over another, moving as few replicas as it can
// from prev (the zone each replica has now; "" for none, or for a zone
// that is gone). With no zone it gives none.
func AssignZones(n int, zones, prev []string, maxSkew int) []string {
	out := make([]string, n)
	if len(zones) == 0 {
		return out
	}
	if maxSkew < 1 {
		maxSkew = 1
	}
	live := map[string]bool{}
	for _, z := range zones {
		live[z] = true
	}
	kept := func(i int) string {
		if i < len(prev) && live[prev[i]] {
			return prev[i]
		}
		return ""
	}
	// First try: every replica stays where it is; the others fill the
	// emptiest zones.
	count := map[string]int{}
	for i := range n {
		if z := kept(i); z != "" {
			out[i] = z
			count[z]++
		}
	}
	fill(out, zones, count, func(string) bool { return true })
	if skew(zones, count) <= maxSkew {
		return out
	}
	// Otherwise: even counts (n/k each, one more for n%k zones, given to
	// the zones with the most replicas that want to stay), keeping as many
	// as those counts allow.
	k := len(zones)
	base, extra := n/k, n%k
	want := map[string]int{}
	for i := range n {
		if z := kept(i); z != "" {
			want[z]++
		}
	}
	order := append([]string(nil), zones...)
	sort.SliceStable(order, func(i, j int) bool { return want[order[i]] > want[order[j]] })
	limit := map[string]int{}
	for i, z := range order {
		limit[z] = base
		if i < extra {
			limit[z]++
		}
	}
	clear(count)
	for i := range n {
		out[i] = ""
		if z := kept(i); z != "" && count[z] < limit[z] {
			out[i] = z
			count[z]++
		}
	}
	fill(out, zones, count, func(z string) bool { return count[z] < limit[z] })
	return out
}

// fill gives each replica without a zone the emptiest zone that may take
// it (ties: the first in order).
func fill(out, zones []string, count map[string]int, open func(string) bool) {
	for i := range out {
		if out[i] != "" {
			continue
		}
		best := ""
		for _, z := range zones {
			if open(z) && (best == "" || count[z] < count[best]) {
				best = z
			}
		}
		out[i] = best
		count[best]++
	}
}

func skew(zones []string, count map[string]int) int {
	lo, hi := count[zones[0]], count[zones[0]]
	for _, z := range zones {
		lo, hi = min(lo, count[z]), max(hi, count[z])
	}
	return hi - lo
}

// ZoneOf is the spread value a rendered unit is placed in, from its
// MachineMetadata lines, or "".
func ZoneOf(s *Spec, metadata []string) string {
	if s.Spread == nil {
		return ""
	}
	for _, m := range metadata {
		if k, v, ok := strings.Cut(m, "="); ok && k == s.Spread.Key && !contains(s.Machine, m) {
			return v
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
