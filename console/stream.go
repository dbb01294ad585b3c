package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
)

// debounce gathers a burst of store changes into one state sent.
const debounce = 150 * time.Millisecond

// writeTimeout: a stream's client that takes longer to read one message
// is disconnected.
const writeTimeout = 30 * time.Second

// stream serves server-sent events: "state" with the whole State at once,
// then after each change of the store (and every Refresh, for fleet's
// machines); "event" with each new event of the log; "problem" when the
// store cannot be read. A comment every 15s keeps proxies from closing it.
//
// At most Config.MaxStreams streams are open at once: each holds a
// connection for as long as its client stays, so one more gets 503 (the
// dashboard opens another 10 s later).
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	if !s.takeStream(w) {
		return
	}
	defer func() { <-s.streams }()
	ctx := r.Context()
	c := s.openStream(ctx, w)
	if !c.sendState(ctx) {
		return
	}
	c.run(ctx)
}

// takeStream holds one of the MaxStreams places, or answers 503.
func (s *Server) takeStream(w http.ResponseWriter) bool {
	select {
	case s.streams <- struct{}{}:
		return true
	default:
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("too many event streams open (%d); try again later", cap(s.streams)))
		return false
	}
}

// eventStream is one open stream: where it writes and what it watches.
type eventStream struct {
	s       *Server
	w       http.ResponseWriter
	rc      *http.ResponseController
	changes <-chan int64       // nil while the watch is down
	events  <-chan store.Event // nil while the watch is down
	pending <-chan time.Time   // a state to send (debounced), or a watch to make again
}

// openStream answers the stream's headers and watches the store's
// changes and the events that come after the last one in the log.
func (s *Server) openStream(ctx context.Context, w http.ResponseWriter) *eventStream {
	c := &eventStream{s: s, w: w, rc: http.NewResponseController(w)}
	// The listener's write timeout is for ordinary requests; a stream
	// lives as long as its client reads it: each write has a deadline of
	// its own, so a client that stops reading is let go.
	c.deadline()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	_, rev, err := s.cfg.Reader.ListEvents(ctx, "", 1)
	if err != nil {
		rev = 0
	}
	c.changes = s.cfg.Reader.WatchChanges(ctx)
	c.events = s.cfg.Reader.WatchEvents(ctx, "", rev)
	return c
}

func (c *eventStream) deadline() { _ = c.rc.SetWriteDeadline(time.Now().Add(writeTimeout)) }

// send writes one event; false when the client is gone.
func (c *eventStream) send(event string, v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		return false
	}
	c.deadline()
	if _, err := fmt.Fprintf(c.w, "event: %s\ndata: %s\n\n", event, b); err != nil {
		return false
	}
	return c.rc.Flush() == nil
}

// sendState sends the whole state, or the problem reading it.
func (c *eventStream) sendState(ctx context.Context) bool {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := c.s.state(sctx)
	if err != nil {
		return c.send("problem", apiError{Error: err.Error()})
	}
	return c.send("state", st)
}

// keepalive sends a comment; false when the client is gone.
func (c *eventStream) keepalive() bool {
	c.deadline()
	_, err := fmt.Fprint(c.w, ": keepalive\n\n")
	return err == nil && c.rc.Flush() == nil
}

// run sends until the client goes: events as they come, the state after
// each burst of changes and every Refresh, a keepalive every 15 s.
func (c *eventStream) run(ctx context.Context) {
	refresh := time.NewTicker(c.s.cfg.Refresh)
	defer refresh.Stop()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		ok := true
		select {
		case <-ctx.Done():
			return
		case _, open := <-c.changes:
			c.changed(open)
		case e, open := <-c.events:
			if !open {
				c.events = nil
				continue
			}
			ok = c.send("event", e)
		case <-c.pending:
			c.rewatch(ctx)
			ok = c.sendState(ctx)
		case <-refresh.C:
			ok = c.sendState(ctx)
		case <-keepalive.C:
			ok = c.keepalive()
		}
		if !ok {
			return
		}
	}
}

// changed takes a change of the store (open) or the end of the watch: a
// state is sent after debounce; a watch that failed (etcd away, or
// compacted) is made again shortly, and what can be read is sent then.
func (c *eventStream) changed(open bool) {
	if !open {
		c.changes = nil
		c.pending = time.After(time.Second)
		return
	}
	if c.pending == nil {
		c.pending = time.After(debounce)
	}
}

// rewatch makes again the watches that failed.
func (c *eventStream) rewatch(ctx context.Context) {
	c.pending = nil
	if c.changes == nil {
		c.changes = c.s.cfg.Reader.WatchChanges(ctx)
	}
	if c.events == nil {
		if _, rev, err := c.s.cfg.Reader.ListEvents(ctx, "", 1); err == nil {
			c.events = c.s.cfg.Reader.WatchEvents(ctx, "", rev)
		}
	}
}
