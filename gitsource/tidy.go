package gitsource

import (
	"context"
	"errors"
	"fmt"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// MaxPacks is how many packs the cache keeps before Tidy merges them
// into one. Each fetch of a new commit adds a pack, and each Fetch opens
// the cache afresh and reads every pack's index, then looks for objects
// in each pack: without merging, a pass costs more with every push the
// cache has taken (BenchmarkFetchNewCommit on a busy 2-core machine,
// before indexes were read whole (openCache): about 9 ms to look for the
// new commit with 10 packs, 115 ms with 90).
const MaxPacks = 8

// Tidy merges the cache's packs into one when there are more than
// MaxPacks, under the cache lock. It changes no ref and drops no object.
// A sync loop calls it after a pass, once the pass's writes are done, so
// that a push does not wait for it. A missing cache is left alone.
func (s *Source) Tidy(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	r, err := openCache(s.dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("git cache %s: %w", s.dir, err)
	}
	if err := mergePacks(ctx, r); err != nil {
		return fmt.Errorf("git cache %s: merging its packs: %w", s.dir, err)
	}
	return nil
}

// mergePacks writes every object of r into one new pack and removes the
// old packs, when r has more than MaxPacks.
func mergePacks(ctx context.Context, r *git.Repository) error {
	pos, ok := r.Storer.(storer.PackedObjectStorer)
	if !ok {
		return nil
	}
	packs, err := pos.ObjectPacks()
	if err != nil || len(packs) <= MaxPacks {
		return err
	}
	iter, err := r.Storer.IterEncodedObjects(plumbing.AnyObject)
	if err != nil {
		return err
	}
	var objects []plumbing.Hash
	err = iter.ForEach(func(o plumbing.EncodedObject) error {
		objects = append(objects, o.Hash())
		return ctx.Err()
	})
	if err != nil {
		return err
	}
	pw, ok := r.Storer.(storer.PackfileWriter)
	if !ok {
		return nil
	}
	w, err := pw.PackfileWriter()
	if err != nil {
		return err
	}
	merged, err := packfile.NewEncoder(w, r.Storer, false).Encode(objects, 0)
	if cerr := w.Close(); err == nil {
		err = cerr // the index is written, and the pack moved in place, on Close
	}
	if err != nil {
		return err
	}
	for _, h := range packs {
		if h == merged {
			continue
		}
		if err := pos.DeleteOldObjectPackAndIndex(h, time.Time{}); err != nil {
			return err
		}
	}
	return nil
}
