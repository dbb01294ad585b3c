package gitsource

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockPoll is how often a held cache lock is tried again.
const lockPoll = 50 * time.Millisecond

// lockPath is the lock file of the repository's cache directory.
func (s *Source) lockPath() string { return s.dir + ".lock" }

// tryLock takes the cache directory's lock if no one holds it; ok is
// false when someone does (or the lock file cannot be opened).
func (s *Source) tryLock() (unlock func(), ok bool) {
	f, err := os.OpenFile(s.lockPath(), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return func() { f.Close() }, true
}

// lock takes the cache directory's exclusive lock (flock(2) on a file
// beside it), waiting while another process, or another Source, holds
// it, until ctx ends. flock is per open file, so each call opens the
// file anew. The returned function releases the lock.
func (s *Source) lock(ctx context.Context) (func(), error) {
	file := s.lockPath()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return nil, fmt.Errorf("git cache: %w", err)
	}
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("git cache lock: %w", err)
	}
	tick := time.NewTicker(lockPoll)
	defer tick.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("git cache lock %s: %w", file, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("another process holds the cache lock %s: %w", file, ctx.Err())
		case <-tick.C:
		}
	}
}
