package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	gosync "sync"
	"time"

	"github.com/kaylee-gitops/kaylee/config"
	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/notify"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/sync"
)

// notifiers send events to the endpoints of a config file's
// notifications:, each endpoint the kinds it asked for.
type notifiers struct {
	list []notifier
	log  *slog.Logger

	mu   gosync.Mutex
	last map[string]string // source → the result last told, to tell changes only
}

type notifier struct {
	n   *notify.Notifier
	cfg config.Notification
}

func newNotifiers(cf *config.File, log *slog.Logger) (*notifiers, error) {
	ns := &notifiers{log: log, last: map[string]string{}}
	if cf == nil {
		return ns, nil
	}
	for _, c := range cf.Notifications {
		var secret []byte
		if c.SecretFile != "" {
			b, err := os.ReadFile(c.SecretFile)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.Where("secretFile"), err)
			}
			if secret = []byte(strings.TrimSpace(string(b))); len(secret) == 0 {
				return nil, fmt.Errorf("%s: %s is empty", c.Where("secretFile"), c.SecretFile)
			}
		}
		n, err := notify.New([]notify.Endpoint{{URL: c.URL, Secret: secret}}, notify.Options{Log: log})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Where("url"), err)
		}
		ns.list = append(ns.list, notifier{n: n, cfg: c})
	}
	return ns, nil
}

// run delivers until ctx ends.
func (ns *notifiers) run(ctx context.Context) {
	var wg gosync.WaitGroup
	for _, n := range ns.list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.n.Run(ctx)
		}()
	}
	wg.Wait()
}

func (ns *notifiers) send(e notify.Event) {
	for _, n := range ns.list {
		if n.cfg.Wants(e.Kind) {
			n.n.Send(e)
		}
	}
}

// Synced implements sync.Observer: a pass that changed units, and a
// result that differs from the one last told (a failure, a recovery), are
// told; a quiet pass like the one before is not.
func (ns *notifiers) Synced(source string, res *sync.Result, err error, _ time.Duration) {
	if len(ns.list) == 0 || errors.Is(err, store.ErrNotLeader) || errors.Is(err, context.Canceled) {
		return
	}
	a := sync.Attempt(source, nil, res, err, time.Now())
	e := notify.Event{Kind: notify.KindSync, Source: source, Result: a.Result, Reason: a.Message}
	changed := false
	if res != nil {
		e.Ref, e.Revision, e.Summary = res.Ref, res.Revision, res.Summary()
		e.Created, e.Updated, e.Pruned = res.Count(sync.Create), res.Count(sync.Update), res.Count(sync.Prune)
		changed = e.Created+e.Updated+e.Pruned > 0
		for _, fe := range res.Errors {
			e.Errors = append(e.Errors, fe.String())
		}
	}
	var ve *gitsource.VerificationError
	if errors.As(err, &ve) {
		e.Ref, e.Revision = ve.Ref, ve.Revision
	}
	var re *sync.RewindError
	switch {
	case errors.As(err, &re):
		e.RewoundFrom = re.Rewind.From
	case err == nil && res != nil && res.Rewound != nil:
		e.RewoundFrom = res.Rewound.From
	}
	told := a.Result + "\x00" + a.Message + "\x00" + strings.Join(e.Errors, "\n")
	ns.mu.Lock()
	same := ns.last[source] == told
	ns.last[source] = told
	ns.mu.Unlock()
	if changed || !same {
		ns.send(e)
	}
}

// history is the scheduler's fleet.Options.History: rollouts started,
// succeeded and failed.
func (ns *notifiers) history(h store.HistoryEntry) {
	result := map[string]string{store.OutcomeProgressing: "started", store.OutcomeDeployed: "succeeded", store.OutcomeFailed: "failed"}[h.Outcome]
	if h.Change != "" && h.Outcome != store.OutcomeFailed {
		result = "" // replicas added or removed, or the policy changed: no rollout
	}
	if result == "" || len(ns.list) == 0 {
		return
	}
	ns.send(notify.Event{Kind: notify.KindRollout, Unit: h.Unit, SpecHash: h.SpecHash, Result: result, Reason: h.Message,
		Source: h.Source, Revision: h.GitRevision})
}

// observers tell several sync observers about each pass.
type observers []sync.Observer

func (o observers) Synced(source string, res *sync.Result, err error, took time.Duration) {
	for _, x := range o {
		x.Synced(source, res, err, took)
	}
}
