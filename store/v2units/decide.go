// Package v2units schedules units written through etcd's v2 keys API, as
// monder/kaylee stored them and as CI scripts written for it still do
// (etcdctl set, curl .../v2/keys/kaylee2/units/NAME -XPUT -d value=...):
// a bridge, run by the scheduler's leader, copies each v2 write under
// <prefix>/units/ to the v3 key Kaylee reads, and a v2 delete deletes it.
//
// The rules (Decide) keep v3 the source of truth when both are written:
//   - a v2 write is copied when it is newer than the last one the bridge
//     saw of that name (its v2 modifiedIndex, recorded in v3 at
//     <prefix>/v2units/<name>), so a restart of the bridge never applies an
//     old v2 write over a newer v3 one;
//   - at first sight (no record: the bridge has never seen the name) a v2
//     value is copied only when v3 has no unit of that name or the same
//     value;
//   - the same value written again through v2 (the original's kaylee
//     restart) restarts the unit as kaylee restart does;
//   - a v2 delete deletes the v3 unit only while it still holds what came
//     from v2;
//   - a unit a git source owns (its inventory holds it) is as at first
//     sight: a v2 write is copied only when v3 has none, a v2 delete
//     deletes nothing;
//   - a listing infers deletes (names recorded but no longer listed: the
//     watch missed them) only when the directory exists and they are at
//     most half the names recorded: a directory gone (etcd restored from a
//     v3 snapshot, etcdctl rm -r) deletes nothing.
package v2units

import (
	"bytes"

	"github.com/kaylee-gitops/kaylee/store"
)

// Write is one v2 node under the units directory as the bridge sees it: a
// value written at Index, or (Deleted) gone.
type Write struct {
	Name    string
	Value   []byte
	Index   uint64 // the node's modifiedIndex; 0 for a delete
	Deleted bool
}

// Outcome is what Decide did with a write, for the log and the events.
type Outcome string

// Outcomes of Decide.
const (
	Nothing   Outcome = ""          // already seen, or nothing to do
	Copied    Outcome = "copied"    // the v2 value was stored as the v3 unit
	Same      Outcome = "same"      // v3 held the value already: recorded only
	Restarted Outcome = "restarted" // the same value again: the unit restarts
	Deleted   Outcome = "deleted"   // deleted in v2: the v3 unit is deleted
	KeptV3    Outcome = "kept-v3"   // first sight of a v2 value that differs from v3: v3 kept
	LeftV3    Outcome = "left-v3"   // deleted in v2, but v3 no longer holds the v2 value: v3 kept
	KeptGit   Outcome = "kept-git"  // a git source owns the unit: v3 kept
)

// Decide is what the bridge writes for w given the v3 side st.
func Decide(w Write, st store.V2State) (store.V2Apply, Outcome) {
	if w.Deleted {
		return decideDelete(st)
	}
	rec := st.Record
	if st.Owner != "" {
		rec = nil // a git source owns the unit: as at first sight
	}
	if rec != nil && rec.Index >= w.Index {
		return store.V2Apply{}, Nothing
	}
	hash := store.ContentHash(w.Value)
	seen := &store.V2Record{Index: w.Index, Hash: hash, Copied: true}
	same := st.Value != nil && bytes.Equal(st.Value, w.Value)
	switch {
	case rec == nil && st.Value != nil && !same:
		seen.Copied = false
		if st.Owner != "" {
			return store.V2Apply{Record: seen}, KeptGit
		}
		return store.V2Apply{Record: seen}, KeptV3
	case rec != nil && same && rec.Hash == hash:
		return store.V2Apply{Restart: true, Record: seen}, Restarted
	case same:
		return store.V2Apply{Record: seen}, Same
	}
	return store.V2Apply{Put: w.Value, Record: seen}, Copied
}

func decideDelete(st store.V2State) (store.V2Apply, Outcome) {
	rec := st.Record
	switch {
	case rec == nil:
		return store.V2Apply{}, Nothing
	case st.Value == nil:
		return store.V2Apply{DropRecord: true}, Nothing
	case st.Owner != "":
		return store.V2Apply{DropRecord: true}, KeptGit
	case rec.Copied && store.ContentHash(st.Value) == rec.Hash:
		return store.V2Apply{Delete: true, DropRecord: true}, Deleted
	}
	return store.V2Apply{DropRecord: true}, LeftV3
}

// FirstSight is how a copy without a record goes (kaylee migrate, and the
// bridge's first sight of a name): whether the v2 value v2 would be copied
// over v3 (nil: no unit), and whether they are the same.
func FirstSight(v2, v3 []byte) Outcome {
	_, o := Decide(Write{Value: v2, Index: 1}, store.V2State{Value: v3})
	return o
}

// Migrate is what kaylee migrate writes for the v2 value w: as at the
// bridge's first sight (copied when v3 has no unit or the same one), or,
// with overwrite, w's value over a v3 unit that differs, unless a git
// source owns it. Its record makes the bridge take w as seen.
func Migrate(w Write, overwrite bool) func(store.V2State) store.V2Apply {
	return func(st store.V2State) store.V2Apply {
		a, o := Decide(w, store.V2State{Value: st.Value, Owner: st.Owner})
		if o == KeptV3 && overwrite {
			a.Put, a.Record.Copied = w.Value, true
		}
		return a
	}
}
