package sync

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/kaylee-gitops/kaylee/store"
)

// Events are what a pass tells the event log, given the attempt it made (a)
// and the one before it (prev, nil when unknown): the revision applied and
// each unit written or pruned, when it changed something; a rewind
// applied because it was allowed; a pass that
// applied nothing or met file errors, when the result changed; and the
// first clean pass after such failures. err is why the pass applied
// nothing, if it did not. The events that tell the pass's outcome (synced,
// rewound, sync-failed, sync-ok) carry what it did (store.PassOutcome),
// for notifications.
func Events(res *Result, err error, prev, a *store.SyncAttempt) []store.Event {
	var out []store.Event
	applied := a.Result == store.AttemptSynced || a.Result == store.AttemptFileErrors
	if applied && res != nil && !res.DryRun {
		out = appliedEvents(res, a.Source)
	}
	if e, ok := outcomeEvent(res, prev, a); ok {
		out = append(out, e)
	}
	if err == nil {
		out = append(out, freezeEvents(res, a.Source)...)
	}
	pass := outcome(res, err, a, applied)
	for i := range out {
		if out[i].Kind != store.EventFreezeOverridden {
			out[i].By = a.Leader
		}
		switch out[i].Kind {
		case store.EventSynced, store.EventRewound, store.EventSyncFailed, store.EventSyncOK, store.EventFrozen, store.EventFreezeOverridden:
			out[i].Pass = pass
		}
	}
	return out
}

// appliedEvents are the events of a pass that applied a revision: the
// rewind, when it was one, and the revision with each unit it wrote or
// pruned, when it changed something.
func appliedEvents(res *Result, src string) []store.Event {
	var out, units []store.Event
	for _, c := range res.Changes {
		if e, ok := changeEvent(c, src, res.Revision); ok {
			units = append(units, e)
		}
	}
	if res.Rewound != nil {
		out = append(out, store.Event{Kind: store.EventRewound, Source: src, Revision: res.Revision, Message: res.Rewound.Applied()})
	}
	if len(units) > 0 {
		out = append(out, store.Event{Kind: store.EventSynced, Source: src, Revision: res.Revision, Message: res.Summary()})
		out = append(out, units...)
	}
	return out
}

// changeEvent is the event of one unit a pass wrote or pruned; false for
// an action that is not told.
func changeEvent(c Change, src, revision string) (store.Event, bool) {
	e := store.Event{Kind: store.EventStored, Unit: c.Name, Source: src, Revision: revision}
	switch c.Action {
	case Create:
		e.Message = "created from " + c.File
	case Update:
		e.Message = "changed in " + c.File
		if len(c.Diff) > 0 {
			e.Message += ": " + clip(strings.Join(c.Diff, "; "), maxDiff)
		}
	case Prune:
		e.Kind, e.Message = store.EventPruned, "its file was removed from git"
	default:
		return store.Event{}, false
	}
	return e, true
}

// outcomeEvent tells how a pass went, when that is news: the first clean
// pass after failures, or a failure that is new. A refusal is new also
// when it is another one (a rewind to another revision, after a prune
// refused).
func outcomeEvent(res *Result, prev, a *store.SyncAttempt) (store.Event, bool) {
	changed := prev == nil || prev.Result != a.Result ||
		a.Result == store.AttemptRefused && (prev.Message != a.Message || prev.Revision != a.Revision)
	switch {
	case a.Result == store.AttemptSynced:
		if prev != nil && prev.Result != store.AttemptSynced && prev.Result != store.AttemptSuspended && prev.Result != store.AttemptFrozen {
			return store.Event{Kind: store.EventSyncOK, Source: a.Source, Revision: a.Revision,
				Message: fmt.Sprintf("passes apply cleanly again (the last one before was %s)", prev.Result)}, true
		}
	case a.Result == store.AttemptSuspended, a.Result == store.AttemptFrozen:
	case changed:
		msg := a.Message
		if a.Result == store.AttemptFileErrors && res != nil {
			var files []string
			for _, e := range res.Errors {
				files = append(files, e.String())
			}
			msg += ": " + strings.Join(files, "; ")
		}
		return store.Event{Kind: store.EventSyncFailed, Source: a.Source, Revision: a.Revision, Message: a.Result + ": " + msg}, true
	}
	return store.Event{}, false
}

// outcome is what the pass did, as its events carry it: the units it
// wrote are counted only when it applied its plan (a refused or failed
// pass wrote none, whatever it had planned).
func outcome(res *Result, err error, a *store.SyncAttempt, applied bool) *store.PassOutcome {
	p := &store.PassOutcome{Ref: a.Ref, Result: a.Result, Reason: a.Message}
	if res != nil {
		if p.Ref == "" {
			p.Ref = res.Ref
		}
		p.Summary = res.Summary()
		if applied && !res.DryRun {
			p.Created, p.Updated, p.Pruned = res.Count(Create), res.Count(Update), res.Count(Prune)
		}
		for _, fe := range res.Errors {
			p.Errors = append(p.Errors, fe.String())
		}
	}
	var re *RewindError
	switch {
	case errors.As(err, &re):
		p.RewoundFrom = re.Rewind.From
	case err == nil && res != nil && res.Rewound != nil:
		p.RewoundFrom = res.Rewound.From
	}
	return p
}

// maxDiff bounds the field diff an event carries: kaylee sync --dry-run
// shows it whole.
const maxDiff = 300

// clip cuts s to at most n bytes, on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
