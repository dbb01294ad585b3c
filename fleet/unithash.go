package fleet

import (
	"hash/maphash"

	"github.com/coreos/fleet/schema"
)

// unitHashes remembers, from pass to pass, the unit file hash (fleet's:
// SHA-1 of the unit file as fleet serializes it) of the options of the
// fleet units a pass reads. Every pass reads every fleet unit, and
// hashing each one again was more than half of the planning of a pass
// that changes nothing (BenchmarkPlanNoop: 1,000 units × 3 replicas,
// 3,000 serializations and SHA-1s). An entry is found by a 64-bit hash
// of the options and checked against the options themselves, so a
// collision costs a hash, never a wrong one.
type unitHashes struct {
	seed    maphash.Seed
	entries map[uint64]*hashedOptions
	pass    uint64
}

type hashedOptions struct {
	options []option
	hash    string
	pass    uint64 // the last pass that used it
}

// option is what of a unit option its unit file holds.
type option struct{ section, name, value string }

func newUnitHashes() *unitHashes {
	return &unitHashes{seed: maphash.MakeSeed(), entries: map[uint64]*hashedOptions{}}
}

// of is the unit file hash of options (unitHash's).
func (h *unitHashes) of(options []*schema.UnitOption) string {
	var mh maphash.Hash
	mh.SetSeed(h.seed)
	for _, o := range options {
		mh.WriteString(o.Section)
		mh.WriteByte(0)
		mh.WriteString(o.Name)
		mh.WriteByte(0)
		mh.WriteString(o.Value)
		mh.WriteByte(0)
	}
	k := mh.Sum64()
	e := h.entries[k]
	if e != nil && sameOptions(e.options, options) {
		e.pass = h.pass
		return e.hash
	}
	sum := unitHash(options)
	if e == nil { // (on a collision, the entry there stays)
		kept := make([]option, len(options))
		for i, o := range options {
			kept[i] = option{o.Section, o.Name, o.Value}
		}
		h.entries[k] = &hashedOptions{options: kept, hash: sum, pass: h.pass}
	}
	return sum
}

// sweep ends a pass: the options no fleet unit of the pass had are
// forgotten.
func (h *unitHashes) sweep() {
	for k, e := range h.entries {
		if e.pass != h.pass {
			delete(h.entries, k)
		}
	}
	h.pass++
}

func sameOptions(kept []option, options []*schema.UnitOption) bool {
	if len(kept) != len(options) {
		return false
	}
	for i, o := range options {
		if kept[i] != (option{o.Section, o.Name, o.Value}) {
			return false
		}
	}
	return true
}
