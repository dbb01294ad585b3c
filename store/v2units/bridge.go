package v2units

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	etcd "github.com/coreos/etcd/client"

	"github.com/kaylee-gitops/kaylee/store"
)

// EventBy names the bridge in the events it records (their By field).
const EventBy = "etcd-v2"

// ErrUnavailable: etcd does not serve the v2 API (etcd 3.4 or 3.5 without
// --enable-v2, or 3.6 and later, which dropped it).
var ErrUnavailable = errors.New("etcd's v2 API is not available (etcd 3.4/3.5 serve it with --enable-v2; 3.6 and later do not)")

// Bridge copies the units written through etcd's v2 API to v3 (see the
// package comment). Run it under the scheduler's leadership: only one
// process writes.
type Bridge struct {
	Keys  etcd.KeysAPI
	Store *store.Store
	Log   *slog.Logger
	// Available, when set, is told whether the v2 API answers: false once
	// when it does not (and the bridge goes on without it), true once it
	// does.
	Available func(bool)
	// Retry is how long the bridge waits before asking again after etcd
	// failed (a minute when etcd has no v2 API); zero: 1s, doubling to 30s.
	Retry time.Duration

	refused string // the last refusal of a listing's deletes, said once
}

// Dir is the v2 directory the bridge reads: <prefix>/units.
func (b *Bridge) Dir() string { return b.Store.Prefix() + "/units" }

// Run bridges until ctx ends; its writes are fenced on f. It returns nil
// when ctx ends, an error only when the fence is lost. When etcd has no v2
// API it says so once (log, event, Available) and asks again every minute.
func (b *Bridge) Run(ctx context.Context, f store.Fence) error {
	backoff, off := b.retry(), false
	listed := func() {
		if off {
			b.Log.Info("etcd's v2 API answers again: units written through it are scheduled", "dir", b.Dir())
		}
		off, backoff = false, b.retry()
		b.tell(true)
	}
	for {
		err := b.pass(ctx, f, listed)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, store.ErrNotLeader):
			return err
		case errors.Is(err, ErrUnavailable):
			if !off {
				b.Log.Warn("units written through etcd's v2 API are not scheduled: "+ErrUnavailable.Error()+"; units written through v3 are", "dir", b.Dir())
				b.note(ctx, f, store.Event{Kind: store.EventV2Units, Message: "etcd's v2 API is not available: units written through it under " + b.Dir() + "/ are not scheduled (v3 units are)"})
				b.tell(false)
				off = true
			}
			backoff = time.Minute
		case err != nil:
			b.Log.Warn("etcd v2 units: will try again", "err", err, "in", backoff)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		if !off {
			backoff = min(2*backoff, 30*time.Second)
		}
	}
}

func (b *Bridge) retry() time.Duration {
	if b.Retry > 0 {
		return b.Retry
	}
	return time.Second
}

func (b *Bridge) tell(ok bool) {
	if b.Available != nil {
		b.Available(ok)
	}
}

// pass lists the v2 directory, applies what it holds (and the deletes of
// names recorded but gone), then applies the watch's changes until an
// error; ErrUnavailable when etcd has no v2 API.
func (b *Bridge) pass(ctx context.Context, f store.Fence, listed func()) error {
	l, err := List(ctx, b.Keys, b.Dir())
	if err != nil {
		return err
	}
	writes, index := l.Writes, l.Index
	listed()
	recs, err := b.Store.V2Records(ctx)
	if err != nil {
		return err
	}
	var gone []string
	for name := range recs {
		if _, ok := writes[name]; !ok {
			gone = append(gone, name)
		}
	}
	if err := b.listedDeletes(ctx, f, l, gone, len(recs)); err != nil {
		return err
	}
	for _, w := range sorted(writes) {
		if err := b.apply(ctx, w, f); err != nil {
			return err
		}
	}
	b.Log.Debug("etcd v2 units: listing applied", "dir", b.Dir(), "units", len(l.Writes), "index", index)
	return b.watch(ctx, index, f)
}

// MaxListedDeletes is the share of the names the bridge recorded that a
// listing may delete (names no longer listed, whose deletes the watch
// missed: the bridge was down, or etcd cleared the events): past it (and
// past one name), none is deleted, as a sync refuses to prune more than its
// maxPrune.
const MaxListedDeletes = 0.5

// listedDeletes applies the deletes a listing infers: the names recorded
// (of recorded in all) that l no longer holds. A directory that is gone
// deletes nothing (etcd restored from a v3 snapshot, or the directory
// removed after kaylee migrate): the records are dropped, the v3 units
// kept, and it is said once. More than MaxListedDeletes of them delete
// nothing either (said once while it lasts).
func (b *Bridge) listedDeletes(ctx context.Context, f store.Fence, l Listing, gone []string, recorded int) error {
	slices.Sort(gone)
	switch {
	case len(gone) == 0:
		b.refused = ""
		return nil
	case l.Missing:
		for _, name := range gone {
			if _, err := b.Store.ApplyV2(ctx, name, func(store.V2State) store.V2Apply { return store.V2Apply{DropRecord: true} }, f); err != nil {
				return err
			}
		}
		msg := fmt.Sprintf("the v2 directory %s is gone: v3 units kept (%s: units written through v2 before)", b.Dir(), strings.Join(gone, ", "))
		b.Log.Warn("etcd v2 units: "+msg, "dir", b.Dir())
		b.note(ctx, f, store.Event{Kind: store.EventV2Units, Message: msg})
		return nil
	case len(gone) > 1 && float64(len(gone)) > MaxListedDeletes*float64(recorded):
		msg := fmt.Sprintf("%s no longer holds %d of the %d units written through v2 before (%s), more than %.0f%%: none deleted from v3 (delete them from v3, or write them again through v2)",
			b.Dir(), len(gone), recorded, strings.Join(gone, ", "), 100*MaxListedDeletes)
		if msg != b.refused {
			b.refused = msg
			b.Log.Warn("etcd v2 units: "+msg, "dir", b.Dir())
			b.note(ctx, f, store.Event{Kind: store.EventV2Units, Message: msg})
		}
		return nil
	}
	b.refused = ""
	for _, name := range gone {
		if err := b.apply(ctx, Write{Name: name, Deleted: true}, f); err != nil {
			return err
		}
	}
	return nil
}

// watch applies the v2 changes after index until an error (a watch whose
// index etcd has cleared lists again: the caller's next pass).
func (b *Bridge) watch(ctx context.Context, index uint64, f store.Fence) error {
	w := b.Keys.Watcher(b.Dir(), &etcd.WatcherOptions{AfterIndex: index, Recursive: true})
	for {
		r, err := w.Next(ctx)
		var ee etcd.Error
		if errors.As(err, &ee) && ee.Code == etcd.ErrorCodeEventIndexCleared {
			return nil // etcd keeps 1,000 v2 events (fleet's too): list again
		}
		if err != nil {
			return v2Error("watching "+b.Dir(), err)
		}
		if r.Node == nil || r.Node.Dir {
			return nil // a directory made or removed: list again
		}
		name, ok := store.V2UnitName(b.Dir(), r.Node.Key)
		if !ok {
			continue
		}
		wr := Write{Name: name, Value: []byte(r.Node.Value), Index: r.Node.ModifiedIndex}
		switch r.Action {
		case "delete", "expire", "compareAndDelete":
			wr = Write{Name: name, Deleted: true}
		}
		if err := b.apply(ctx, wr, f); err != nil {
			return err
		}
	}
}

// apply decides and writes one name, and records what it did.
func (b *Bridge) apply(ctx context.Context, w Write, f store.Fence) error {
	var out Outcome
	var owner string
	_, err := b.Store.ApplyV2(ctx, w.Name, func(st store.V2State) store.V2Apply {
		a, o := Decide(w, st)
		out, owner = o, st.Owner
		return a
	}, f)
	if err != nil {
		return err
	}
	ev, ok := event(b.Dir(), w, out, owner)
	if !ok {
		return nil
	}
	b.Log.Info("etcd v2 unit: "+ev.Message, "unit", w.Name, "outcome", string(out))
	b.note(ctx, f, ev)
	return nil
}

// note records an event; the change is made already, so a failure to
// record it is only logged.
func (b *Bridge) note(ctx context.Context, f store.Fence, ev store.Event) {
	ev.By = EventBy
	if err := b.Store.AppendEvents(ctx, f, ev); err != nil && ctx.Err() == nil {
		b.Log.Warn("etcd v2 units: recording an event", "err", err)
	}
}

// event is the event of an outcome, false for none.
func event(dir string, w Write, o Outcome, owner string) (store.Event, bool) {
	key := dir + "/" + w.Name
	var kind, msg string
	switch o {
	case Copied:
		kind, msg = store.EventStored, fmt.Sprintf("written through etcd's v2 API at %s (modifiedIndex %d): copied to v3", key, w.Index)
	case Restarted:
		kind, msg = store.EventRestartRequested, fmt.Sprintf("the same value written again through etcd's v2 API at %s (modifiedIndex %d): every replica is replaced", key, w.Index)
	case Deleted:
		kind, msg = store.EventPruned, fmt.Sprintf("deleted through etcd's v2 API at %s: deleted from v3", key)
	case KeptV3:
		kind, msg = store.EventV2Units, fmt.Sprintf("%s (modifiedIndex %d) differs from the unit stored through v3, which is kept: write it again through v2 to replace it, or run kaylee migrate --overwrite", key, w.Index)
	case KeptGit:
		kind, msg = store.EventV2Units, fmt.Sprintf("%s (modifiedIndex %d) differs from the unit stored through v3, but the unit is owned by git source %q: v3 kept (change it in git)", key, w.Index, owner)
		if w.Deleted {
			msg = fmt.Sprintf("deleted through etcd's v2 API at %s, but the unit is owned by git source %q: v3 kept", key, owner)
		}
	case LeftV3:
		kind, msg = store.EventV2Units, fmt.Sprintf("deleted through etcd's v2 API at %s, but the unit was rewritten through v3 since: kept", key)
	default:
		return store.Event{}, false
	}
	return store.Event{Kind: kind, Unit: w.Name, Message: msg}, true
}
