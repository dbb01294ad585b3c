package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// request is one request as a receiver saw it.
type request struct {
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is a real HTTP server on loopback. respond answers the n-th
// request (from 1); nil answers 200.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []request
	got  chan request // every request, as it arrives
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{got: make(chan request, 1000)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := request{header: r.Header.Clone(), body: body, at: time.Now()}
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, req)
		n := len(rc.reqs)
		rc.mu.Unlock()
		rc.got <- req
		if respond != nil {
			respond(n, w, r)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.reqs...)
}

// next waits for the next request.
func (rc *receiver) next(t *testing.T, within time.Duration) request {
	t.Helper()
	select {
	case r := <-rc.got:
		return r
	case <-time.After(within):
		t.Fatalf("%s: no request within %v", rc.URL, within)
		return request{}
	}
}

// hang makes a handler that blocks until the test ends or the client gives up.
func hang(t *testing.T) func(int, http.ResponseWriter, *http.Request) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	return func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
}

func statuses(codes ...int) func(int, http.ResponseWriter, *http.Request) {
	return func(n int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(codes[min(n, len(codes))-1])
	}
}

// observer records outcomes.
type observer struct {
	outcomes chan string // "delivered URL" or "failed URL: err"
	mu       sync.Mutex
	drops    map[string]int
}

func newObserver() *observer {
	return &observer{outcomes: make(chan string, 1000), drops: map[string]int{}}
}

func (o *observer) Delivered(url string)         { o.outcomes <- "delivered " + url }
func (o *observer) Failed(url string, err error) { o.outcomes <- "failed " + url + ": " + err.Error() }
func (o *observer) Dropped(url string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.drops[url]++
}

func (o *observer) dropped(url string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.drops[url]
}

func (o *observer) next(t *testing.T, within time.Duration) string {
	t.Helper()
	select {
	case s := <-o.outcomes:
		return s
	case <-time.After(within):
		t.Fatalf("no outcome within %v", within)
		return ""
	}
}

// none checks that no outcome comes within d.
func (o *observer) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case s := <-o.outcomes:
		t.Fatalf("unexpected outcome: %s", s)
	case <-time.After(d):
	}
}

// logBuf collects log lines, safely for concurrent use.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// records gives the records logged at level.
func (l *logBuf) records(t *testing.T, level string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if r["level"] == level {
			recs = append(recs, r)
		}
	}
	return recs
}

// fast are options for tests: small backoffs.
func fast(obs Observer) Options {
	return Options{FirstBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, Timeout: 5 * time.Second, Observer: obs}
}

// start makes a Notifier and runs it until the test ends.
func start(t *testing.T, eps []Endpoint, o Options) *Notifier {
	t.Helper()
	n, err := New(eps, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		n.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return n
}

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestDelivery(t *testing.T) {
	when := time.Date(2025, 3, 1, 12, 30, 0, 0, time.UTC)
	tests := []struct {
		name   string
		secret []byte
		event  Event
	}{
		{"sync, signed", []byte("s3cret"), Event{
			Kind: KindSync, Time: when, Source: "prod", Repo: "https://git.example/units.git", Ref: "main",
			Revision: "0123456789abcdef0123456789abcdef01234567", Result: "synced", Summary: "1 created, 2 updated",
			Created: 1, Updated: 2, Pruned: 3, Errors: []string{"units/a.yaml:3: unknown field"},
		}},
		{"rollout, signed, id given", []byte("other"), Event{
			Kind: KindRollout, Time: when, ID: "given-id", Unit: "web", SpecHash: "abc123", Result: "failed", Reason: "progress deadline",
		}},
		{"no secret: unsigned", nil, Event{Kind: KindSync, Time: when, Result: "refused"}},
		{"rewind refused", []byte("s3cret"), Event{
			Kind: KindSync, Time: when, Source: "prod", Ref: "main", Revision: "98db8a1d7f8e0c3b2a1908f7e6d5c4b3a2918070",
			RewoundFrom: "a6d361c0b1a2c3d4e5f60718293a4b5c6d7e8f90", Result: "refused",
			Reason: `sync refused: source "prod": main@98db8a1 (…) does not descend from main@a6d361c (…), the revision last applied; …`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			obs := newObserver()
			n := start(t, []Endpoint{{URL: rc.URL + "/hook", Secret: tt.secret}}, fast(obs))
			n.Send(tt.event)
			r := rc.next(t, 5*time.Second)
			if got := obs.next(t, 5*time.Second); got != "delivered "+rc.URL+"/hook" {
				t.Errorf("outcome %q, want delivered", got)
			}

			var got Event
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatalf("body %s: %v", r.body, err)
			}
			want := tt.event
			if want.ID == "" {
				if !hex32.MatchString(got.ID) {
					t.Errorf("id %q: want 32 hex digits", got.ID)
				}
				want.ID = got.ID
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("body decodes to\n%+v\nwant\n%+v", got, want)
			}
			for h, want := range map[string]string{
				"Content-Type": "application/json",
				"User-Agent":   "kaylee",
				EventHeader:    tt.event.Kind,
				DeliveryHeader: want.ID,
			} {
				if got := r.header.Get(h); got != want {
					t.Errorf("header %s: %q, want %q", h, got, want)
				}
			}
			sig := r.header.Values(SignatureHeader)
			if tt.secret == nil {
				if len(sig) != 0 {
					t.Errorf("unsigned endpoint sent %s: %q", SignatureHeader, sig)
				}
				return
			}
			if len(sig) != 1 {
				t.Fatalf("%s: %q, want one", SignatureHeader, sig)
			}
			if !Verify(tt.secret, r.body, sig[0]) {
				t.Errorf("Verify(secret, body, %q) = false", sig[0])
			}
			if Verify([]byte("wrong"), r.body, sig[0]) {
				t.Errorf("Verify with a wrong secret = true")
			}
			if Verify(tt.secret, append(r.body, ' '), sig[0]) {
				t.Errorf("Verify of another body = true")
			}
		})
	}
}

func TestSendDefaultsTime(t *testing.T) {
	rc := newReceiver(t, nil)
	n := start(t, []Endpoint{{URL: rc.URL}}, fast(nil))
	before := time.Now()
	n.Send(Event{Kind: KindSync})
	var got Event
	if err := json.Unmarshal(rc.next(t, 5*time.Second).body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Time.Before(before.Add(-time.Second)) || got.Time.After(time.Now().Add(time.Second)) {
		t.Errorf("time %v: want about now", got.Time)
	}
}

func TestSignVerify(t *testing.T) {
	// The HMAC-SHA256 example of RFC 4231's test case 2.
	key, msg := []byte("Jefe"), []byte("what do ya want for nothing?")
	const want = "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	if got := Sign(key, msg); got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
	tests := []struct {
		name   string
		secret []byte
		body   []byte
		header string
		want   bool
	}{
		{"right", key, msg, want, true},
		{"wrong secret", []byte("jefe"), msg, want, false},
		{"other body", key, []byte("what do ya want for nothing!"), want, false},
		{"no prefix", key, msg, strings.TrimPrefix(want, "sha256="), false},
		{"sha1 prefix", key, msg, "sha1=" + strings.TrimPrefix(want, "sha256="), false},
		{"truncated", key, msg, want[:len(want)-2], false},
		{"not hex", key, msg, "sha256=zz", false},
		{"empty header", key, msg, "", false},
		{"empty secret", nil, msg, Sign(nil, msg), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Verify(tt.secret, tt.body, tt.header); got != tt.want {
				t.Errorf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name        string
		codes       []int // answers in turn; the last repeats
		maxAttempts int
		requests    int
		outcome     string // "delivered" or "failed"
		errHas      string
	}{
		{"503 twice then 200", []int{503, 503, 200}, 0, 3, "delivered", ""},
		{"408 then 200", []int{408, 200}, 0, 2, "delivered", ""},
		{"429 then 200", []int{429, 200}, 0, 2, "delivered", ""},
		{"400: not retried", []int{400}, 0, 1, "failed", "receiver answered 400 Bad Request"},
		{"404: not retried", []int{404}, 0, 1, "failed", "receiver answered 404 Not Found"},
		{"302: not followed, not retried", []int{302}, 0, 1, "failed", "302 Found (redirects are not followed)"},
		{"500 always: MaxAttempts", []int{500}, 4, 4, "failed", "failed after 4 attempts: receiver answered 500"},
		{"500 always: default MaxAttempts", []int{500}, 0, 6, "failed", "failed after 6 attempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, statuses(tt.codes...))
			obs := newObserver()
			o := fast(obs)
			o.MaxAttempts = tt.maxAttempts
			n := start(t, []Endpoint{{URL: rc.URL, Secret: []byte("k")}}, o)
			n.Send(Event{Kind: KindSync, Result: "synced"})
			got := obs.next(t, 10*time.Second)
			if !strings.HasPrefix(got, tt.outcome+" "+rc.URL) || !strings.Contains(got, tt.errHas) {
				t.Errorf("outcome %q, want %s with %q", got, tt.outcome, tt.errHas)
			}
			obs.none(t, 200*time.Millisecond) // one outcome, and no more requests meanwhile
			reqs := rc.requests()
			if len(reqs) != tt.requests {
				t.Fatalf("%d requests, want %d", len(reqs), tt.requests)
			}
			id := reqs[0].header.Get(DeliveryHeader)
			for i, r := range reqs {
				if got := r.header.Get(DeliveryHeader); got != id || !hex32.MatchString(got) {
					t.Errorf("request %d: delivery id %q, want %q on every retry", i+1, got, id)
				}
				if !bytes.Equal(r.body, reqs[0].body) || !Verify([]byte("k"), r.body, r.header.Get(SignatureHeader)) {
					t.Errorf("request %d: body or signature differs from the first", i+1)
				}
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter string
		maxBackoff time.Duration
		atLeast    time.Duration
		atMost     time.Duration // loose: machines are noisy
	}{
		{"honoured", "1", 5 * time.Second, 950 * time.Millisecond, 4 * time.Second},
		{"capped at MaxBackoff", "3600", 50 * time.Millisecond, 0, 3 * time.Second},
		{"not seconds: backoff", "soon", 50 * time.Millisecond, 0, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
				if n == 1 {
					w.Header().Set("Retry-After", tt.retryAfter)
					w.WriteHeader(http.StatusTooManyRequests)
				}
			})
			obs := newObserver()
			o := fast(obs)
			o.MaxBackoff = tt.maxBackoff
			n := start(t, []Endpoint{{URL: rc.URL}}, o)
			n.Send(Event{Kind: KindRollout})
			first, second := rc.next(t, 5*time.Second), rc.next(t, 10*time.Second)
			if gap := second.at.Sub(first.at); gap < tt.atLeast || gap > tt.atMost {
				t.Errorf("retry %v after the 429, want %v to %v", gap, tt.atLeast, tt.atMost)
			}
			if got := obs.next(t, 5*time.Second); !strings.HasPrefix(got, "delivered") {
				t.Errorf("outcome %q, want delivered", got)
			}
		})
	}
}

func TestTimeoutIsRetried(t *testing.T) {
	rc := newReceiver(t, hang(t))
	obs := newObserver()
	o := fast(obs)
	o.Timeout, o.MaxAttempts = 100*time.Millisecond, 2
	n := start(t, []Endpoint{{URL: rc.URL}}, o)
	n.Send(Event{Kind: KindSync})
	got := obs.next(t, 5*time.Second)
	if !strings.HasPrefix(got, "failed") || !strings.Contains(got, "no answer within 100ms") {
		t.Errorf("outcome %q, want failed with no answer within 100ms", got)
	}
	if reqs := rc.requests(); len(reqs) != 2 {
		t.Errorf("%d requests, want 2", len(reqs))
	}
}

func TestUnreachableEndpointFails(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close() // nothing listens there now
	obs := newObserver()
	o := fast(obs)
	o.MaxAttempts = 3
	n := start(t, []Endpoint{{URL: url}}, o)
	n.Send(Event{Kind: KindSync})
	if got := obs.next(t, 5*time.Second); !strings.HasPrefix(got, "failed "+url+": delivery") || !strings.Contains(got, "after 3 attempts: POST: ") {
		t.Errorf("outcome %q, want failed after 3 attempts", got)
	}
}

func TestFailureLogRedactsSecrets(t *testing.T) {
	long := strings.Repeat("x", 190) + "0123456789" + "NOT-LOGGED"
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		if u, p, _ := r.BasicAuth(); u != "bob" || p != "hunter2" {
			t.Errorf("basic auth %q %q, want the URL's", u, p)
		}
		http.Error(w, long, http.StatusForbidden)
	})
	var logs logBuf
	obs := newObserver()
	o := fast(obs)
	o.Log = logs.logger()
	u := strings.Replace(rc.URL, "http://", "http://bob:hunter2@", 1) + "/hook?token=s3cret"
	n := start(t, []Endpoint{{URL: u}}, o)
	n.Send(Event{Kind: KindSync})
	got := obs.next(t, 5*time.Second)
	shown := strings.Replace(rc.URL, "http://", "http://bob:xxxxx@", 1) + "/hook?token=xxxxx"
	if !strings.HasPrefix(got, "failed "+shown+": ") {
		t.Errorf("outcome %q, want failed at %s", got, shown)
	}
	text := logs.String()
	for _, secret := range []string{"hunter2", "s3cret"} {
		if strings.Contains(got+text, secret) {
			t.Errorf("%q shown:\n%s\n%s", secret, got, text)
		}
	}
	warns := logs.records(t, "WARN")
	if len(warns) != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", len(warns), text)
	}
	for k, want := range map[string]any{"url": shown, "status": 403.0, "body": long[:200]} {
		if got := warns[0][k]; got != want {
			t.Errorf("warning's %s: %#v, want %#v", k, got, want)
		}
	}
	if errs := logs.records(t, "ERROR"); len(errs) != 0 {
		t.Errorf("the refusal is also logged as an error: %v", errs)
	}
}

func TestSlowEndpointDelaysNobody(t *testing.T) {
	slow := newReceiver(t, hang(t))
	quick := newReceiver(t, nil)
	var logs logBuf
	obs := newObserver()
	o := fast(obs)
	o.QueueSize, o.Timeout, o.Log = 2, time.Hour, logs.logger()
	n := start(t, []Endpoint{{URL: slow.URL}, {URL: quick.URL}}, o)

	send := func(i int) {
		t.Helper()
		began := time.Now()
		sent := make(chan struct{})
		go func() {
			n.Send(Event{Kind: KindSync, Summary: fmt.Sprint(i)})
			close(sent)
		}()
		select {
		case <-sent:
		case <-time.After(2 * time.Second):
			t.Fatalf("Send %d blocked for 2s", i)
		}
		if took := time.Since(began); took > 100*time.Millisecond {
			t.Errorf("Send %d took %v", i, took)
		}
	}
	expect := func(i int) {
		t.Helper()
		var e Event
		if err := json.Unmarshal(quick.next(t, 2*time.Second).body, &e); err != nil || e.Summary != fmt.Sprint(i) {
			t.Fatalf("quick endpoint got %+v (%v), want event %d next", e, err, i)
		}
	}
	send(1)
	slow.next(t, 2*time.Second) // hangs from now on
	expect(1)
	send(2) // queued for the slow endpoint, which is then full
	send(3)
	expect(2)
	expect(3)
	for i := 4; i <= 6; i++ { // dropped for the slow endpoint only
		send(i)
		expect(i)
	}
	if got := obs.dropped(slow.URL); got != 3 {
		t.Errorf("slow endpoint: %d dropped, want 3", got)
	}
	if got := obs.dropped(quick.URL); got != 0 {
		t.Errorf("quick endpoint: %d dropped, want 0", got)
	}
	warns := logs.records(t, "WARN")
	if len(warns) != 1 || warns[0]["msg"] != "notification queue full: events dropped" || warns[0]["url"] != slow.URL {
		t.Errorf("want one queue-full warning (at most one a minute) for %s, got:\n%s", slow.URL, logs.String())
	}
}

func TestOrder(t *testing.T) {
	var mu sync.Mutex
	var delivered []string
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n%5 == 0 { // every fifth request fails, and is retried
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		delivered = append(delivered, r.Header.Get(DeliveryHeader))
	})
	obs := newObserver()
	n := start(t, []Endpoint{{URL: rc.URL}}, fast(obs))
	var want []string
	for i := range 50 {
		id := fmt.Sprintf("event-%02d", i)
		want = append(want, id)
		n.Send(Event{Kind: KindSync, ID: id})
	}
	for range 50 {
		if got := obs.next(t, 10*time.Second); !strings.HasPrefix(got, "delivered") {
			t.Fatalf("outcome %q, want delivered", got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(delivered, want) {
		t.Errorf("delivered in order\n%v\nwant\n%v", delivered, want)
	}
}

func TestRunStopsPromptly(t *testing.T) {
	tests := []struct {
		name    string
		respond func(t *testing.T) func(int, http.ResponseWriter, *http.Request)
	}{
		{"while backing off", func(*testing.T) func(int, http.ResponseWriter, *http.Request) { return statuses(500) }},
		{"while a request hangs", hang},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, tt.respond(t))
			var logs logBuf
			obs := newObserver()
			o := Options{FirstBackoff: time.Hour, MaxBackoff: time.Hour, Timeout: time.Hour, Observer: obs, Log: logs.logger()}
			n, err := New([]Endpoint{{URL: rc.URL}}, o)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				n.Run(ctx)
				close(done)
			}()
			n.Send(Event{Kind: KindSync})
			n.Send(Event{Kind: KindSync})
			rc.next(t, 5*time.Second)
			time.Sleep(50 * time.Millisecond) // into the backoff, or the hang
			began := time.Now()
			cancel()
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				t.Fatal("Run still running 2s after ctx ended")
			}
			t.Logf("Run returned %v after ctx ended", time.Since(began))
			obs.none(t, 0) // shutdown is neither a delivery nor a failure
			warns := logs.records(t, "WARN")
			if len(warns) != 1 || warns[0]["msg"] != "notifier stopped: events not delivered" || warns[0]["events"] != 2.0 {
				t.Errorf("want one warning counting the 2 lost events, got:\n%s", logs.String())
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		url  string
		want string // the whole error
	}{
		{"ftp://x", `notify: endpoint "ftp://x": scheme "ftp" is not http or https`},
		{"http://", `notify: endpoint "http://": no host`},
		{"https://:443/hook", `notify: endpoint "https://:443/hook": no host`},
		{"example.com/hook", `notify: endpoint "example.com/hook": no scheme: want http:// or https://`},
		{"", `notify: endpoint "": no scheme: want http:// or https://`},
		{"http://example.com/a hook", `notify: endpoint "http://example.com/a hook": contains white space`},
		{"http://exa mple.com/", `notify: endpoint "http://exa mple.com/": contains white space`},
		{"http://ex\x7fample.com/", `notify: endpoint "http://ex\x7fample.com/": not a URL: net/url: invalid control character in URL`},
		{"https://bob:hunter2@exa mple.com/h?token=s3cret", `notify: endpoint "https://bob:xxxxx@exa mple.com/h?xxxxx": contains white space`},
		{"ftp://bob:hunter2@x/?token=s3cret", `notify: endpoint "ftp://bob:xxxxx@x/?xxxxx": scheme "ftp" is not http or https`},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			_, err := New([]Endpoint{{URL: "https://ok.example/hook"}, {URL: tt.url}}, Options{})
			if err == nil || err.Error() != tt.want {
				t.Errorf("New: %v\nwant: %s", err, tt.want)
			}
		})
	}
}

func TestNewOptions(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string // "" when valid
	}{
		{"defaults", Options{}, ""},
		{"negative queue", Options{QueueSize: -1}, "notify: Options.QueueSize is negative"},
		{"negative timeout", Options{Timeout: -time.Second}, "notify: Options.Timeout is negative"},
		{"first over max", Options{FirstBackoff: 2 * time.Minute}, "notify: Options.FirstBackoff (2m0s) is longer than Options.MaxBackoff (1m0s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New([]Endpoint{{URL: "http://127.0.0.1:9/hook"}}, tt.o)
			if got := fmt.Sprint(err); tt.want == "" && err != nil || tt.want != "" && got != tt.want {
				t.Errorf("New: %v, want %q", err, tt.want)
			}
		})
	}
}

func TestNoopNotifiers(t *testing.T) {
	empty, err := New(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]*Notifier{"nil": nil, "no endpoints": empty} {
		t.Run(name, func(t *testing.T) {
			n.Send(Event{Kind: KindSync}) // no panic
			done := make(chan struct{})
			go func() {
				n.Run(context.Background())
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(time.Second):
				t.Fatal("Run did not return at once")
			}
		})
	}
}
