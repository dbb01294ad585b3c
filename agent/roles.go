package agent

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/kaylee-gitops/kaylee/fleet"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/v2units"
	"github.com/kaylee-gitops/kaylee/sync"
)

// role is one job of the agent, run until ctx ends.
type role func(ctx context.Context)

// leader runs jobs while this process leads their election, and keeps
// the kaylee_leader series of each.
type leader struct {
	store *store.Store
	id    string
	ttl   time.Duration
	m     *metrics
	log   *slog.Logger
}

// role runs fn while this process leads e; stopped drops the role's
// series when it stops leading.
func (l leader) role(e store.Election, labels []string, fn func(context.Context, store.Fence) error, stopped func()) role {
	return func(ctx context.Context) {
		l.m.leader.WithLabelValues(labels...).Set(0)
		_ = l.store.Lead(ctx, e, l.id, l.ttl, l.log, func(lctx context.Context, f store.Fence) error {
			l.m.leader.WithLabelValues(labels...).Set(1)
			defer l.m.leader.WithLabelValues(labels...).Set(0)
			defer stopped()
			return fn(lctx, f)
		})
	}
}

// newScheduler assembles the scheduler: fleet's reconciler over the
// store, observed by the metrics, naming this process in its events.
// It is the one place the scheduler is built.
func newScheduler(c Config, m *metrics) (*fleet.Reconciler, error) {
	opts := c.Scheduler.Options
	opts.Observer, opts.ID = m, c.ID
	return fleet.NewReconciler(c.Scheduler.API, c.Store, opts, c.Log)
}

// sourceLoop runs one source while this process leads its sync.
type sourceLoop struct {
	*sync.Loop
	src   Source
	store *store.Store
}

func newSourceLoop(c Config, src Source, obs sync.Observer) *sourceLoop {
	s, name := c.Store, src.name()
	return &sourceLoop{src: src, store: s, Loop: &sync.Loop{Fetcher: src.Fetcher, Store: s, Options: src.Options, Interval: src.Interval,
		Timeout: src.Timeout, Log: c.Log, Observer: obs, ID: c.ID,
		Triggers: func(ctx context.Context) <-chan string { return s.WatchTriggers(ctx, name) }}}
}

// run syncs, or, for a suspended source, records that it is suspended and
// waits.
func (l *sourceLoop) run(ctx context.Context, f store.Fence) error {
	if !l.src.Config.Suspend {
		return l.Loop.Run(ctx, f)
	}
	l.Log.Warn("source suspended in the config file: not syncing it", "source", l.src.name())
	a := &store.SyncAttempt{Source: l.src.name(), Time: time.Now(), Result: store.AttemptSuspended, Leader: l.ID,
		Message: "suspend: true in " + l.src.Config.Where("suspend")}
	if err := l.store.PutSyncAttempt(ctx, a, f); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// roles are the jobs of c: the scheduler (rec, when not nil) and each
// source's sync under their elections, and the background runners.
func roles(c Config, rec *fleet.Reconciler, m *metrics) []role {
	l := leader{store: c.Store, id: c.ID, ttl: c.LeaseTTL, m: m, log: c.Log}
	var out []role
	if rec != nil {
		out = append(out, l.role(store.SchedulerElection, []string{"scheduler", ""}, schedule(c, rec, m), m.stopScheduling))
	}
	for _, src := range c.Sources {
		name := src.name()
		out = append(out, l.role(store.SourceElection(name), []string{"sync", name}, newSourceLoop(c, src, m).run,
			func() { m.stopSyncing(name) }))
	}
	for _, b := range c.Background {
		out = append(out, b)
	}
	return out
}

// schedule is the scheduler's leadership: the reconciler, and beside it
// the bridge of units written through etcd's v2 API when c has one.
func schedule(c Config, rec *fleet.Reconciler, m *metrics) func(context.Context, store.Fence) error {
	if c.Scheduler.V2Units == nil {
		return rec.Run
	}
	b := &v2units.Bridge{Keys: c.Scheduler.V2Units, Store: c.Store, Log: c.Log, Available: m.v2Available}
	return func(ctx context.Context, f store.Fence) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		bridged := make(chan error, 1)
		go func() {
			err := b.Run(ctx, f)
			if err != nil {
				cancel() // the fence is lost: the term ends
			}
			bridged <- err
		}()
		err := rec.Run(ctx, f)
		cancel() // the bridge stops with the reconciler
		return errors.Join(err, <-bridged)
	}
}

// runRoles runs each role until ctx ends.
func runRoles(ctx context.Context, roles []role) {
	done := make(chan struct{}, len(roles))
	for _, r := range roles {
		go func() {
			r(ctx)
			done <- struct{}{}
		}()
	}
	for range roles {
		<-done
	}
}

// webhooks routes the webhook to the sources, triggering through etcd
// (any agent takes it; the sync leader acts). A storm of webhooks for one
// push writes one trigger per source (a second later, the same again: the
// sync loop coalesces the rest).
func webhooks(c Config, m *metrics) *sync.Webhooks {
	h := &sync.Webhooks{Secret: c.HTTP.WebhookSecret, Trigger: c.Store.Trigger, Recent: &sync.Recent{Window: time.Second}, Count: m.Webhook, Log: c.Log}
	for _, src := range c.Sources {
		h.Sources = append(h.Sources, sync.WebhookSource{Name: src.name(), URL: src.URL, Ref: src.Config.Ref})
		// Exported from the start (at 0), so that rate() and the dashboard
		// see the series before the first webhook.
		m.webhooks.WithLabelValues(src.name(), "push", sync.HookTriggered)
	}
	return h
}
