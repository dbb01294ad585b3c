package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/kaylee-gitops/kaylee/fleet/fleetlog"
)

// fleetLogName is the file, in the embedded etcd's data directory (or the
// user cache dir's kaylee/ when etcd is external), that gets fleet's own
// log lines during a kaylee dev without --verbose.
const fleetLogName = "fleet.log"

// devFleetLog points fleet's own log lines ("INFO engine.go:…", "ERROR
// event.go:…": fleet talking, not Kaylee) at a file in dir, truncated at
// each start, or at stderr with --verbose. where is what dev's banner
// prints; restore ends the redirection (to the file: see below) and
// closes the file. fleet's logger
// is process-global: see fleet/fleetlog.
func devFleetLog(dir string, verbose bool, stderr io.Writer) (where string, restore func(), err error) {
	if verbose {
		return "stderr (--verbose)", fleetlog.Redirect(stderr), nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("directory for fleet's log: %w", err)
	}
	path := filepath.Join(dir, fleetLogName)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", nil, fmt.Errorf("fleet's log: %w", err)
	}
	// The redirection stays to the end of the process, writing nowhere
	// once the file is closed: fleet's components log after the cluster's
	// Close returns (an etcd watcher's "context canceled"), and those
	// lines are no more the user's than the others.
	w := &endableWriter{w: f}
	fleetlog.Redirect(w)
	return path + " (--verbose: on stderr)", func() { w.end(); f.Close() }, nil
}

// endableWriter writes to w until end, then nowhere.
type endableWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (e *endableWriter) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.w == nil {
		return len(p), nil
	}
	return e.w.Write(p)
}

func (e *endableWriter) end() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.w = nil
}

// devFleetLogDir is where fleet's log goes when etcd is external: the user
// cache dir's kaylee/, or the temporary directory without one.
func devFleetLogDir() string {
	if base, err := os.UserCacheDir(); err == nil {
		return filepath.Join(base, "kaylee")
	}
	return filepath.Join(os.TempDir(), "kaylee")
}
