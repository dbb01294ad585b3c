package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
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
	select {
	case s.streams <- struct{}{}:
		defer func() { <-s.streams }()
	default:
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("too many event streams open (%d); try again later", cap(s.streams)))
		return
	}
	ctx := r.Context()
	rc := http.NewResponseController(w)
	// The listener's write timeout is for ordinary requests; a stream
	// lives as long as its client reads it: each write has a deadline of
	// its own, so a client that stops reading is let go.
	deadline := func() { _ = rc.SetWriteDeadline(time.Now().Add(writeTimeout)) }
	deadline()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	send := func(event string, v any) bool {
		b, err := json.Marshal(v)
		if err != nil {
			return false
		}
		deadline()
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	sendState := func() bool {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		st, err := s.state(sctx)
		if err != nil {
			return send("problem", apiError{Error: err.Error()})
		}
		return send("state", st)
	}

	_, rev, err := s.cfg.Reader.ListEvents(ctx, "", 1)
	if err != nil {
		rev = 0
	}
	changes := s.cfg.Reader.WatchChanges(ctx)
	events := s.cfg.Reader.WatchEvents(ctx, "", rev)
	if !sendState() {
		return
	}
	refresh := time.NewTicker(s.cfg.Refresh)
	defer refresh.Stop()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	var pending <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-changes:
			if !ok {
				// The watch failed (etcd away, or compacted): send what
				// can be read, and watch again shortly.
				changes = nil
				pending = time.After(time.Second)
				continue
			}
			if pending == nil {
				pending = time.After(debounce)
			}
		case e, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if !send("event", e) {
				return
			}
		case <-pending:
			pending = nil
			if changes == nil {
				changes = s.cfg.Reader.WatchChanges(ctx)
			}
			if events == nil {
				_, rev, err := s.cfg.Reader.ListEvents(ctx, "", 1)
				if err == nil {
					events = s.cfg.Reader.WatchEvents(ctx, "", rev)
				}
			}
			if !sendState() {
				return
			}
		case <-refresh.C:
			if !sendState() {
				return
			}
		case <-keepalive.C:
			deadline()
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}
