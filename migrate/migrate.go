// Package migrate plans the move from monder/kaylee, the program Kaylee
// descends from, to Kaylee on the same etcd and fleet (kaylee migrate):
// which units written through etcd's v2 API are copied to v3, which fleet
// units of the original are adopted (replaced by a rollout of the stored
// unit) and which are left alone, and which stored JSON the scheduler
// refuses. It is pure: the CLI reads etcd and fleet, and prints.
package migrate

import (
	"maps"
	"slices"
	"strings"

	"github.com/kaylee-gitops/kaylee/fleet"
	"github.com/kaylee-gitops/kaylee/store/v2units"
)

// World is what migrate reads.
type World struct {
	Prefix     string // Kaylee's etcd prefix (/kaylee2)
	UnitPrefix string // fleet unit prefix (k2)
	// V2 holds the units written through etcd's v2 API under
	// <Prefix>/units/, by name; V2Error says why they could not be read
	// (etcd has no v2 API), V2 is then empty.
	V2      map[string][]byte
	V2Error string
	// V3 holds the units stored through v3, by name.
	V3 map[string][]byte
	// FleetUnits are the names of every fleet unit.
	FleetUnits []string
	// Overwrite: a v2 unit that differs from v3 replaces it.
	Overwrite bool
	// Check is the scheduler's check of stored JSON (store.CheckStored):
	// why it refuses value stored as name, nil when it schedules it.
	Check func(name string, value []byte) error
}

// Copy actions.
const (
	CopyNew       = "copy"      // no v3 unit: the v2 one is copied
	CopySame      = "same"      // v3 holds the same JSON: nothing to do
	CopyKeepV3    = "keep-v3"   // v3 differs and is kept (without --overwrite)
	CopyOverwrite = "overwrite" // v3 differs and is replaced (--overwrite)
)

// Copy is a unit written through v2 and what happens to it.
type Copy struct {
	Name   string `json:"name"`
	V2Key  string `json:"v2Key"`
	Action string `json:"action"`
}

// Original is the fleet units of the original of one unit name.
type Original struct {
	Name       string   `json:"name"`
	FleetUnits []string `json:"fleetUnits"`
	// Waits: the name is stored but its JSON is refused: the scheduler
	// adopts them once it is fixed.
	Waits bool `json:"waits,omitempty"`
	// HeldBy: the name is not stored, but the value under this other key
	// has it as its JSON name (refused: the key is the unit's name), as
	// monder/kaylee named its fleet units: they are that value's, never
	// removed.
	HeldBy string `json:"heldBy,omitempty"`
}

// Refused is stored JSON the scheduler refuses.
type Refused struct {
	Name   string `json:"name"`
	Where  string `json:"where"` // "v3 KEY" or "v2 KEY"
	Reason string `json:"reason"`
	Fix    string `json:"fix"`
}

// Plan is what kaylee migrate does (or, with --dry-run, would do).
type Plan struct {
	V2Error   string     `json:"v2Error,omitempty"`
	Copy      []Copy     `json:"copy"`
	Adopt     []Original `json:"adopt"`
	Refused   []Refused  `json:"refused"`
	LeftAlone []Original `json:"leftAlone"`
}

// Make plans the migration of w.
func Make(w World) Plan {
	p := Plan{V2Error: w.V2Error, Copy: []Copy{}, Adopt: []Original{}, Refused: []Refused{}, LeftAlone: []Original{}}
	stored := map[string]bool{}
	for name := range w.V3 {
		stored[name] = true
	}
	refused := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(w.V3)) {
		if err := w.Check(name, w.V3[name]); err != nil {
			refused[name] = true
			p.Refused = append(p.Refused, Refused{Name: name, Where: "v3 " + w.Prefix + "/units/" + name, Reason: err.Error(), Fix: fixV3(w.Prefix, name)})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(w.V2)) {
		c := Copy{Name: name, V2Key: w.Prefix + "/units/" + name, Action: copyAction(w.V2[name], w.V3[name], w.Overwrite)}
		p.Copy = append(p.Copy, c)
		stored[name] = true
		if c.Action == CopySame || c.Action == CopyKeepV3 {
			continue // v3's JSON is what the scheduler reads
		}
		if err := w.Check(name, w.V2[name]); err != nil {
			refused[name] = true
			p.Refused = append(p.Refused, Refused{Name: name, Where: "v2 " + c.V2Key, Reason: err.Error(), Fix: fixV2(c.V2Key, name)})
		}
	}
	slices.SortStableFunc(p.Refused, func(a, b Refused) int { return strings.Compare(a.Name, b.Name) })
	adopt, left := fleet.OriginalUnits(w.UnitPrefix, w.FleetUnits, stored)
	for _, name := range slices.Sorted(maps.Keys(adopt)) {
		p.Adopt = append(p.Adopt, Original{Name: name, FleetUnits: adopt[name], Waits: refused[name]})
	}
	values := maps.Clone(w.V2)
	if values == nil {
		values = map[string][]byte{}
	}
	maps.Copy(values, w.V3) // both are read: a v3 value of a key wins
	held := fleet.HeldNames(values)
	for _, name := range slices.Sorted(maps.Keys(left)) {
		p.LeftAlone = append(p.LeftAlone, Original{Name: name, FleetUnits: left[name], HeldBy: held[name]})
	}
	return p
}

// copyAction is what happens to a v2 value given v3's (nil: none): the
// bridge's first sight, and --overwrite.
func copyAction(v2, v3 []byte, overwrite bool) string {
	switch v2units.FirstSight(v2, v3) {
	case v2units.Copied:
		return CopyNew
	case v2units.Same:
		return CopySame
	}
	if overwrite {
		return CopyOverwrite
	}
	return CopyKeepV3
}

// HasRefused reports whether some stored JSON is refused.
func (p Plan) HasRefused() bool { return len(p.Refused) > 0 }

// Copies are the v2 units kaylee migrate writes to v3.
func (p Plan) Copies() []Copy {
	var out []Copy
	for _, c := range p.Copy {
		if c.Action == CopyNew || c.Action == CopyOverwrite {
			out = append(out, c)
		}
	}
	return out
}

// Remove are the fleet units kaylee migrate --remove-original stops and
// destroys: the original's units of names not stored, nor held by a value
// stored under another key.
func (p Plan) Remove() []string {
	var out []string
	for _, o := range p.LeftAlone {
		if o.HeldBy == "" {
			out = append(out, o.FleetUnits...)
		}
	}
	return out
}

// StillRemovable is what of before.Remove() may still be removed given
// now, the stored units read again just before they are stopped: those of
// names still not stored (nor held); kept are the others, stored since.
func StillRemovable(before Plan, now World) (remove, kept []string) {
	still := map[string]bool{}
	for _, n := range Make(now).Remove() {
		still[n] = true
	}
	for _, n := range before.Remove() {
		if still[n] {
			remove = append(remove, n)
		} else {
			kept = append(kept, n)
		}
	}
	return remove, kept
}

func fixV3(prefix, name string) string {
	return "save it (etcdctl get --print-value-only " + prefix + "/units/" + name + " > " + name + ".json), correct it as the reason says, check it with kaylee validate " + name + ".json, store it with kaylee run " + name + ".json"
}

func fixV2(key, name string) string {
	return "save it (ETCDCTL_API=2 etcdctl get " + key + " > " + name + ".json), correct it as the reason says, check it with kaylee validate " + name + ".json, then set it again through v2 or store it with kaylee run " + name + ".json"
}
