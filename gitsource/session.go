package gitsource

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	"github.com/go-git/go-git/v5/storage"
)

// listing is the remote's refs as one upload-pack session advertised
// them, with the session still open: a fetch of what they name asks for
// the pack on it, without listing the refs again (go-git's own fetch
// does: over smart HTTP, a second GET of info/refs, a second git process
// on the server; over SSH, a second connection). Close it when done.
type listing struct {
	sess transport.UploadPackSession
	adv  *packp.AdvRefs
	refs []*plumbing.Reference // every ref, and the peeled ones as NAME^{}
	used bool                  // a pack was asked for: the session is spent
}

// uploadPack opens an upload-pack session with the source's URL and
// credentials (nothing is sent yet over smart HTTP).
func (s *Source) uploadPack() (transport.UploadPackSession, error) {
	ep, err := transport.NewEndpoint(s.cfg.URL)
	if err != nil {
		return nil, err
	}
	c, err := client.NewClient(ep)
	if err != nil {
		return nil, err
	}
	return c.NewUploadPackSession(ep, s.cfg.Auth)
}

// list opens an upload-pack session and reads the refs it advertises
// (one round trip).
func (s *Source) list(ctx context.Context) (*listing, error) {
	sess, err := s.uploadPack()
	if err != nil {
		return nil, err
	}
	adv, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		sess.Close()
		return nil, err
	}
	all, err := adv.AllReferences()
	if err != nil {
		sess.Close()
		return nil, err
	}
	l := &listing{sess: sess, adv: adv}
	for _, ref := range all {
		l.refs = append(l.refs, ref)
	}
	for name, h := range adv.Peeled {
		l.refs = append(l.refs, plumbing.NewHashReference(plumbing.ReferenceName(name+"^{}"), h))
	}
	return l, nil
}

// close ends the session (nil does nothing).
func (l *listing) close() {
	if l != nil {
		_ = l.sess.Close()
	}
}

// fetch asks the listing's session for the pack of t's ref, as listed, to
// depth (0: all its history), stores it in the cache r with the shallow
// commits the server names, and points the cache's copy of the ref
// (refSpecs) at what the listing said. It is go-git's fetch of one ref
// without its listing; the session serves one pack.
func (l *listing) fetch(ctx context.Context, r storage.Storer, t target, depth int) error {
	if l.used {
		return errors.New("the listing's session has served its pack")
	}
	l.used = true
	req, err := packRequest(l.adv.Capabilities, r, t.object, depth)
	if err != nil {
		return err
	}
	if err := l.receive(ctx, r, req); err != nil {
		return err
	}
	return setLocalRef(r, t, t.object)
}

// setLocalRef points the cache's copy of t's ref at obj, as go-git's
// fetch with t's refspec would.
func setLocalRef(r storage.Storer, t target, obj plumbing.Hash) error {
	return r.SetReference(plumbing.NewHashReference(refSpecs(t)[0].Dst(t.ref), obj))
}

// packRequest is the request for the pack of want, to depth (0: all its
// history), to a server that advertised caps, from the cache r: what it
// holds (localHaves) and its shallow commits. Two calls with the same
// cache, want, depth and capabilities make the same request.
func packRequest(caps *capability.List, r storage.Storer, want plumbing.Hash, depth int) (*packp.UploadPackRequest, error) {
	req := packp.NewUploadPackRequestFromCapabilities(caps)
	if depth != 0 {
		req.Depth = packp.DepthCommits(depth)
		if err := req.Capabilities.Set(capability.Shallow); err != nil {
			return nil, err
		}
		shallows, err := r.Shallow()
		if err != nil {
			return nil, fmt.Errorf("the cache's shallow commits: %w", err)
		}
		req.Shallows = shallows
	}
	if caps.Supports(capability.NoProgress) {
		if err := req.Capabilities.Set(capability.NoProgress); err != nil {
			return nil, err
		}
	}
	req.Wants = []plumbing.Hash{want}
	haves, err := localHaves(r, depth)
	if err != nil {
		return nil, err
	}
	req.Haves = haves
	return req, nil
}

// receive sends req and stores the pack and the shallow commits it
// brings (as go-git's fetch does).
func (l *listing) receive(ctx context.Context, r storage.Storer, req *packp.UploadPackRequest) error {
	resp, err := l.sess.UploadPack(ctx, req)
	if errors.Is(err, transport.ErrEmptyUploadPackRequest) {
		return nil // nothing to send: the cache has it all
	}
	if err != nil {
		return err
	}
	return storePack(r, req, resp)
}

// storePack stores the pack of resp, the answer to req, and the shallow
// commits it brings, in the cache r; it closes resp.
func storePack(r storage.Storer, req *packp.UploadPackRequest, resp *packp.UploadPackResponse) (err error) {
	defer func() {
		if cerr := resp.Close(); err == nil {
			err = cerr
		}
	}()
	if !req.Depth.IsZero() && len(resp.Shallows) > 0 {
		shallows, err := r.Shallow()
		if err != nil {
			return err
		}
		for _, h := range resp.Shallows {
			if !containsHash(shallows, h) {
				shallows = append(shallows, h)
			}
		}
		if err := r.SetShallow(shallows); err != nil {
			return err
		}
	}
	return packfile.UpdateObjectStorage(r, demux(req.Capabilities, resp))
}

// demux takes the pack out of the side-band stream when the request
// asked for one (go-git's fetch does the same).
func demux(caps *capability.List, resp io.Reader) io.Reader {
	switch {
	case caps.Supports(capability.Sideband):
		return sideband.NewDemuxer(sideband.Sideband, resp)
	case caps.Supports(capability.Sideband64k):
		return sideband.NewDemuxer(sideband.Sideband64k, resp)
	}
	return resp
}

// maxHaves bounds the commits of each local ref told to the server as
// had (go-git's own bound).
const maxHaves = 100

// localHaves are the commits the cache holds, for the server to leave
// out of the pack: those its refs point at and, from each, up to depth
// of their ancestors (maxHaves without a depth), as go-git's fetch tells.
func localHaves(r storage.Storer, depth int) ([]plumbing.Hash, error) {
	refs, err := r.IterReferences()
	if err != nil {
		return nil, err
	}
	limit := maxHaves
	if depth > 0 && depth < maxHaves {
		limit = depth
	}
	seen := map[plumbing.Hash]bool{}
	var out []plumbing.Hash
	err = refs.ForEach(func(ref *plumbing.Reference) error {
		if ref.Type() != plumbing.HashReference || seen[ref.Hash()] {
			return nil
		}
		c, err := object.GetCommit(r, ref.Hash())
		if err != nil {
			return nil // not a commit, or not in the cache
		}
		n := 0
		_ = object.NewCommitPreorderIter(c, seen, nil).ForEach(func(c *object.Commit) error {
			seen[c.Hash] = true
			out = append(out, c.Hash)
			if n++; n == limit {
				return storer.ErrStop
			}
			return nil
		})
		return nil
	})
	return out, err
}

func containsHash(hs []plumbing.Hash, h plumbing.Hash) bool {
	for _, x := range hs {
		if x == h {
			return true
		}
	}
	return false
}
