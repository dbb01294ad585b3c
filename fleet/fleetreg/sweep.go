package fleetreg

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"

	etcd "github.com/coreos/etcd/client"
)

// Leftovers is what SweepLeftovers removed.
type Leftovers struct {
	UnitFiles int // unit files no fleet unit used
	Dirs      int // empty fleet unit directories
}

// SweepLeftovers removes what fleet's registry keeps of destroyed fleet
// units, where owns says they were the caller's own:
//
//   - unit files no fleet unit uses, whose text ownsFile claims: fleet
//     never deletes a unit file (its DestroyUnit: "TODO(jonboulle): add
//     unit reference counting and actually destroying Units"), and every
//     agent of fleet reads and parses all of them on each of its
//     reconciliations, so each spec change that replaced fleet units
//     made every later reconciliation of every machine a little longer;
//   - empty directories of fleet units whose name ownsName claims: an
//     agent still running a destroyed unit writes its heartbeat once
//     more (<prefix>/job/<unit>/job-state, with a TTL), which recreates
//     the directory the destroy removed; the heartbeat expires, the
//     directory stays.
//
// A unit file is removed only if it is unchanged since it was read (a
// compare-and-delete), and a directory only if it is still empty (etcd
// refuses to delete a directory that is not): a fleet unit created
// meanwhile under an owned name keeps its directory. A unit file stored
// by a CreateUnit under way whose fleet unit is not yet written is the
// one case left to the caller: call it when no CreateUnit of an owned
// unit is under way (fleet's scheduler: between its passes' calls), and
// let ownsFile claim only files no one else writes.
func (a *API) SweepLeftovers(ctx context.Context, ownsName func(name string) bool, ownsFile func(text string) bool) (Leftovers, error) {
	var out Leftovers
	jobs, err := a.keys.Get(ctx, path.Join(a.prefix, "job"), &etcd.GetOptions{Recursive: true, Quorum: true})
	if err != nil && !notFound(err) {
		return out, fmt.Errorf("reading fleet's units: %w", err)
	}
	used := map[string]bool{}
	if jobs != nil && jobs.Node != nil {
		for _, j := range jobs.Node.Nodes {
			if len(j.Nodes) == 0 && j.Dir && ownsName(path.Base(j.Key)) {
				// Dir without Recursive: etcd deletes it only while empty.
				_, err := a.keys.Delete(ctx, j.Key, &etcd.DeleteOptions{Dir: true})
				switch {
				case err == nil:
					out.Dirs++
				case !isCode(err, etcd.ErrorCodeKeyNotFound, etcd.ErrorCodeDirNotEmpty):
					return out, fmt.Errorf("removing the empty %s: %w", j.Key, err)
				}
				continue
			}
			for _, n := range j.Nodes {
				if path.Base(n.Key) != "object" {
					continue
				}
				var m struct{ UnitHash [20]byte }
				if err := json.Unmarshal([]byte(n.Value), &m); err != nil {
					// Unreadable to fleet too; its file, whichever, is kept.
					return out, fmt.Errorf("fleet unit record %s: %w; nothing swept", n.Key, err)
				}
				used[hex.EncodeToString(m.UnitHash[:])] = true
			}
		}
	}
	files, err := a.keys.Get(ctx, path.Join(a.prefix, "unit"), &etcd.GetOptions{Quorum: true})
	if err != nil {
		if notFound(err) {
			return out, nil
		}
		return out, fmt.Errorf("reading fleet's unit files: %w", err)
	}
	for _, f := range files.Node.Nodes {
		if used[path.Base(f.Key)] || f.Dir {
			continue
		}
		var m struct{ Raw string }
		if err := json.Unmarshal([]byte(f.Value), &m); err != nil || !ownsFile(m.Raw) {
			continue
		}
		_, err := a.keys.Delete(ctx, f.Key, &etcd.DeleteOptions{PrevIndex: f.ModifiedIndex})
		switch {
		case err == nil:
			out.UnitFiles++
		case !isCode(err, etcd.ErrorCodeKeyNotFound, etcd.ErrorCodeTestFailed):
			return out, fmt.Errorf("removing the unit file %s: %w", f.Key, err)
		}
	}
	return out, nil
}

func isCode(err error, codes ...int) bool {
	var e etcd.Error
	if !errors.As(err, &e) {
		return false
	}
	for _, c := range codes {
		if e.Code == c {
			return true
		}
	}
	return false
}
