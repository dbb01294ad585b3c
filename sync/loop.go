package sync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/store"
)

// DefaultTimeout bounds a pass when Loop.Timeout is not set.
const DefaultTimeout = 2 * time.Minute

// Fetcher gives the current snapshot of a source (gitsource.Source).
type Fetcher interface {
	Fetch(ctx context.Context) (*gitsource.Snapshot, error)
}

// Tidier is a Fetcher that keeps its cache in shape between passes
// (gitsource.Source merges its packs): the loop asks it after each pass
// that fetched, once the pass's writes are done.
type Tidier interface {
	Tidy(ctx context.Context) error
}

// Observer is told about every pass (for metrics).
type Observer interface {
	Synced(source string, res *Result, err error, took time.Duration)
}

// Loop runs passes on an interval and on triggers. Run it only while
// leading: its writes are fenced.
type Loop struct {
	Fetcher  Fetcher
	Store    Store
	Options  Options       // Source, URL, Path, safety flags
	Interval time.Duration // default 1m; each wait is ±10% at random
	// Timeout bounds one pass (fetch and apply), so that a git server that
	// hangs fails the pass instead of stopping the loop. Default 2m.
	Timeout time.Duration
	// Triggers, when set, gives the commits announced by webhooks (""
	// when unknown); the loop syncs at once on each. A closed channel is
	// watched again.
	Triggers func(ctx context.Context) <-chan string
	// Retry bounds the passes made after a webhook until the fetched head
	// is its commit (git servers can lag behind their webhooks). Default:
	// 8 passes, 500ms apart at first, doubling up to 8s (about a minute).
	Retries    int
	RetryFirst time.Duration
	Log        *slog.Logger
	Observer   Observer
	ID         string // this process, recorded with each attempt

	// The last snapshot parsed, with the scheduler's default engine: an
	// unmoved ref gives the same snapshot, which is then not parsed again
	// unless the default engine changed.
	lastSnap   *gitsource.Snapshot
	lastParsed *parsed
	lastEngine string
	// memo holds the files of the last snapshot parsed: a new one parses
	// the files it changed (see parseMemo).
	memo parseMemo
	// view is the store as the last pass read it: a pass reads what
	// changed since (see viewStore).
	view store.SyncView
	// tidied is the last snapshot after which the Fetcher tidied.
	tidied *gitsource.Snapshot
	// lastAttempt is the attempt of the pass before (for the event log).
	lastAttempt *store.SyncAttempt
}

// Report is one pass of a loop as a value: what it fetched and did
// (attempted, and applied unless Err), why it applied nothing, and how
// that is classified (Outcome).
type Report struct {
	// Result is what the pass planned (changes, file errors), applied
	// when Err is nil and the pass was not dry; nil when no plan was made
	// (the fetch, the unit files or the store's read failed).
	Result *Result
	// Err is why the pass applied nothing; or, after a plan applied, why
	// its attempt could not be recorded (store.ErrNotLeader when this
	// process no longer leads).
	Err error
	// Fetched: the repository was read; an Err came after (the unit
	// files, the store, a safety rule).
	Fetched bool
	// EventsErr: the event log could not be written; the pass stands.
	EventsErr error
}

// Outcome classifies the pass (Outcome): one of the store's Attempt
// results, as recorded.
func (r Report) Outcome() string { return Outcome(r.Result, r.Err) }

// Pass is one pass of the loop, a pipeline of named steps:
//
//  1. fetchAndApply: fetch the source, parse its files (unless the
//     snapshot is the one parsed last) and make the pass (sync.Pass's
//     steps), all within the pass's Timeout;
//  2. observe: tell the Observer;
//  3. record: write the attempt and its events, fenced, unless the pass
//     was dry, this process no longer leads, or ctx ended;
//  4. tidy: when the Fetcher is a Tidier and the pass fetched a new
//     snapshot, let it tidy its cache (after the writes: a push does not
//     wait for it).
//
// A fetch error means nothing was written. Pass is not safe for
// concurrent use (Run calls it in turn).
func (l *Loop) Pass(ctx context.Context, fence store.Fence) Report {
	start := time.Now()
	o := l.Options
	o.Fence = fence
	if h, ok := l.Fetcher.(History); ok && o.History == nil {
		o.History = h
	}
	rep, snap := l.fetchAndApply(ctx, o)
	if l.Observer != nil {
		l.Observer.Synced(o.Source, rep.Result, rep.Err, time.Since(start))
	}
	if errors.Is(rep.Err, store.ErrNotLeader) || ctx.Err() != nil || o.DryRun {
		return rep
	}
	a := Attempt(o.Source, snap, rep.Result, rep.Err, start)
	a.Leader = l.ID
	l.record(ctx, fence, a, &rep)
	l.tidy(ctx, snap)
	return rep
}

// tidy asks a Tidier Fetcher to tidy its cache after a pass that
// fetched a new snapshot (one of an unmoved ref touched no cache); a
// failure is logged, and the pass stands.
func (l *Loop) tidy(ctx context.Context, snap *gitsource.Snapshot) {
	t, ok := l.Fetcher.(Tidier)
	if !ok || snap == nil || snap == l.tidied {
		return
	}
	l.tidied = snap
	ctx, cancel := context.WithTimeout(ctx, l.passTimeout())
	defer cancel()
	if err := t.Tidy(ctx); err != nil && l.Log != nil && ctx.Err() == nil {
		l.Log.Warn("git cache not tidied", "source", l.Options.Source, "err", err)
	}
}

// passTimeout bounds a pass (and a tidy): Timeout, or DefaultTimeout.
func (l *Loop) passTimeout() time.Duration {
	if l.Timeout > 0 {
		return l.Timeout
	}
	return DefaultTimeout
}

// Once is Pass for callers that want its result and error.
func (l *Loop) Once(ctx context.Context, fence store.Fence) (*Result, error) {
	rep := l.Pass(ctx, fence)
	return rep.Result, rep.Err
}

// fetchAndApply fetches, parses and makes the pass within the pass's
// timeout; a pass that ran out of it says so. The snapshot returned is
// the one the attempt names: nil when the fetch or the parse failed.
func (l *Loop) fetchAndApply(ctx context.Context, o Options) (Report, *gitsource.Snapshot) {
	timeout := l.passTimeout()
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rep Report
	// A pass told of a pushed commit (a webhook's) expects files to
	// parse, which need the scheduler's default engine: the store's view
	// is brought up to date while git answers, then again once the files
	// are read (below), so that the plan's state is still read after the
	// fetch, and neither etcd nor git waits for the other.
	var early chan readResult
	if _, ok := l.Store.(viewStore); ok && gitsource.Told(ctx) {
		early = make(chan readResult, 1)
		go func() {
			var r readResult
			r.cur, r.engine, r.err = l.readState(pctx, o)
			early <- r
		}()
	}
	snap, err := l.Fetcher.Fetch(pctx)
	rep.Fetched = err == nil
	var cur *state
	engine := ""
	if early != nil {
		r := <-early // the read uses l.view: wait for it, even after a failed fetch
		if err == nil {
			cur, engine, err = r.cur, r.engine, r.err
		}
	} else if err == nil {
		cur, engine, err = l.readState(pctx, o)
	}
	stale := early != nil // read before the fetch ended: read again
	l.memo.parsed = nil
	if err == nil && (snap != l.lastSnap || engine != l.lastEngine) {
		var p *parsed
		if p, err = l.memo.parse(pctx, snap, engine); err == nil {
			l.lastSnap, l.lastParsed, l.lastEngine = snap, p, engine
			if _, ok := l.Store.(viewStore); ok {
				// The store as it is once the files are read (what
				// changed meanwhile: one request).
				cur, _, err = l.readState(pctx, o)
				stale = false
			}
		}
	}
	if err == nil && stale {
		cur, _, err = l.readState(pctx, o)
	}
	if err == nil {
		rep.Result, err = pass(pctx, l.Store, snap, l.lastParsed, o, cur)
	} else {
		snap = nil
	}
	if err != nil && pctx.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("the pass took longer than its timeout of %s: %w", timeout, err)
	}
	rep.Err = err
	return rep, snap
}

// readResult is what readState returns.
type readResult struct {
	cur    *state
	engine string
	err    error
}

// record writes the attempt a of the pass rep and the events it makes
// after the attempt before. ctx is the loop's, not the pass's: a pass
// that ran out of time is recorded too. An attempt that cannot be
// written fails a pass that had not failed (with store.ErrNotLeader when
// this process no longer leads).
func (l *Loop) record(ctx context.Context, fence store.Fence, a *store.SyncAttempt, rep *Report) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if l.lastAttempt == nil {
		// A new leader goes on from the last attempt any process recorded.
		l.lastAttempt = l.previousAttempt(ctx, a.Source)
	}
	if err := l.Store.PutSyncAttempt(ctx, a, fence); err != nil && rep.Err == nil {
		rep.Err = err
		return
	}
	rep.EventsErr = l.Store.AppendEvents(ctx, fence, Events(rep.Result, rep.Err, l.lastAttempt, a)...)
	if rep.EventsErr != nil && l.Log != nil {
		l.Log.Warn("event log not written", "source", a.Source, "err", rep.EventsErr)
	}
	l.lastAttempt = a
}

// attemptGetter is a store that reads one source's last attempt
// (store.Store does).
type attemptGetter interface {
	GetSyncAttempt(ctx context.Context, source string) (*store.SyncAttempt, error)
}

// previousAttempt is source's last attempt as the store has it (nil when
// none, or when it cannot be read): one key when the store can read one.
func (l *Loop) previousAttempt(ctx context.Context, source string) *store.SyncAttempt {
	if g, ok := l.Store.(attemptGetter); ok {
		a, err := g.GetSyncAttempt(ctx, source)
		if err != nil {
			return nil
		}
		return a
	}
	if prev, err := l.Store.ListSyncAttempts(ctx); err == nil {
		return prev[source]
	}
	return nil
}

// Run syncs until ctx ends or a write is refused because this process no
// longer leads (store.ErrNotLeader). It is a pipeline of named steps:
//
//  1. forwardTriggers: queue the commits webhooks announce (Triggers);
//  2. pass "start": one pass at once;
//  3. wait: for the interval (±10%), or for webhook triggers, coalesced,
//     that name a commit not fetched yet (at once when some wait already);
//  4. on the interval, pass "interval";
//  5. on triggers, serveWebhooks: pass "webhook" until the fetched head
//     is the newest commit announced, retrying with backoff;
//
// then back to 3. Every pass (runner.pass) is Loop.Pass: fetched,
// applied, recorded, then logged; only a lost leadership ends Run.
func (l *Loop) Run(ctx context.Context, fence store.Fence) error {
	r := l.newRunner(fence)
	r.forwardTriggers(ctx)
	if _, err := r.pass(ctx, "start"); err != nil {
		return err
	}
	for {
		var err error
		switch r.wait(ctx) {
		case wakeStop:
			return nil
		case wakeInterval:
			_, err = r.pass(ctx, "interval")
		case wakeWebhook:
			err = r.serveWebhooks(ctx)
		}
		if err != nil {
			return err
		}
	}
}

// runner is the state of one Run.
type runner struct {
	l        *Loop
	fence    store.Fence
	log      *slog.Logger
	interval time.Duration
	retries  int           // passes for one webhook's commit
	first    time.Duration // the first wait between them
	triggers chan string   // the commits webhooks announced ("" when unknown)
	pending  triggerSet    // triggers waiting for a pass
	seen     revisions     // revisions fetched: a trigger for one adds nothing
	// warned holds the file errors the last pass logged: one that stays
	// is logged once, not at every pass (sync records and events keep it).
	warned map[string]bool
	// thaw is when the freeze that held the last pass's changes ends
	// (zero: none, or one without end): the next pass comes then, if
	// before the interval.
	thaw time.Time
}

// newRunner fills in the loop's defaults.
func (l *Loop) newRunner(fence store.Fence) *runner {
	r := &runner{l: l, fence: fence, log: l.Log, interval: l.Interval, retries: l.Retries, first: l.RetryFirst,
		triggers: make(chan string, 64), warned: map[string]bool{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.interval <= 0 {
		r.interval = time.Minute
	}
	if r.retries <= 0 {
		r.retries = 8
	}
	if r.first <= 0 {
		r.first = 500 * time.Millisecond
	}
	return r
}

// forwardTriggers queues the commits of l.Triggers on r.triggers until
// ctx ends, watching again when the channel closes.
func (r *runner) forwardTriggers(ctx context.Context) {
	if r.l.Triggers == nil {
		return
	}
	go func() {
		for ctx.Err() == nil {
			for after := range r.l.Triggers(ctx) {
				select {
				case r.triggers <- after:
				default: // full: the triggers queued already make a pass that fetches the newest head
				}
			}
			sleepCtx(ctx, time.Second)
		}
	}()
}

// wake is why wait returned.
type wake int

const (
	wakeStop     wake = iota // ctx ended
	wakeInterval             // the interval passed, no trigger waits
	wakeWebhook              // triggers wait (r.pending)
)

// wait waits for the next pass. Every trigger queued when it wakes is
// served by one pass (and its retries); a trigger for a commit already
// fetched (the one applied, or an older one) adds nothing.
func (r *runner) wait(ctx context.Context) wake {
	for ctx.Err() == nil {
		wait := time.Duration(float64(r.interval) * (0.9 + 0.2*rand.Float64()))
		if !r.thaw.IsZero() {
			wait = min(wait, max(time.Until(r.thaw)+time.Second, 0))
		}
		if !r.pending.empty() {
			wait = 0
		}
		select {
		case <-ctx.Done():
			return wakeStop
		case <-time.After(wait):
			if r.pending.empty() {
				return wakeInterval
			}
		case after := <-r.triggers:
			r.pending.add(after, &r.seen)
		}
		r.pending.drain(r.triggers, &r.seen)
		if !r.pending.empty() {
			return wakeWebhook
		}
	}
	return wakeStop
}

// serveWebhooks makes passes for the triggers waiting until the fetched
// head is the newest commit they named (git servers can lag behind their
// webhooks): at most r.retries, waiting r.first, then twice as long up
// to 8s, between them. A newer push meanwhile becomes the commit waited
// for.
func (r *runner) serveWebhooks(ctx context.Context) error {
	target := r.pending.newest
	r.pending = triggerSet{}
	delay := r.first
	for try := 1; ; try++ {
		// The commit waited for goes with the pass: over smart HTTP, the
		// fetch asks for its pack while it lists the refs (WithAfter).
		pctx := ctx
		if target != "" {
			pctx = gitsource.WithAfter(ctx, target)
		}
		res, err := r.pass(pctx, "webhook")
		if err != nil {
			return err
		}
		// Triggers that came during the pass: those it served go (a
		// failed pass served none: they make one more pass).
		r.pending.drain(r.triggers, &r.seen)
		if target == "" || res != nil && res.Revision == target {
			return nil
		}
		if try == r.retries {
			r.log.Warn("webhook's commit never appeared at the ref; the next interval will look again",
				"source", r.l.Options.Source, "after", target, "tries", try)
			return nil
		}
		r.log.Info("webhook's commit not fetched yet; retrying", "source", r.l.Options.Source, "after", target, "in", delay)
		if !sleepCtx(ctx, delay) {
			return nil
		}
		delay = min(2*delay, 8*time.Second)
		if r.pending.newest != "" { // a newer push meanwhile: wait for it instead
			target, r.pending = r.pending.newest, triggerSet{}
		}
	}
}

// pass makes one pass (Loop.Pass), notes the revision it fetched and
// logs it. Only a lost leadership (store.ErrNotLeader) is returned: any
// other failure is recorded and logged, and the next pass tries again.
func (r *runner) pass(ctx context.Context, reason string) (*Result, error) {
	rep := r.l.Pass(ctx, r.fence)
	if errors.Is(rep.Err, store.ErrNotLeader) {
		return rep.Result, rep.Err
	}
	r.thaw = thawOf(rep.Result)
	if res := rep.Result; res != nil {
		r.seen.add(res.Revision)
		if rep.Err != nil {
			// Failed (refused, unverified, a write that did not go
			// through): a trigger for its revision that comes after the
			// pass (GitHub's "Redeliver") runs a pass again instead of
			// being dropped as already fetched.
			r.seen.forget(res.Revision)
		}
	}
	r.logPass(ctx, reason, rep)
	return rep.Result, nil
}

// logPass logs a pass: a failure as an error (unless ctx ended), a pass
// that changed something or met file errors as info, a quiet one as
// debug; each file error once while it stays.
func (r *runner) logPass(ctx context.Context, reason string, rep Report) {
	source := r.l.Options.Source
	if rep.Err != nil {
		if ctx.Err() == nil {
			r.log.Error("sync failed", "source", source, "reason", reason, "err", rep.Err)
		}
		return
	}
	res := rep.Result
	lvl := slog.LevelInfo
	if res.Count(Create)+res.Count(Update)+res.Count(Prune) == 0 && len(res.Errors) == 0 {
		lvl = slog.LevelDebug
	}
	r.log.Log(ctx, lvl, "synced", "source", source, "reason", reason, "summary", res.Summary())
	now := map[string]bool{}
	for _, e := range res.Errors {
		if msg := e.String(); !r.warned[msg] {
			r.log.Warn("unit file error; its units are left as they were", "source", source, "error", msg)
		}
		now[e.String()] = true
	}
	r.warned = now
}

// triggerSet is the webhook triggers waiting for a pass, coalesced: the
// newest commit announced, or any pass at all when a trigger named none.
type triggerSet struct {
	any    bool   // a trigger waits
	newest string // the last commit a waiting trigger named ("" when none did)
}

func (s *triggerSet) empty() bool { return !s.any }

// add queues a trigger unless it names a commit already fetched.
func (s *triggerSet) add(after string, seen *revisions) {
	if after != "" && seen.has(after) {
		return
	}
	s.any = true
	if after != "" {
		s.newest = after
	}
}

// drain adds every trigger queued on c without waiting.
func (s *triggerSet) drain(c <-chan string, seen *revisions) {
	for {
		select {
		case after := <-c:
			s.add(after, seen)
		default:
			return
		}
	}
}

// revisions are the last revisions a loop fetched (64 at most): a webhook
// for one of them, late or repeated, needs no pass.
type revisions struct {
	list []string
}

func (r *revisions) add(rev string) {
	if rev == "" || r.has(rev) {
		return
	}
	if len(r.list) == 64 {
		r.list = r.list[1:]
	}
	r.list = append(r.list, rev)
}

// forget removes rev ("" does nothing).
func (r *revisions) forget(rev string) {
	for i, x := range r.list {
		if x == rev {
			r.list = append(r.list[:i], r.list[i+1:]...)
			return
		}
	}
}

func (r *revisions) has(rev string) bool {
	for _, x := range r.list {
		if x == rev {
			return true
		}
	}
	return false
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
