package gitsource

import (
	"bytes"
	"context"
	"fmt"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage"
)

// afterKey is the context key of WithAfter's commit.
type afterKey struct{}

// WithAfter returns ctx carrying after, the commit a push webhook said the
// followed ref now points at (a full hash; anything else is ignored).
//
// Fetch with such a ctx, over smart HTTP, asks for the pack of after at
// the same time as it lists the refs, instead of after the listing: one
// round trip instead of two. It takes that pack only when the request it
// would have made once the listing came back is the very one it sent
// (the listing names after as the ref's head, and the cache, the depth
// and the server's capabilities are the same); otherwise it drops it and
// fetches as without a commit. Over SSH, a file URL, for a ref given as a
// commit, for the first fetch of a Source, or when the cache holds after
// already, the commit changes nothing.
func WithAfter(ctx context.Context, after string) context.Context {
	return context.WithValue(ctx, afterKey{}, after)
}

// Told says whether ctx carries a WithAfter commit: a fetch with it is
// expected to bring a new commit.
func Told(ctx context.Context) bool { return !afterOf(ctx).IsZero() }

// afterOf is WithAfter's commit in ctx; the zero hash when none.
func afterOf(ctx context.Context) plumbing.Hash {
	after, _ := ctx.Value(afterKey{}).(string)
	if !commitRe.MatchString(after) {
		return plumbing.ZeroHash
	}
	return plumbing.NewHash(after)
}

// guess is the pack of a webhook's commit, asked for before the ref
// listing says whether it is the one to fetch. It holds the cache lock
// from before the request was made (the request names what the cache
// holds) until drop.
type guess struct {
	repo   *git.Repository // the cache, opened under the lock: fetchInto reads it, its indexes loaded
	want   plumbing.Hash
	req    *packp.UploadPackRequest
	wire   []byte // req, encoded as sent
	unlock func()
	cancel context.CancelFunc
	done   chan struct{} // closed once resp or err is set
	resp   *packp.UploadPackResponse
	err    error
}

// guess asks for the pack of ctx's WithAfter commit, when there is one
// worth asking for (see WithAfter), on a session of its own, with the
// cache lock held; nil when it asks for nothing (and holds no lock).
// Call it with s.mu held.
func (s *Source) guess(ctx context.Context) *guess {
	after := s.guessable(ctx)
	if after.IsZero() {
		return nil
	}
	unlock, ok := s.tryLock()
	if !ok {
		return nil // someone else fetches: no guess, the plain way
	}
	g, err := s.ask(ctx, after)
	if err != nil || g == nil {
		unlock()
		return nil
	}
	g.unlock = unlock
	return g
}

// guessable is ctx's WithAfter commit when a guess may be made for it
// (see WithAfter); the zero hash when not. Call it with s.mu held.
func (s *Source) guessable(ctx context.Context) plumbing.Hash {
	after := afterOf(ctx)
	if after.IsZero() || !s.overHTTP || s.lastCaps == nil || s.lastRef == "" || s.last == nil ||
		s.last.Revision == after.String() || s.lastObj == after {
		return plumbing.ZeroHash
	}
	return after
}

// listAndGuess lists the remote's refs (resolve) and, when ctx carries a
// commit worth a guess, asks for its pack meanwhile (guess): the listing
// is not held up by the guess's reading of the cache. The caller drops
// the guess (nil when none) and closes the listing.
func (s *Source) listAndGuess(ctx context.Context) (target, *listing, *guess, error) {
	if s.guessable(ctx).IsZero() {
		t, l, err := s.resolve(ctx)
		return t, l, nil, err
	}
	type listed struct {
		t   target
		l   *listing
		err error
	}
	done := make(chan listed, 1)
	go func() {
		t, l, err := s.resolve(ctx)
		done <- listed{t, l, err}
	}()
	g := s.guess(ctx)
	res := <-done
	return res.t, res.l, g, res.err
}

// ask sends the request for after's pack that commit would make once the
// listing named after as the head of the ref last fetched, and returns
// without waiting for the answer; nil when the cache holds after, or does
// not hold the ref's last head (commit would make another request).
func (s *Source) ask(ctx context.Context, after plumbing.Hash) (*guess, error) {
	r, err := s.open(s.dir)
	if err != nil {
		return nil, err
	}
	if _, _, err := peel(r, after); err == nil {
		return nil, nil // nothing to fetch
	}
	if !holdsRef(r, target{ref: s.lastRef}) {
		return nil, nil
	}
	req, err := packRequest(s.lastCaps, r.Storer, after, 2)
	if err != nil {
		return nil, err
	}
	wire, err := encodeRequest(req)
	if err != nil {
		return nil, err
	}
	sess, err := s.uploadPack()
	if err != nil {
		return nil, err
	}
	gctx, cancel := context.WithCancel(ctx)
	g := &guess{repo: r, want: after, req: req, wire: wire, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(g.done)
		defer sess.Close()
		g.resp, g.err = sess.UploadPack(gctx, req)
	}()
	return g, nil
}

// fits says whether g's request is the one to make now: for t's object,
// to depth, from the cache r, to the server of listing l.
func (g *guess) fits(l *listing, r storage.Storer, t target, depth int) bool {
	if g == nil || g.want != t.object {
		return false
	}
	req, err := packRequest(l.adv.Capabilities, r, t.object, depth)
	if err != nil {
		return false
	}
	wire, err := encodeRequest(req)
	return err == nil && bytes.Equal(wire, g.wire)
}

// take waits for the answer to g's request and stores its pack in r.
func (g *guess) take(ctx context.Context, r storage.Storer) error {
	select {
	case <-g.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if g.err != nil {
		return g.err
	}
	resp := g.resp
	g.resp = nil
	return storePack(r, g.req, resp)
}

// drop ends g: its request, its answer unless taken, and the cache lock
// (nil does nothing).
func (g *guess) drop() {
	if g == nil {
		return
	}
	g.cancel()
	<-g.done
	if g.resp != nil {
		_ = g.resp.Close()
	}
	g.unlock()
}

// encodeRequest is req as go-git's smart HTTP client sends it.
func encodeRequest(req *packp.UploadPackRequest) ([]byte, error) {
	var buf bytes.Buffer
	if err := req.UploadRequest.Encode(&buf); err != nil {
		return nil, fmt.Errorf("encoding the pack request: %w", err)
	}
	haves := packp.UploadHaves{Haves: append([]plumbing.Hash(nil), req.Haves...)}
	if err := haves.Encode(&buf, false); err != nil {
		return nil, fmt.Errorf("encoding the pack request: %w", err)
	}
	return buf.Bytes(), nil
}

// overHTTP says whether url is fetched over smart HTTP.
func overHTTP(url string) bool {
	ep, err := transport.NewEndpoint(url)
	return err == nil && (ep.Protocol == "http" || ep.Protocol == "https")
}
