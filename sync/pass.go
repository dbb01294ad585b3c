// Package sync mirrors a git snapshot into the store: one pass with its
// safety rules, and the loop that runs passes on an interval and on
// webhooks.
package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/store"
)

// Store is what a pass needs from the store.
type Store interface {
	ListUnits(ctx context.Context) ([]*store.Unit, int64, error)
	ListSyncRecords(ctx context.Context) (map[string]*store.SyncRecord, error)
	ApplyUnits(ctx context.Context, puts []*deploy.Spec, deletes []string, f store.Fence) error
	PutSyncRecord(ctx context.Context, r *store.SyncRecord, f store.Fence) error
	RollbackPins(ctx context.Context) (map[string]*store.RollbackPin, error)
}

// Options of a pass.
type Options struct {
	Source     string // the source's name: its record and inventory key
	URL, Path  string // recorded with the revision
	AllowEmpty bool   // allow a pass that leaves the source with no unit
	MaxPrune   float64
	Force      bool // allow pruning more than MaxPrune
	DryRun     bool // plan only, write nothing
	Fence      store.Fence
	Now        func() time.Time
}

// DefaultMaxPrune is the share of a source's units one pass may prune
// without --force.
const DefaultMaxPrune = 0.5

// ErrRefused is returned when a safety rule stopped a pass; nothing was
// written.
var ErrRefused = errors.New("sync refused")

// Action of a unit in a pass.
type Action string

// Actions.
const (
	Create    Action = "create"
	Update    Action = "update"
	Prune     Action = "prune"
	Unchanged Action = "unchanged"
	Held      Action = "held" // its file failed: left as it was
	// Kept: rolled back (kaylee rollback) and its file in git is still the
	// one the rollback replaced: left rolled back.
	Kept Action = "kept"
)

// Change is what a pass does (or, dry, would do) to one unit.
type Change struct {
	Name   string   `json:"name"`
	Action Action   `json:"action"`
	File   string   `json:"file,omitempty"`
	Diff   []string `json:"diff,omitempty"` // field-level, for updates
	Note   string   `json:"note,omitempty"` // why, for kept units
}

// Result of a pass.
type Result struct {
	Source   string            `json:"source"`
	Ref      string            `json:"ref"`
	Revision string            `json:"revision"`
	Short    string            `json:"-"`
	Changes  []Change          `json:"changes"`
	Errors   []store.SyncError `json:"errors"`
	DryRun   bool              `json:"dryRun,omitempty"`
}

// Count returns how many units had action a.
func (r *Result) Count(a Action) int {
	n := 0
	for _, c := range r.Changes {
		if c.Action == a {
			n++
		}
	}
	return n
}

// Summary is "main@3f2a9c1: 2 created, 1 updated, 1 pruned, 14 unchanged, 1 error".
func (r *Result) Summary() string {
	s := fmt.Sprintf("%s: %d created, %d updated, %d pruned, %d unchanged", r.Short,
		r.Count(Create), r.Count(Update), r.Count(Prune), r.Count(Unchanged)+r.Count(Held))
	if n := r.Count(Kept); n > 0 {
		s += fmt.Sprintf(", %d kept rolled back", n)
	}
	if n := len(r.Errors); n == 1 {
		s += ", 1 error"
	} else if n > 1 {
		s += fmt.Sprintf(", %d errors", n)
	}
	if r.DryRun {
		s += " (dry run: nothing written)"
	}
	return s
}

// Pass mirrors a snapshot into the store. A file that fails changes
// nothing for the units it held; only units in this source's inventory are
// pruned; a pass that would empty the source or prune more than MaxPrune of
// it is refused (ErrRefused) unless allowed. An error reading the store
// means nothing was written.
func Pass(ctx context.Context, st Store, snap *gitsource.Snapshot, o Options) (*Result, error) {
	return pass(ctx, st, snap, parse(snap), o)
}

func pass(ctx context.Context, st Store, snap *gitsource.Snapshot, p *parsed, o Options) (*Result, error) {
	if o.MaxPrune == 0 {
		o.MaxPrune = DefaultMaxPrune
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	units, _, err := st.ListUnits(ctx)
	if err != nil {
		return nil, err
	}
	records, err := st.ListSyncRecords(ctx)
	if err != nil {
		return nil, err
	}
	pins, err := st.RollbackPins(ctx)
	if err != nil {
		return nil, err
	}
	inventory := map[string]string{}
	if own := records[o.Source]; own != nil && own.Inventory != nil {
		inventory = own.Inventory
	}
	owners := map[string]string{} // unit → another source owning it
	for src, rec := range records {
		if src == o.Source {
			continue
		}
		for name := range rec.Inventory {
			owners[name] = src
		}
	}
	stored := make(map[string]*store.Unit, len(units))
	for _, u := range units {
		stored[u.Name] = u
	}

	res := &Result{Source: o.Source, Ref: snap.Ref, Revision: snap.Revision, Short: snap.Short(), DryRun: o.DryRun}
	res.Errors = append([]store.SyncError(nil), p.errors...)

	held := make(map[string]string, len(p.held)) // p is shared between passes: copy
	for k, v := range p.held {
		held[k] = v
	}
	for name, file := range inventory {
		if p.badFiles[file] && len(p.defs[name]) != 1 {
			held[name] = file
		}
	}
	desired := map[string]*deploy.Document{}
	for name, docs := range p.defs {
		if _, bad := held[name]; bad || len(docs) != 1 {
			continue
		}
		d := docs[0]
		if owner := owners[name]; owner != "" {
			res.Errors = append(res.Errors, store.SyncError{File: d.File, Line: d.Line,
				Message: fmt.Sprintf("unit %q belongs to git source %q; remove it from one of the two", name, owner)})
			continue
		}
		desired[name] = d
	}

	var puts []*deploy.Spec
	var prune []string
	newInventory := map[string]string{}
	for name, d := range desired {
		newInventory[name] = d.File
		c := Change{Name: name, File: d.File, Action: Unchanged}
		value := d.Spec.CanonicalJSON()
		switch cur := stored[name]; {
		case cur == nil:
			c.Action = Create
		case pins[name] != nil && pins[name].Replaced == store.ContentHash(value):
			c.Action = Kept
			c.Note = fmt.Sprintf("rolled back to revision %d (spec %s); git still has the version the rollback replaced: it follows git again when its file changes, or on kaylee resume %s",
				pins[name].Revision, pins[name].SpecHash, name)
		case cur.Err != nil || string(cur.Raw) != string(value):
			c.Action = Update
			c.Diff = diffJSON(cur.Raw, value)
		}
		if c.Action == Kept {
			res.Changes = append(res.Changes, c)
			continue
		}
		if c.Action != Unchanged {
			puts = append(puts, &d.Spec)
		}
		res.Changes = append(res.Changes, c)
	}
	for name, file := range held {
		if _, owned := inventory[name]; owned {
			newInventory[name] = inventory[name]
			res.Changes = append(res.Changes, Change{Name: name, File: file, Action: Held})
		}
	}
	for name := range inventory {
		if _, keep := newInventory[name]; keep {
			continue
		}
		if stored[name] != nil {
			prune = append(prune, name)
			res.Changes = append(res.Changes, Change{Name: name, File: inventory[name], Action: Prune})
		}
	}
	sort.Slice(res.Changes, func(i, j int) bool { return res.Changes[i].Name < res.Changes[j].Name })
	sort.Strings(prune)

	if len(prune) > 0 {
		if len(newInventory) == 0 && !o.AllowEmpty {
			return res, fmt.Errorf("%w: this pass would prune all %d units of source %q and leave it empty (is --path right? is the branch empty?); pass --allow-empty if that is what you want",
				ErrRefused, len(prune), o.Source)
		}
		if share := float64(len(prune)) / float64(len(inventory)); share > o.MaxPrune && !o.Force {
			return res, fmt.Errorf("%w: this pass would prune %d of the %d units of source %q (%.0f%%, more than --max-prune %.0f%%); pass --force if that is what you want",
				ErrRefused, len(prune), len(inventory), o.Source, 100*share, 100*o.MaxPrune)
		}
	}
	if o.DryRun {
		return res, nil
	}

	rec := &store.SyncRecord{Source: o.Source, URL: o.URL, Path: o.Path, Ref: snap.Ref, Revision: snap.Revision, Time: o.Now(),
		Created: res.Count(Create), Updated: res.Count(Update), Pruned: res.Count(Prune),
		Unchanged: res.Count(Unchanged) + res.Count(Held) + res.Count(Kept), Errors: res.Errors, Inventory: newInventory}
	for _, c := range res.Changes {
		if c.Action == Kept {
			if rec.RolledBack == nil {
				rec.RolledBack = map[string]int64{}
			}
			rec.RolledBack[c.Name] = pins[c.Name].Revision
		}
	}
	if rec.Errors == nil {
		rec.Errors = []store.SyncError{}
	}
	if len(puts) > 0 || len(prune) > 0 {
		// Own the new units before creating them, so that a pass killed
		// midway still prunes them later.
		union := make(map[string]string, len(inventory)+len(newInventory))
		for k, v := range inventory {
			union[k] = v
		}
		for k, v := range newInventory {
			union[k] = v
		}
		pre := *rec
		pre.Revision, pre.Inventory = "", union
		if own := records[o.Source]; own != nil {
			pre.Revision, pre.Ref = own.Revision, own.Ref
		}
		if err := st.PutSyncRecord(ctx, &pre, o.Fence); err != nil {
			return res, err
		}
		if err := st.ApplyUnits(ctx, puts, prune, o.Fence); err != nil {
			return res, err
		}
	}
	if err := st.PutSyncRecord(ctx, rec, o.Fence); err != nil {
		return res, err
	}
	return res, nil
}

// parsed is a snapshot's files read and validated.
type parsed struct {
	defs     map[string][]*deploy.Document // valid documents by unit name
	held     map[string]string             // unit → file: named in a failing document
	badFiles map[string]bool
	errors   []store.SyncError
}

func parse(snap *gitsource.Snapshot) *parsed {
	p := &parsed{defs: map[string][]*deploy.Document{}, held: map[string]string{}, badFiles: map[string]bool{}}
	for _, fe := range snap.Errors {
		p.badFiles[fe.Path] = true
		p.errors = append(p.errors, store.SyncError{File: fe.Path, Message: fe.Err.Error()})
	}
	for _, f := range snap.Files {
		docs, err := deploy.Load(f.Path, f.Data)
		if err != nil {
			p.badFiles[f.Path] = true
			for _, fe := range deploy.FieldErrors(err) {
				msg := fe.Msg
				if fe.Field != "" {
					msg = fe.Field + ": " + msg
				}
				p.errors = append(p.errors, store.SyncError{File: f.Path, Line: fe.Line, Message: msg})
			}
		}
		for _, d := range docs {
			switch {
			case d.Err != nil && d.Spec.Name != "":
				p.held[d.Spec.Name] = f.Path
			case d.Err == nil:
				p.defs[d.Spec.Name] = append(p.defs[d.Spec.Name], d)
			}
		}
	}
	for name, docs := range p.defs {
		if len(docs) < 2 {
			continue
		}
		for i, d := range docs {
			other := docs[(i+1)%len(docs)]
			p.errors = append(p.errors, store.SyncError{File: d.File, Line: d.Line,
				Message: fmt.Sprintf("unit %q is also defined in %s:%d; a name must be defined once", name, other.File, other.Line)})
		}
		p.held[name] = docs[0].File
	}
	sort.SliceStable(p.errors, func(i, j int) bool {
		if p.errors[i].File != p.errors[j].File {
			return p.errors[i].File < p.errors[j].File
		}
		return p.errors[i].Line < p.errors[j].Line
	})
	return p
}

// diffJSON lists the top-level fields that differ between two units'
// canonical JSON: "~ replicas: 2 → 3", "+ env: [...]", "- machine: [...]".
func diffJSON(before, after []byte) []string {
	var a, b map[string]json.RawMessage
	_ = json.Unmarshal(before, &a)
	_ = json.Unmarshal(after, &b)
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	order := make([]string, 0, len(keys))
	for k := range keys {
		order = append(order, k)
	}
	sort.Strings(order)
	var out []string
	for _, k := range order {
		x, inA := a[k]
		y, inB := b[k]
		switch {
		case !inA:
			out = append(out, fmt.Sprintf("+ %s: %s", k, y))
		case !inB:
			out = append(out, fmt.Sprintf("- %s: %s", k, x))
		case string(x) != string(y):
			out = append(out, fmt.Sprintf("~ %s: %s → %s", k, x, y))
		}
	}
	if a == nil {
		out = append([]string{"(the stored value did not decode; it is replaced)"}, out...)
	}
	return out
}

// DefaultSourceName derives a source name from a repository URL and path:
// "kaylee-examples" for https://host/org/kaylee.git with path examples.
func DefaultSourceName(url, path string) string {
	base := strings.TrimSuffix(strings.TrimRight(url, "/"), ".git")
	if i := strings.LastIndexAny(base, "/:"); i >= 0 {
		base = base[i+1:]
	}
	name := base
	if p := strings.Trim(path, "/"); p != "" && p != "." {
		name += "-" + p
	}
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	if b.Len() == 0 {
		return "git"
	}
	return b.String()
}
