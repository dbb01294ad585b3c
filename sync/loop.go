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

	// The last snapshot parsed: an unmoved ref gives the same snapshot,
	// which is then not parsed again.
	lastSnap   *gitsource.Snapshot
	lastParsed *parsed
	// lastAttempt is the attempt of the pass before (for the event log).
	lastAttempt *store.SyncAttempt
}

// Report is one pass of a loop as a value: what it fetched and did
// (attempted, and applied unless Err), why it applied nothing, and how
// that is classified (Outcome).
type Report struct {
	// Result is the pass's plan, applied unless Err is set or it was dry;
	// nil when no plan was made (the fetch or the store's read failed).
	Result *Result
	// Err is why the pass applied nothing, or why its attempt could not
	// be recorded.
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
//     was dry, this process no longer leads, or ctx ended.
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
	return rep
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
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rep Report
	snap, err := l.Fetcher.Fetch(pctx)
	rep.Fetched = err == nil
	if err == nil && snap != l.lastSnap {
		var p *parsed
		if p, err = parse(pctx, snap); err == nil {
			l.lastSnap, l.lastParsed = snap, p
		}
	}
	if err == nil {
		rep.Result, err = pass(pctx, l.Store, snap, l.lastParsed, o)
	} else {
		snap = nil
	}
	if err != nil && pctx.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("the pass took longer than its timeout of %s: %w", timeout, err)
	}
	rep.Err = err
	return rep, snap
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
		if prev, err := l.Store.ListSyncAttempts(ctx); err == nil {
			l.lastAttempt = prev[a.Source]
		}
	}
	if err := l.Store.PutSyncAttempt(ctx, a, fence); err != nil && rep.Err == nil {
		rep.Err = err
		return
	}
	rep.EventsErr = l.Store.AppendEvents(ctx, fence, Events(rep.Result, l.lastAttempt, a)...)
	if rep.EventsErr != nil && l.Log != nil {
		l.Log.Warn("event log not written", "source", a.Source, "err", rep.EventsErr)
	}
	l.lastAttempt = a
}

// Run syncs until ctx ends or a write is refused because this process no
// longer leads (store.ErrNotLeader).
func (l *Loop) Run(ctx context.Context, fence store.Fence) error {
	log := l.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	interval := l.Interval
	if interval <= 0 {
		interval = time.Minute
	}
	retries, first := l.Retries, l.RetryFirst
	if retries <= 0 {
		retries = 8
	}
	if first <= 0 {
		first = 500 * time.Millisecond
	}
	triggers := make(chan string, 64)
	if l.Triggers != nil {
		go func() {
			for ctx.Err() == nil {
				for after := range l.Triggers(ctx) {
					select {
					case triggers <- after:
					default: // full: the triggers queued already make a pass that fetches the newest head
					}
				}
				sleepCtx(ctx, time.Second)
			}
		}()
	}
	// failed is the revision fetched by the last pass when that pass
	// failed (refused, unverified, a write that did not go through): a
	// trigger for it that comes after the pass (GitHub's "Redeliver")
	// runs a pass again instead of being dropped as already fetched.
	var failed string
	// warned holds the file errors the last pass logged: one that stays
	// is logged once, not at every pass (sync records and events keep it).
	warned := map[string]bool{}
	pass := func(reason string) (*Result, error) {
		res, err := l.Once(ctx, fence)
		failed = ""
		if err != nil && res != nil {
			failed = res.Revision
		}
		switch {
		case errors.Is(err, store.ErrNotLeader):
			return res, err
		case err != nil && ctx.Err() == nil:
			log.Error("sync failed", "source", l.Options.Source, "reason", reason, "err", err)
		case err == nil:
			lvl := slog.LevelInfo
			if res.Count(Create)+res.Count(Update)+res.Count(Prune) == 0 && len(res.Errors) == 0 {
				lvl = slog.LevelDebug
			}
			log.Log(ctx, lvl, "synced", "source", l.Options.Source, "reason", reason, "summary", res.Summary())
			now := map[string]bool{}
			for _, e := range res.Errors {
				if msg := e.String(); !warned[msg] {
					log.Warn("unit file error; its units are left as they were", "source", l.Options.Source, "error", msg)
				}
				now[e.String()] = true
			}
			warned = now
		}
		return res, nil
	}
	res, err := pass("start")
	if err != nil {
		return err
	}
	seen := &revisions{} // revisions fetched: a trigger for one adds nothing
	if res != nil && failed == "" {
		seen.add(res.Revision)
	}
	var pending triggerSet
	for {
		wait := time.Duration(float64(interval) * (0.9 + 0.2*rand.Float64()))
		if !pending.empty() {
			wait = 0
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
			if pending.empty() {
				if res, err = pass("interval"); err != nil {
					return err
				}
				if res != nil {
					seen.add(res.Revision)
				}
				seen.forget(failed)
				continue
			}
		case after := <-triggers:
			pending.add(after, seen)
		}
		// Webhooks: every trigger queued now is served by one pass (and its
		// retries); a trigger for a commit already fetched (the one applied,
		// or an older one) adds nothing.
		pending.drain(triggers, seen)
		if pending.empty() {
			continue
		}
		target := pending.newest
		pending = triggerSet{}
		delay := first
		for try := 1; ; try++ {
			res, err := pass("webhook")
			if err != nil {
				return err
			}
			if res != nil {
				seen.add(res.Revision)
			}
			// Triggers that came during the pass: those it served go (a
			// failed pass served none: they make one more pass).
			seen.forget(failed)
			pending.drain(triggers, seen)
			if target == "" || res != nil && res.Revision == target {
				break
			}
			if try == retries {
				log.Warn("webhook's commit never appeared at the ref; the next interval will look again",
					"source", l.Options.Source, "after", target, "tries", try)
				break
			}
			log.Info("webhook's commit not fetched yet; retrying", "source", l.Options.Source, "after", target, "in", delay)
			if !sleepCtx(ctx, delay) {
				return nil
			}
			delay = min(2*delay, 8*time.Second)
			if pending.newest != "" { // a newer push meanwhile: wait for it instead
				target, pending = pending.newest, triggerSet{}
			}
		}
	}
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
