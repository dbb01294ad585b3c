package gitsource

import (
	"context"
	"errors"
	"fmt"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// MaxHistoryWalk bounds the commits Descends reads to decide: a history
// longer than that between the two revisions is not decided (an error),
// rather than costing time without bound.
const MaxHistoryWalk = 200_000

// historyDepths are how deep the ref's history is fetched, in turn, when
// the cache (shallow: Fetch fetches one commit) does not hold enough of
// it to decide. The last is git's INFINITE_DEPTH, what git fetch
// --unshallow asks for.
var historyDepths = []int{64, 4096, 0x7fffffff}

// HistoryError is an ancestry question Descends could not answer: the
// history could not be fetched, or is longer than MaxHistoryWalk. The
// answer is unknown; callers must not take it as a yes.
type HistoryError struct {
	Revision, Base string // full hashes
	Reason         string
	Err            error
}

func (e *HistoryError) Error() string {
	s := fmt.Sprintf("cannot tell whether commit %s descends from %s: %s", short(e.Revision), short(e.Base), e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *HistoryError) Unwrap() error { return e.Err }

// Descends reports whether commit rev is base or has base among its
// ancestors, in this source's repository. rev is a revision Fetch
// returned; base any full commit hash (it need not exist any more: a
// commit the ref no longer reaches is simply not found among rev's
// ancestors).
//
// The cache is shallow, so the ref's history is fetched deeper as needed
// (see historyDepths); an answer is given only from a complete walk of
// rev's ancestry or from finding base in it. Anything else is a
// *HistoryError: a question Descends cannot answer is never a yes.
func (s *Source) Descends(ctx context.Context, rev, base string) (bool, error) {
	d := &descent{s: s, ctx: ctx, rev: rev, base: base}
	if !commitRe.MatchString(rev) || !commitRe.MatchString(base) {
		return false, d.fail("not full commit hashes", nil)
	}
	if rev == base {
		return true, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := s.lock(ctx)
	if err != nil {
		return false, d.fail("the git cache", err)
	}
	defer unlock()
	if d.r, err = s.open(s.dir); err != nil {
		return false, d.fail("the git cache", err)
	}
	return d.answer()
}

// descent is one question Descends answers, with the cache locked: does
// rev descend from base, in repository r.
type descent struct {
	s         *Source
	ctx       context.Context
	rev, base string
	r         *git.Repository
	t         *target // the ref's target, once resolved
	repaired  bool    // the cache was fetched afresh once
}

func (d *descent) fail(reason string, err error) error {
	return &HistoryError{Revision: d.rev, Base: d.base, Reason: reason, Err: err}
}

// answer walks rev's ancestry, fetching it deeper (historyDepths) until
// the walk finds base or reads it all.
func (d *descent) answer() (bool, error) {
	want, from := plumbing.NewHash(d.base), plumbing.NewHash(d.rev)
	for i := 0; ; i++ {
		found, complete, err := walkHistory(d.ctx, d.r, from, want)
		if err != nil {
			if err = d.repair(err); err != nil {
				return false, d.fail("reading the history", err)
			}
			i = -1 // the fresh cache is shallow again
			continue
		}
		switch {
		case found:
			return true, nil
		case complete:
			return false, nil
		case i == len(historyDepths):
			return false, d.fail(fmt.Sprintf("the history of %s at %s is incomplete even after fetching all of it (did the ref move meanwhile?)", d.s.cfg.Ref, d.s.shown), nil)
		}
		if err := d.deepen(historyDepths[i]); err != nil {
			return false, err
		}
	}
}

// resolve resolves the ref's target, once.
func (d *descent) resolve() error {
	if d.t == nil {
		rt, l, err := d.s.resolve(d.ctx)
		if err != nil {
			return err
		}
		l.close()
		d.t = &rt
	}
	return nil
}

// repair fetches afresh into a cache that failed to read (a crash, a
// full disk), as Fetch does, once.
func (d *descent) repair(cause error) error {
	if d.repaired || d.ctx.Err() != nil || errors.Is(cause, errTooLong) {
		return cause
	}
	d.repaired = true
	if err := d.resolve(); err != nil {
		return err
	}
	if _, _, err := d.s.refetch(d.ctx, *d.t, cause); err != nil {
		return err
	}
	var err error
	d.r, err = d.s.open(d.s.dir)
	return err
}

// deepen fetches the ref's history to depth into the cache.
func (d *descent) deepen(depth int) error {
	if err := d.resolve(); err != nil {
		return d.fail("fetching the history", err)
	}
	opts := &git.FetchOptions{RemoteName: "origin", RemoteURL: d.s.cfg.URL, Auth: d.s.cfg.Auth, Tags: git.NoTags, Force: true,
		Depth: depth, RefSpecs: refSpecs(*d.t)}
	if err := d.r.FetchContext(d.ctx, opts); err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return d.fail(fmt.Sprintf("fetching the history of %s from %s", d.t.name, d.s.shown), d.s.scrub(explain(err)))
	}
	return nil
}

var errTooLong = fmt.Errorf("more than %d commits to read", MaxHistoryWalk)

// walkHistory looks for want among the ancestors of from (from
// included), breadth first. complete says the whole ancestry was read
// (no commit missing from the cache); an error when it is longer than
// MaxHistoryWalk.
func walkHistory(ctx context.Context, r *git.Repository, from, want plumbing.Hash) (found, complete bool, err error) {
	seen := map[plumbing.Hash]bool{from: true}
	queue := []plumbing.Hash{from}
	complete = true
	for n := 1; len(queue) > 0; n++ {
		h := queue[0]
		queue = queue[1:]
		if h == want {
			return true, false, nil
		}
		if n > MaxHistoryWalk {
			return false, false, errTooLong
		}
		if n%1024 == 0 && ctx.Err() != nil {
			return false, false, ctx.Err()
		}
		c, err := object.GetCommit(r.Storer, h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			complete = false // beyond a shallow fetch: fetch deeper
			continue
		}
		if err != nil {
			return false, false, fmt.Errorf("commit %s: %w", short(h.String()), err)
		}
		for _, p := range c.ParentHashes {
			if !seen[p] {
				seen[p] = true
				queue = append(queue, p)
			}
		}
	}
	return false, complete, nil
}
