// Package notify tells external systems (chat bridges, CI, audit) about
// sync results and rollout outcomes: each Event is POSTed as JSON to every
// configured endpoint, signed with HMAC-SHA256 over the exact body bytes.
//
// Sending never blocks the caller. Each endpoint has its own bounded queue
// and its own worker, so a slow or dead receiver delays nobody else; when a
// queue is full the new event is dropped for that endpoint and counted.
// Delivery is in order per endpoint, at most MaxAttempts tries per event,
// and best effort: events still queued when Run ends are lost.
//
// What is told comes from the event log (follow.go): FromEvent maps the
// store's events to notifications, and a Follower, run by the one process
// that leads store.NotifyElection, tells them, resuming after a failover
// from a cursor in etcd, so that what a Notifier lost when its Run ended
// is told by the next leader.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/kaylee-gitops/kaylee/store"
)

// Event kinds.
const (
	KindSync    = "sync"    // a sync pass of a source
	KindRollout = "rollout" // a rollout of a unit
)

// Headers set on every request, besides Content-Type and User-Agent.
const (
	// SignatureHeader carries Sign(secret, body) when the endpoint has a
	// secret; it is absent otherwise.
	SignatureHeader = "X-Kaylee-Signature-256"
	// EventHeader carries the event's Kind.
	EventHeader = "X-Kaylee-Event"
	// DeliveryHeader carries the event's ID: the same on every retry of
	// one event, so that receivers can drop duplicates.
	DeliveryHeader = "X-Kaylee-Delivery"
)

// Event is one notification, sent as the JSON request body. Fields that
// do not apply to the Kind are left empty and omitted.
type Event struct {
	Kind string    `json:"kind"` // KindSync or KindRollout
	Time time.Time `json:"time"` // when it happened; Send sets the current time when zero
	// ID identifies the delivery: the event's ID in the event log (see
	// FromEvent); Send sets 32 random hex digits when it is empty. It is
	// sent as DeliveryHeader too.
	ID string `json:"id"`

	// For KindSync.
	Source   string `json:"source,omitempty"`   // the source's name
	Repo     string `json:"repo,omitempty"`     // the git repository's URL
	Ref      string `json:"ref,omitempty"`      // the branch or tag
	Revision string `json:"revision,omitempty"` // full git commit hash

	// Result is, for KindSync, "synced", "file-errors", "failed",
	// "refused" (a safety rule, a rewind among them), "unverified",
	// "frozen" (a change freeze held the revision, or a unit's change:
	// Unit names it) or "freeze-overridden" (Reason names who); for
	// KindRollout, "started", "succeeded", "failed" or "rolled-back" (the
	// revision a rollback replaced).
	Result  string `json:"result,omitempty"`
	Summary string `json:"summary,omitempty"` // one line for people

	// For KindSync: the units created, updated and pruned, and the unit
	// file errors as "FILE:LINE: message".
	Created int      `json:"created,omitempty"`
	Updated int      `json:"updated,omitempty"`
	Pruned  int      `json:"pruned,omitempty"`
	Errors  []string `json:"errors,omitempty"`
	// RewoundFrom, for KindSync, is the revision the source had applied
	// when Revision does not descend from it (the ref was moved back or
	// its history rewritten): refused, or synced because allowed (the
	// Summary then says by what).
	RewoundFrom string `json:"rewoundFrom,omitempty"`

	// For KindRollout.
	Unit     string `json:"unit,omitempty"`     // the unit's name
	SpecHash string `json:"specHash,omitempty"` // the hash of the unit's spec being rolled out
	Reason   string `json:"reason,omitempty"`   // why it started, or why it failed
	// Evidence, for a failed rollout, is what the failing replica's
	// machine saw: exit status, restarts, last journal lines (see
	// store.Evidence), when that machine runs kaylee evidence.
	Evidence *store.Evidence `json:"evidence,omitempty"`
}

// Endpoint is one receiver. A URL may carry user:password (sent as basic
// auth); logs and Observer calls show it with the password and query
// values replaced by "xxxxx".
type Endpoint struct {
	URL string
	// Secret signs each body (SignatureHeader). When empty, requests are
	// not signed.
	Secret []byte
}

// Observer is told the outcome of each event at each endpoint, for
// metrics. Its methods may be called concurrently, Dropped from Send's
// caller: they must be quick and must not block. endpoint is the URL as
// logged (password and query values redacted).
type Observer interface {
	// Delivered: the receiver answered 2xx.
	Delivered(endpoint string)
	// Failed: the last attempt failed, or the receiver refused the event
	// (a 4xx other than 408 and 429). err says why.
	Failed(endpoint string, err error)
	// Dropped: the endpoint's queue was full and the event was not queued.
	Dropped(endpoint string)
}

// Options tune a Notifier. The zero value gives the defaults.
type Options struct {
	// QueueSize bounds the events waiting for each endpoint; default 256.
	// When full, Send drops the new event for that endpoint.
	QueueSize int
	// MaxAttempts bounds the requests made for one event; default 6.
	MaxAttempts int
	// FirstBackoff is the wait after a first failed attempt, doubling
	// after each further one up to MaxBackoff, each ±20% at random.
	// Defaults 1s and 1m. A Retry-After answer (in seconds) is honoured
	// instead, up to MaxBackoff.
	FirstBackoff time.Duration
	MaxBackoff   time.Duration
	// Timeout bounds each request, its answer included; default 10s.
	Timeout time.Duration
	// Client makes the requests. Default: a client with Timeout that does
	// not follow redirects (a 3xx answer is a failure, not retried). A
	// given Client is used as it is; Timeout still bounds each request.
	Client   *http.Client
	Log      *slog.Logger // default: discard
	Observer Observer     // optional
}

// Notifier delivers events to endpoints. Make one with New, call Run once
// in its own goroutine, and Send from anywhere.
type Notifier struct {
	endpoints []*endpoint
	o         Options // with the defaults filled in
	log       *slog.Logger
	running   atomic.Bool
}

// dropWarnEvery bounds the "queue full" warnings of one endpoint.
const dropWarnEvery = time.Minute

// bodySnippet is how much of a refusing answer's body is logged.
const bodySnippet = 200

type endpoint struct {
	url    string // as configured: for requests
	shown  string // redacted: for logs, errors and the Observer
	secret []byte
	queue  chan delivery

	mu       sync.Mutex
	lastWarn time.Time // the last "queue full" warning
	unwarned int       // events dropped since then
	dropped  int       // events dropped in all
}

// delivery is an event as sent: its body is encoded once, by Send.
type delivery struct {
	id, kind string
	body     []byte
	done     *tracker // nil: nobody waits
}

// tracker calls fn once an event is done with at every endpoint.
type tracker struct {
	left atomic.Int64
	fn   func()
}

func (t *tracker) end() {
	if t != nil && t.left.Add(-1) == 0 {
		t.fn()
	}
}

// New checks the endpoints' URLs (http or https, with a host) and the
// options, and returns a Notifier. With no endpoints it does nothing.
func New(endpoints []Endpoint, o Options) (*Notifier, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	n := &Notifier{o: o, log: o.Log}
	for _, e := range endpoints {
		if err := checkURL(e.URL); err != nil {
			return nil, fmt.Errorf("notify: endpoint %q: %w", redactRaw(e.URL), err)
		}
		n.endpoints = append(n.endpoints, &endpoint{
			url:    e.URL,
			shown:  redact(e.URL),
			secret: bytes.Clone(e.Secret),
			queue:  make(chan delivery, o.QueueSize),
		})
	}
	return n, nil
}

func (o *Options) defaults() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"QueueSize", int64(o.QueueSize)},
		{"MaxAttempts", int64(o.MaxAttempts)},
		{"FirstBackoff", int64(o.FirstBackoff)},
		{"MaxBackoff", int64(o.MaxBackoff)},
		{"Timeout", int64(o.Timeout)},
	} {
		if f.v < 0 {
			return fmt.Errorf("notify: Options.%s is negative", f.name)
		}
	}
	if o.QueueSize == 0 {
		o.QueueSize = 256
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 6
	}
	if o.FirstBackoff == 0 {
		o.FirstBackoff = time.Second
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = time.Minute
	}
	if o.FirstBackoff > o.MaxBackoff {
		return fmt.Errorf("notify: Options.FirstBackoff (%v) is longer than Options.MaxBackoff (%v)", o.FirstBackoff, o.MaxBackoff)
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Client == nil {
		o.Client = &http.Client{
			Timeout: o.Timeout,
			// A redirected POST may become a GET without a body, or take
			// the signature to another host: a webhook URL must be exact.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

func checkURL(raw string) error {
	if strings.IndexFunc(raw, unicode.IsSpace) >= 0 {
		return errors.New("contains white space")
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold a password
		}
		return fmt.Errorf("not a URL: %w", err)
	}
	switch {
	case u.Scheme == "":
		return errors.New("no scheme: want http:// or https://")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("scheme %q is not http or https", u.Scheme)
	case u.Hostname() == "":
		return errors.New("no host")
	}
	return nil
}

// redact gives the URL with its password and query values replaced by
// "xxxxx", and without its fragment.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return redactRaw(raw)
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"xxxxx"}
		}
		u.RawQuery = q.Encode()
	}
	u.Fragment, u.RawFragment = "", ""
	return u.Redacted()
}

// redactRaw redacts the URL's password and query as text, keeping the
// rest as written: for URLs that may not parse.
func redactRaw(raw string) string {
	s := raw
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i] + "?xxxxx"
	}
	start := strings.Index(s, "://") + 3 // 2 when absent: from the start
	if start < 3 {
		start = 0
	}
	end := len(s)
	if i := strings.IndexAny(s[start:], "/?"); i >= 0 {
		end = start + i
	}
	if at := strings.LastIndex(s[start:end], "@"); at >= 0 {
		user := s[start : start+at]
		if c := strings.Index(user, ":"); c >= 0 {
			s = s[:start+c+1] + "xxxxx" + s[start+at:]
		}
	}
	return s
}

// Send queues e for every endpoint and returns at once; where a queue is
// full, e is dropped for that endpoint (Observer.Dropped, and a warning at
// most once a minute per endpoint). e is encoded before Send returns, so
// the caller may reuse it. Send is safe for concurrent use, before, while
// and after Run runs. On a nil Notifier it does nothing.
func (n *Notifier) Send(e Event) { n.SendThen(e, nil) }

// SendThen is Send, and then calls done (when not nil) once e is done with
// at every endpoint: delivered, refused, failed after its last attempt,
// or dropped from a full queue; but not when Run ends first. done is
// called from another goroutine, or from SendThen's caller (at once with
// no endpoint or a full queue): it must not block.
func (n *Notifier) SendThen(e Event, done func()) {
	if n == nil || len(n.endpoints) == 0 {
		if done != nil {
			done()
		}
		return
	}
	var t *tracker
	if done != nil {
		t = &tracker{fn: done}
		t.left.Store(int64(len(n.endpoints)))
	}
	if e.ID == "" {
		e.ID = newID()
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	body, err := json.Marshal(e)
	if err != nil { // only a Time out of years 0-9999
		n.log.Error("notification not sent: cannot encode it", "kind", e.Kind, "id", e.ID, "err", err)
		if done != nil {
			done()
		}
		return
	}
	d := delivery{id: e.ID, kind: e.Kind, body: body, done: t}
	for _, ep := range n.endpoints {
		select {
		case ep.queue <- d:
		default:
			n.drop(ep)
			t.end()
		}
	}
}

func (n *Notifier) drop(ep *endpoint) {
	now := time.Now()
	ep.mu.Lock()
	ep.dropped++
	ep.unwarned++
	warn := ep.lastWarn.IsZero() || now.Sub(ep.lastWarn) >= dropWarnEvery
	unwarned, total := ep.unwarned, ep.dropped
	if warn {
		ep.lastWarn, ep.unwarned = now, 0
	}
	ep.mu.Unlock()
	if warn {
		n.log.Warn("notification queue full: events dropped", "url", ep.shown,
			"dropped", unwarned, "dropped_total", total, "queue_size", n.o.QueueSize)
	}
	if n.o.Observer != nil {
		n.o.Observer.Dropped(ep.shown)
	}
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// Run delivers queued events until ctx ends, with one worker per endpoint,
// each in the order sent. It returns promptly when ctx ends (a request in
// flight or a backoff is cut short); the events not delivered by then are
// lost, and a warning counts them. With no endpoints, or on a nil
// Notifier, it returns at once. Call it once: a second Run while one runs
// logs an error and returns.
func (n *Notifier) Run(ctx context.Context) {
	if n == nil || len(n.endpoints) == 0 {
		return
	}
	if !n.running.CompareAndSwap(false, true) {
		n.log.Error("notifier already running: second Run ignored")
		return
	}
	defer n.running.Store(false)
	var wg sync.WaitGroup
	for _, ep := range n.endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.work(ctx, ep)
		}()
	}
	wg.Wait()
}

func (n *Notifier) work(ctx context.Context, ep *endpoint) {
	lost := 0
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case d := <-ep.queue:
			if !n.deliver(ctx, ep, d) {
				lost++
				continue
			}
			d.done.end()
		}
	}
	if lost += len(ep.queue); lost > 0 {
		n.log.Warn("notifier stopped: events not delivered", "url", ep.shown, "events", lost)
	}
}

// deliver makes up to MaxAttempts requests for d. It reports false when
// ctx ended first (d is then neither delivered nor failed).
func (n *Notifier) deliver(ctx context.Context, ep *endpoint, d delivery) bool {
	sig := ""
	if len(ep.secret) > 0 {
		sig = Sign(ep.secret, d.body)
	}
	log := n.log.With("url", ep.shown, "kind", d.kind, "id", d.id)
	for attempt := 1; ; attempt++ {
		wait, hinted, err := n.post(ctx, ep, d, sig)
		if err == nil {
			log.Debug("notification delivered", "attempts", attempt)
			if n.o.Observer != nil {
				n.o.Observer.Delivered(ep.shown)
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		var se *StatusError
		switch {
		case errors.As(err, &se) && !se.Temporary():
			log.Warn("notification refused by its receiver", "status", se.StatusCode, "body", se.Body, "attempts", attempt)
			n.failed(ep, fmt.Errorf("delivery %s refused: %w", d.id, err))
			return true
		case attempt >= n.o.MaxAttempts:
			log.Error("notification not delivered", "attempts", attempt, "err", err)
			n.failed(ep, fmt.Errorf("delivery %s failed after %d attempts: %w", d.id, attempt, err))
			return true
		}
		if !hinted {
			wait = n.o.backoff(attempt)
		}
		log.Debug("notification attempt failed: retrying", "attempt", attempt, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

func (n *Notifier) failed(ep *endpoint, err error) {
	if n.o.Observer != nil {
		n.o.Observer.Failed(ep.shown, err)
	}
}

// post makes one request. On a retryable answer with a Retry-After in
// seconds, hinted is true and wait is that delay, capped at MaxBackoff.
func (n *Notifier) post(ctx context.Context, ep *endpoint, d delivery, sig string) (wait time.Duration, hinted bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, n.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.url, bytes.NewReader(d.body))
	if err != nil {
		return 0, false, fmt.Errorf("cannot make the request: %w", unwrapURL(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kaylee")
	req.Header.Set(EventHeader, d.kind)
	req.Header.Set(DeliveryHeader, d.id)
	if sig != "" {
		req.Header.Set(SignatureHeader, sig)
	}
	resp, err := n.o.Client.Do(req)
	if err != nil {
		err = unwrapURL(err)
		var te interface{ Timeout() bool }
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &te) && te.Timeout() {
			err = fmt.Errorf("no answer within %v: %w", n.o.Timeout, err)
		}
		return 0, false, fmt.Errorf("POST: %w", err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // to reuse the connection
		resp.Body.Close()
	}()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return 0, false, nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, bodySnippet))
	se := &StatusError{StatusCode: resp.StatusCode, Body: strings.ToValidUTF8(string(snippet), "")}
	if se.Temporary() {
		if secs, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && secs >= 0 {
			wait, hinted = min(time.Duration(secs)*time.Second, n.o.MaxBackoff), true
		}
	}
	return wait, hinted, se
}

// unwrapURL drops the *url.Error around a client error: its URL may hold
// query secrets, and callers log the redacted URL anyway.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// backoff is the wait after the attempt-th failure: FirstBackoff doubled
// attempt-1 times, ±20% at random, at most MaxBackoff.
func (o *Options) backoff(attempt int) time.Duration {
	d := o.FirstBackoff
	for i := 1; i < attempt && d < o.MaxBackoff; i++ {
		d *= 2
	}
	d = time.Duration(float64(d) * (0.8 + 0.4*mrand.Float64()))
	return min(d, o.MaxBackoff)
}

// StatusError is a receiver's answer other than 2xx.
type StatusError struct {
	StatusCode int
	Body       string // the first 200 bytes of the answer's body
}

// Error gives the status and the body.
func (e *StatusError) Error() string {
	msg := fmt.Sprintf("receiver answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.StatusCode >= 300 && e.StatusCode < 400 {
		msg += " (redirects are not followed)"
	}
	if e.Body != "" {
		msg += fmt.Sprintf(": %q", e.Body)
	}
	return msg
}

// Temporary reports whether the request is worth retrying: 5xx, 408 and
// 429.
func (e *StatusError) Temporary() bool {
	return e.StatusCode >= 500 || e.StatusCode == http.StatusRequestTimeout || e.StatusCode == http.StatusTooManyRequests
}

// Sign gives the SignatureHeader value for body: "sha256=" and the hex
// HMAC-SHA256 of body with secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether header is Sign(secret, body), in constant time,
// for receivers. An empty secret verifies nothing.
func Verify(secret, body []byte, header string) bool {
	hexSum, ok := strings.CutPrefix(header, "sha256=")
	if !ok || len(secret) == 0 {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}
