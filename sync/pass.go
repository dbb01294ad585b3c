// Package sync mirrors a git snapshot into the store: one pass with its
// safety rules, and the loop that runs passes on an interval and on
// webhooks.
package sync

import (
	"bytes"
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
	PutSyncAttempt(ctx context.Context, a *store.SyncAttempt, f store.Fence) error
	AppendEvents(ctx context.Context, f store.Fence, evs ...store.Event) error
	ListSyncAttempts(ctx context.Context) (map[string]*store.SyncAttempt, error)
}

// Options of a pass.
type Options struct {
	Source     string // the source's name: its record and inventory key
	URL, Path  string // recorded with the revision
	AllowEmpty bool   // allow a pass that leaves the source with no unit
	MaxPrune   float64
	Force      bool // allow pruning more than MaxPrune
	// History checks that a revision descends from the one the source last
	// applied (gitsource.Source); nil: not checked. A Loop whose Fetcher
	// is a History uses it when this is nil.
	History History
	// AllowRewind, when not empty, allows a revision that does not
	// descend from the last applied one, and names who allows it for the
	// record ("allowRewind: true at kaylee.yaml:7"); empty: refused
	// (RewindError).
	AllowRewind string
	// ConflictsWith: units of other sources (or made with kaylee run) that
	// this source's units may name in conflicts, as names or families
	// (db, db-*); a source's units may always name its own. Recorded, so
	// that other sources know what it was allowed.
	ConflictsWith []string
	// Freeze: the source's freeze windows (its config's freeze:).
	Freeze []deploy.FreezeWindow
	// OverrideFreeze, when not empty, names who forces a pass through
	// the freezes that hold (user@host): applied, and told.
	OverrideFreeze string
	// OneOff: a pass of its own (kaylee sync --once, kaylee plan), not of
	// the source's sync loop: it neither uses nor takes the override
	// waiting for the loop (kaylee sync --now --force).
	OneOff bool
	DryRun bool // plan only, write nothing
	Fence  store.Fence
	Now    func() time.Time
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
	// Frozen: a change a freeze holds: recorded, not applied.
	Frozen Action = "frozen"
)

// Change is what a pass does (or, dry, would do) to one unit.
type Change struct {
	Name   string   `json:"name"`
	Action Action   `json:"action"`
	File   string   `json:"file,omitempty"`
	Diff   []string `json:"diff,omitempty"` // field-level, for updates
	Note   string   `json:"note,omitempty"` // why, for kept and frozen units
	// New: a frozen change not told before (its event is due).
	New bool `json:"-"`
}

// Result of a pass.
type Result struct {
	Source   string            `json:"source"`
	Ref      string            `json:"ref"`
	Revision string            `json:"revision"`
	Short    string            `json:"-"`
	Changes  []Change          `json:"changes"`
	Errors   []store.SyncError `json:"errors"`
	// Warnings are about valid units, which were applied (an implicit
	// rkt engine).
	Warnings []store.SyncError `json:"warnings,omitempty"`
	DryRun   bool              `json:"dryRun,omitempty"`
	// Rewound: the revision does not descend from the one last applied,
	// and it was applied because that was allowed.
	Rewound *Rewind `json:"rewound,omitempty"`
	// Frozen: a freeze of the source held the revision: nothing was
	// written but the record. FrozenNew: it was not held before.
	Frozen    *store.FrozenRevision `json:"frozen,omitempty"`
	FrozenNew bool                  `json:"-"`
	// FrozenUnits: the units a freeze of their own held.
	FrozenUnits map[string]*store.FrozenRevision `json:"frozenUnits,omitempty"`
	// Overridden: the freezes a forced pass went through, and who forced it.
	Overridden   []string `json:"overridden,omitempty"`
	OverriddenBy string   `json:"overriddenBy,omitempty"`
	// Docs are the documents the pass applies (or, dry, would apply), by
	// unit name, with the lines of their fields (kaylee plan places them).
	Docs map[string]*deploy.Document `json:"-"`
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
	if n := r.Count(Frozen); n > 0 {
		s += fmt.Sprintf(", %d held by a freeze", n)
	}
	if n := len(r.Errors); n == 1 {
		s += ", 1 error"
	} else if n > 1 {
		s += fmt.Sprintf(", %d errors", n)
	}
	if r.Rewound != nil {
		s += "; " + r.Rewound.Applied()
	}
	if r.DryRun {
		s += " (dry run: nothing written)"
	}
	return s
}

// Pass mirrors a snapshot into the store: it reads the store, checks the
// revision's history, plans (a pure step: inventory diff, ownership,
// safety rules) and applies the plan. A revision that does not descend
// from the one the source last applied is refused (RewindError) unless
// allowed; a file that fails changes nothing for the units it held; only
// units in this source's inventory are pruned; a pass that would empty
// the source or prune more than MaxPrune of it is refused (ErrRefused)
// unless allowed. An error reading the store means nothing was written.
func Pass(ctx context.Context, st Store, snap *gitsource.Snapshot, o Options) (*Result, error) {
	engine, err := defaultEngine(ctx, st)
	if err != nil {
		return nil, err
	}
	p, err := parse(ctx, snap, engine)
	if err != nil {
		return nil, err
	}
	return pass(ctx, st, snap, p, o, nil)
}

// pass is Pass with the files parsed (p), planning with cur, the state
// read already (nil: read it now). A pass whose claim of new units lost
// to another pass that wrote meanwhile (store.ErrClaimRace) reads the
// store again and plans again, up to claimAttempts times.
func pass(ctx context.Context, st Store, snap *gitsource.Snapshot, p *parsed, o Options, cur *state) (*Result, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	for attempt := 1; ; attempt++ {
		if cur == nil {
			var err error
			if cur, err = readState(ctx, st); err != nil {
				return nil, err
			}
			if err := readFreezes(ctx, st, cur, o.Source, o.OneOff, o.Now()); err != nil {
				return nil, err
			}
		}
		res, err := passWith(ctx, st, snap, p, o, cur)
		if !errors.Is(err, store.ErrClaimRace) || attempt == claimAttempts {
			return res, err
		}
		cur = nil
	}
}

// claimAttempts bounds the plans of a pass whose claims keep losing to
// other passes' writes (each loss means another pass wrote: progress).
const claimAttempts = 5

// passWith is one plan and apply of a pass with the state cur.
func passWith(ctx context.Context, st Store, snap *gitsource.Snapshot, p *parsed, o Options, cur *state) (*Result, error) {
	rewound, err := checkHistory(ctx, cur.records[o.Source], snap, o)
	if err != nil {
		return &Result{Source: o.Source, Ref: snap.Ref, Revision: snap.Revision, Short: snap.Short(), DryRun: o.DryRun,
			Changes: []Change{}, Errors: []store.SyncError{}}, err
	}
	cs, err := plan(snap, p, cur, o)
	cs.Result.Rewound = rewound
	if err != nil || o.DryRun {
		return cs.Result, err
	}
	if err := cs.apply(ctx, st, o.Fence); err != nil {
		return cs.Result, err
	}
	if fs, ok := st.(freezeStore); ok && cur.override != nil {
		// Taken whether or not a freeze held: an override is for the
		// pass it asked for, not for a commit that comes later.
		err = fs.TakeFreezeOverride(ctx, cur.override, o.Fence)
	}
	return cs.Result, err
}

// state is what a plan reads from the store.
type state struct {
	units   map[string]*store.Unit
	records map[string]*store.SyncRecord // by source
	pins    map[string]*store.RollbackPin
	// freezes are the manual freezes; override the source's waiting
	// override (kaylee sync --now --force), nil when none.
	freezes  []*store.ManualFreeze
	override *store.FreezeOverride
	// rev is a revision the records are no older than: a pass that
	// claims new units writes only if no record was written after it.
	rev int64
}

func readState(ctx context.Context, st Store) (*state, error) {
	units, rev, err := st.ListUnits(ctx)
	if err != nil {
		return nil, err
	}
	records, err := st.ListSyncRecords(ctx) // at rev or later
	if err != nil {
		return nil, err
	}
	pins, err := st.RollbackPins(ctx)
	if err != nil {
		return nil, err
	}
	s := &state{units: make(map[string]*store.Unit, len(units)), records: records, pins: pins, rev: rev}
	for _, u := range units {
		s.units[u.Name] = u
	}
	return s, nil
}

// Changeset is a planned pass: what happens to each unit (Result), the
// writes that make it so, and the source's record before and after.
type Changeset struct {
	Result *Result
	Puts   []*deploy.Spec
	Prune  []string
	// Own is the record written before the units, owning every unit of the
	// old and new inventories, so that a pass killed midway still prunes
	// the units it created; nil when no unit is written.
	Own *store.SyncRecord
	// Record is the source's record once applied.
	Record *store.SyncRecord
	// SameRecord: Record is the source's record as stored but for its
	// time, and no unit is written: the record is not written again.
	SameRecord bool
	// ClaimsAt, when the pass claims units its source did not own, is
	// the revision the records were read at (store.Fence.ClaimsAt): the
	// claim is written only if no other pass wrote a record since.
	ClaimsAt int64
}

// inventory is a source's units: name → file.
type inventory map[string]string

func union(a, b inventory) inventory {
	out := make(inventory, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// plan is a pass without the store: its phases each do one thing.
func plan(snap *gitsource.Snapshot, p *parsed, cur *state, o Options) (*Changeset, error) {
	if o.MaxPrune == 0 {
		o.MaxPrune = DefaultMaxPrune
	}
	res := &Result{Source: o.Source, Ref: snap.Ref, Revision: snap.Revision, Short: snap.Short(), DryRun: o.DryRun}
	res.Errors = append([]store.SyncError(nil), p.errors...)
	res.Warnings = p.warnings
	cs := &Changeset{Result: res}

	owned := inventory{}
	if own := cur.records[o.Source]; own != nil && own.Inventory != nil {
		owned = own.Inventory
	}
	held := holdFailing(p, owned)
	owners := ownedElsewhere(cur.records, o.Source)
	desired := claim(p, held, owners, res)
	res.Docs = desired
	scope := newConflictScope(p, owned, held, owners, cur, o)
	refuseConflicts(desired, held, scope, res)
	refuseDomainClaims(desired, held, scope, res)
	refuseDependsOn(p, desired, held, scope, res)
	refuseSecrets(snap, desired, held, res)
	next := cs.diff(p, desired, cur, res)
	keepHeld(held, owned, next, res)
	cs.pruneRemoved(owned, next, cur.units, res)
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	// The safety rules judge the revision before a freeze holds any of
	// it: a revision they refuse is refused now (kaylee plan says so),
	// not at the end of the freeze.
	err := checkSafety(len(cs.Prune), owned, next, o)
	if err == nil {
		cs.holdFrozen(owned, next, cur, o, now())
	}
	sort.Slice(res.Changes, func(i, j int) bool { return res.Changes[i].Name < res.Changes[j].Name })
	if err != nil {
		return cs, err
	}
	cs.record(snap, owned, next, cur, o)
	for name := range next {
		if _, ok := owned[name]; !ok {
			cs.ClaimsAt = cur.rev
			break
		}
	}
	return cs, nil
}

// ownedElsewhere maps each unit another source owns to that source.
func ownedElsewhere(records map[string]*store.SyncRecord, source string) map[string]string {
	owners := map[string]string{}
	for src, rec := range records {
		if src == source {
			continue
		}
		for name := range rec.Inventory {
			owners[name] = src
		}
	}
	return owners
}

// holdFailing: the units whose file fails stay as they are. They are the
// units named in failing documents, and the owned units of a failing file
// that the snapshot does not define cleanly elsewhere.
func holdFailing(p *parsed, owned inventory) inventory {
	held := make(inventory, len(p.held)) // p is shared between passes: copy
	for k, v := range p.held {
		held[k] = v
	}
	for name, file := range owned {
		if p.badFiles[file] && len(p.defs[name]) != 1 {
			held[name] = file
		}
	}
	return held
}

// claim picks the documents this source applies: defined once, not held,
// and not owned by another source (an error, reported on the document).
func claim(p *parsed, held inventory, owners map[string]string, res *Result) map[string]*deploy.Document {
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
	return desired
}

// diff compares each desired unit with the stored one and returns the
// new inventory.
func (cs *Changeset) diff(p *parsed, desired map[string]*deploy.Document, cur *state, res *Result) inventory {
	next := inventory{}
	for name, d := range desired {
		next[name] = d.File
		c := Change{Name: name, File: d.File, Action: Unchanged}
		value := p.canonical(d)
		switch stored, pin := cur.units[name], cur.pins[name]; {
		case stored == nil:
			c.Action = Create
		case pin != nil && pin.Replaced == store.ContentHash(value):
			c.Action = Kept
			c.Note = fmt.Sprintf("rolled back to revision %d (spec %s); git still has the version the rollback replaced: it follows git again when its file changes, or on kaylee resume %s",
				pin.Revision, pin.SpecHash, name)
		case stored.Err != nil || string(stored.Raw) != string(value):
			c.Action = Update
			c.Diff = diffJSON(stored.Raw, value)
		}
		if c.Action == Create || c.Action == Update {
			cs.Puts = append(cs.Puts, &d.Spec)
		}
		res.Changes = append(res.Changes, c)
	}
	sort.Slice(cs.Puts, func(i, j int) bool { return cs.Puts[i].Name < cs.Puts[j].Name })
	return next
}

// keepHeld keeps the owned units whose file fails in the inventory.
func keepHeld(held, owned, next inventory, res *Result) {
	for name, file := range held {
		if _, ok := owned[name]; ok {
			next[name] = owned[name]
			res.Changes = append(res.Changes, Change{Name: name, File: file, Action: Held})
		}
	}
}

// pruneRemoved: the owned units git no longer has (and the store still
// does) are pruned.
func (cs *Changeset) pruneRemoved(owned, next inventory, units map[string]*store.Unit, res *Result) {
	for name, file := range owned {
		if _, keep := next[name]; keep || units[name] == nil {
			continue
		}
		cs.Prune = append(cs.Prune, name)
		res.Changes = append(res.Changes, Change{Name: name, File: file, Action: Prune})
	}
	sort.Strings(cs.Prune)
}

// checkSafety refuses a pass that empties the source (unless AllowEmpty,
// which is then enough) or prunes more than MaxPrune of it (unless Force).
func checkSafety(prune int, owned, next inventory, o Options) error {
	if prune == 0 {
		return nil
	}
	r := &RefusedError{Source: o.Source, Prune: prune, Owned: len(owned), MaxPrune: o.MaxPrune}
	if len(next) == 0 {
		if o.AllowEmpty {
			return nil
		}
		r.Empty = true
		return r
	}
	if float64(prune)/float64(len(owned)) > o.MaxPrune && !o.Force {
		return r
	}
	return nil
}

// RefusedError is a pass a safety rule refused: it would have left the
// source empty (Empty), or pruned more than MaxPrune of its units.
type RefusedError struct {
	Source       string
	Prune, Owned int
	MaxPrune     float64
	Empty        bool
}

func (e *RefusedError) Error() string {
	if e.Empty {
		return fmt.Sprintf("%v: this pass would prune all %d units of source %q and leave it empty (is the path right? is the branch empty?)",
			ErrRefused, e.Prune, e.Source)
	}
	return fmt.Sprintf("%v: this pass would prune %d of the %d units of source %q (%.0f%%, more than the %.0f%% allowed)",
		ErrRefused, e.Prune, e.Owned, e.Source, 100*float64(e.Prune)/float64(e.Owned), 100*e.MaxPrune)
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// record fills the source's records: Record as applied, and Own when
// units are written.
func (cs *Changeset) record(snap *gitsource.Snapshot, owned, next inventory, cur *state, o Options) {
	res := cs.Result
	rec := &store.SyncRecord{Source: o.Source, URL: o.URL, Path: o.Path, Ref: snap.Ref, Revision: snap.Revision, Time: o.Now(),
		Created: res.Count(Create), Updated: res.Count(Update), Pruned: res.Count(Prune),
		Unchanged: res.Count(Unchanged) + res.Count(Held) + res.Count(Kept), Errors: res.Errors, Inventory: next,
		ConflictsWith: o.ConflictsWith, Frozen: res.Frozen, FrozenUnits: res.FrozenUnits, Freeze: o.Freeze}
	defer func() { cs.SameRecord = cs.Own == nil && sameRecord(cs.Record, cur.records[o.Source]) }()
	if res.Frozen != nil {
		cs.Record = heldRecord(rec, cur.records[o.Source])
		return
	}
	for _, c := range res.Changes {
		if c.Action == Kept {
			if rec.RolledBack == nil {
				rec.RolledBack = map[string]int64{}
			}
			rec.RolledBack[c.Name] = cur.pins[c.Name].Revision
		}
	}
	if rec.Errors == nil {
		rec.Errors = []store.SyncError{}
	}
	cs.Record = rec
	if len(cs.Puts) > 0 || len(cs.Prune) > 0 {
		own := *rec
		own.Revision, own.Inventory = "", union(owned, next)
		if prev := cur.records[o.Source]; prev != nil {
			own.Revision, own.Ref = prev.Revision, prev.Ref
		}
		cs.Own = &own
	}
}

// sameRecord says whether rec, written, would be prev (as stored: nil
// when none) but for its time.
func sameRecord(rec, prev *store.SyncRecord) bool {
	if prev == nil {
		return false
	}
	a, b := *rec, *prev
	a.Time, b.Time = time.Time{}, time.Time{}
	a.URL = store.RedactURL(a.URL)
	ja, errA := json.Marshal(&a)
	jb, errB := json.Marshal(&b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// unitsWithRecord is a store that writes units and a record in one
// transaction (store.Store does).
type unitsWithRecord interface {
	ApplyUnitsWithRecord(ctx context.Context, puts []*deploy.Spec, deletes []string, r *store.SyncRecord, f store.Fence) error
}

// apply writes a changeset: the units with the record in one
// transaction when the store can and they fit in one; else the owning
// record, the units, the record. A record that did not change is not
// written. The first write makes the claims: it is the one conditional
// on the records being as read (ClaimsAt).
func (cs *Changeset) apply(ctx context.Context, st Store, f store.Fence) error {
	if cs.Own == nil && cs.SameRecord {
		return nil
	}
	claim := f
	claim.ClaimsAt = cs.ClaimsAt
	if aw, ok := st.(unitsWithRecord); ok && cs.Own != nil {
		err := aw.ApplyUnitsWithRecord(ctx, cs.Puts, cs.Prune, cs.Record, claim)
		if !errors.Is(err, store.ErrTooManyWrites) {
			return err
		}
	}
	if cs.Own != nil {
		if err := st.PutSyncRecord(ctx, cs.Own, claim); err != nil {
			return err
		}
		if err := st.ApplyUnits(ctx, cs.Puts, cs.Prune, f); err != nil {
			return err
		}
	}
	if cs.Own == nil {
		f = claim // the record is the first write
	}
	return st.PutSyncRecord(ctx, cs.Record, f)
}

// Outcome classifies a pass by what it returned: one of the store's
// Attempt results (synced, file-errors, refused, unverified, failed). The
// CLI's exit code, the metrics and the attempt record all follow it.
func Outcome(res *Result, err error) string {
	switch {
	case errors.Is(err, ErrRefused):
		return store.AttemptRefused
	case errors.Is(err, gitsource.ErrUnverified):
		return store.AttemptUnverified
	case err != nil:
		return store.AttemptFailed
	case res != nil && res.Frozen != nil:
		return store.AttemptFrozen
	case res != nil && len(res.Errors) > 0:
		return store.AttemptFileErrors
	}
	return store.AttemptSynced
}

// Attempt describes a pass for <prefix>/attempts/<source>: its result,
// and why when it applied nothing. snap is what was fetched (nil when the
// fetch failed).
func Attempt(source string, snap *gitsource.Snapshot, res *Result, err error, start time.Time) *store.SyncAttempt {
	a := &store.SyncAttempt{Source: source, Time: start, Took: time.Since(start).Seconds(), Result: store.AttemptSynced}
	var ve *gitsource.VerificationError
	switch {
	case snap != nil:
		a.Ref, a.Revision = snap.Ref, snap.Revision
	case errors.As(err, &ve):
		a.Ref, a.Revision = ve.Ref, ve.Revision
	}
	a.Result = Outcome(res, err)
	if a.Result == store.AttemptFileErrors {
		a.Message = fmt.Sprintf("%d file errors; their units were left as they were", len(res.Errors))
		if len(res.Errors) == 1 {
			a.Message = "1 file error; its units were left as they were"
		}
	}
	if a.Result == store.AttemptFrozen {
		a.Message = fmt.Sprintf("revision recorded, not applied: %s, %s", res.Frozen.Reason, until(res.Frozen))
	}
	if res != nil && res.Rewound != nil && err == nil {
		a.Message = strings.TrimSuffix(res.Rewound.Applied()+"; "+a.Message, "; ")
	}
	if err != nil {
		a.Message = err.Error() + "; nothing was written"
	}
	return a
}

// schedulerSettings is a store that has the scheduler's published
// settings (store.Store has).
type schedulerSettings interface {
	GetSchedulerSettings(ctx context.Context) (*store.SchedulerSettings, error)
}

// defaultEngine is the engine the scheduler runs a unit that names none
// with, as its leader published it; "" (rkt) when st does not tell. An
// error reading it fails the pass: a file validated for another engine
// than the scheduler's could be written, and then refused by it.
func defaultEngine(ctx context.Context, st Store) (string, error) {
	ss, ok := st.(schedulerSettings)
	if !ok {
		return "", nil
	}
	settings, err := ss.GetSchedulerSettings(ctx)
	if err != nil {
		return "", fmt.Errorf("reading the scheduler's default engine: %w", err)
	}
	return settings.DefaultEngine, nil
}

// parsed is a snapshot's files read and validated.
type parsed struct {
	defs     map[string][]*deploy.Document // valid documents by unit name
	held     map[string]string             // unit → file: named in a failing document
	badFiles map[string]bool
	errors   []store.SyncError
	warnings []store.SyncError // of valid documents
	// canon is the canonical JSON of each valid document.
	canon map[*deploy.Document][]byte
}

// canonical is d's canonical JSON.
func (p *parsed) canonical(d *deploy.Document) []byte {
	if b, ok := p.canon[d]; ok {
		return b
	}
	return d.Spec.CanonicalJSON()
}

// fail records err, the errors of a file (nil: none), each with note.
func (fp *fileParse) fail(file string, err error, note string) {
	if err == nil {
		return
	}
	fp.bad = true
	for _, fe := range deploy.FieldErrors(err) {
		msg := fe.Msg
		if fe.Field != "" {
			msg = fe.Field + ": " + msg
		}
		fp.errors = append(fp.errors, store.SyncError{File: file, Line: fe.Line, Message: msg + note})
	}
}

// parse reads every file of the snapshot. A file's work is bounded by
// deploy (its size by gitsource, its aliases and nesting by the decoder);
// the context is checked between files, so a pass's timeout ends a
// revision of many costly files. Nothing is written before parse returns.
// A unit that names no engine is validated and warned about as the
// scheduler runs it, with engine ("" is rkt): a file that engine refuses
// changes nothing.
func parse(ctx context.Context, snap *gitsource.Snapshot, engine string) (*parsed, error) {
	return (&parseMemo{}).parse(ctx, snap, engine)
}

// parse is parse reading and validating only the files of snap the memo
// does not hold as they are (see parseMemo); the memo then holds snap's.
func (m *parseMemo) parse(ctx context.Context, snap *gitsource.Snapshot, engine string) (*parsed, error) {
	p := &parsed{defs: map[string][]*deploy.Document{}, held: map[string]string{}, badFiles: map[string]bool{},
		canon: make(map[*deploy.Document][]byte, len(snap.Files))}
	for _, fe := range snap.Errors {
		p.badFiles[fe.Path] = true
		p.errors = append(p.errors, store.SyncError{File: fe.Path, Message: fe.Err.Error()})
	}
	m.parsed = nil
	next := make(map[string]memoEntry, len(snap.Files))
	for _, f := range snap.Files {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("reading the unit files of %s: stopped at %s: %w", snap.Short(), f.Path, err)
		}
		fp := m.lookup(f, engine, next)
		if fp.bad {
			p.badFiles[f.Path] = true
		}
		p.errors = append(p.errors, fp.errors...)
		p.warnings = append(p.warnings, fp.warnings...)
		for i, d := range fp.docs {
			switch {
			case d.Err != nil && d.Spec.Name != "":
				p.held[d.Spec.Name] = f.Path
			case d.Err == nil:
				p.defs[d.Spec.Name] = append(p.defs[d.Spec.Name], d)
				p.canon[d] = fp.canon[i]
			}
		}
	}
	m.files, m.engine = next, engine
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
	p.refuseDomainClashes()
	byPlace(p.errors)
	byPlace(p.warnings)
	return p, nil
}

// parseFile reads and validates one file with engine.
func parseFile(f gitsource.File, engine string) *fileParse {
	fp := &fileParse{}
	docs, err := deploy.Load(f.Path, f.Data)
	fp.fail(f.Path, err, "")
	fp.docs, fp.canon = docs, make([][]byte, len(docs))
	for i, d := range docs {
		if d.Err == nil && d.Spec.Engine == "" {
			if err := d.ValidateWithDefaultEngine(engine); err != nil {
				d.Err = err
				fp.fail(f.Path, err, fmt.Sprintf(" (%s names no engine: it runs with the scheduler's default engine %s)", d.Spec.Name, engine))
			}
		}
		if d.Err == nil {
			fp.canon[i] = d.Spec.CanonicalJSON()
			for _, w := range d.WarningsWithDefaultEngine(engine) {
				fp.warnings = append(fp.warnings, store.SyncError{File: w.File, Line: w.Line, Message: w.Field + ": " + w.Msg})
			}
		}
	}
	return fp
}

// byPlace orders errors or warnings by file, then line, so that a
// revision's messages read the same whatever order its files came in.
func byPlace(es []store.SyncError) {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].File != es[j].File {
			return es[i].File < es[j].File
		}
		return es[i].Line < es[j].Line
	})
}

// diffJSON lists the top-level fields that differ between two units'
// canonical JSON: "~ replicas: 2 → 3", "+ env: [...]", "- machine: [...]".
func diffJSON(before, after []byte) []string {
	changes, decoded := deploy.ChangedFields(before, after)
	var out []string
	if !decoded {
		out = append(out, "(the stored value did not decode; it is replaced)")
	}
	for _, c := range changes {
		if c.Field == "env" {
			// A secret shows as its fingerprint: a rotation is
			// "age:1a2b3c4d" → "age:9f8e7d6c", never the ciphertext.
			c.Before, c.After = maskSecrets(c.Before), maskSecrets(c.After)
		}
		switch {
		case c.Before == nil:
			out = append(out, fmt.Sprintf("+ %s: %s", c.Field, c.After))
		case c.After == nil:
			out = append(out, fmt.Sprintf("- %s: %s", c.Field, c.Before))
		default:
			out = append(out, fmt.Sprintf("~ %s: %s → %s", c.Field, c.Before, c.After))
		}
	}
	return out
}

// maskSecrets masks the secrets of an env field's JSON (nil stays nil).
func maskSecrets(env json.RawMessage) json.RawMessage {
	if env == nil {
		return nil
	}
	return deploy.MaskSecrets(env)
}

// DefaultSourceName derives a source name from a repository URL and path:
// "kaylee-examples" for https://host/org/kaylee.git with path examples.
func DefaultSourceName(url, path string) string {
	base := strings.TrimSuffix(strings.TrimRight(url, "/"), ".git")
	if i := strings.LastIndexAny(base, "/:"); i >= 0 {
		base = base[i+1:]
	}
	if i := strings.LastIndexByte(base, '@'); i >= 0 {
		base = base[i+1:] // a URL without a path: its host, never its user info
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
