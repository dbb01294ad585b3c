// Package fleetlog is the one place where the output of fleet's own log
// lines (github.com/coreos/fleet/log: "INFO engine.go:179: …", "ERROR
// event.go:106: …") is chosen.
//
// fleet v1.0.0 logs through a process-global *log.Logger writing to
// os.Stderr, with no way to change it; this package reaches that logger
// (go:linkname) and points it at the sink most recently pushed with
// Redirect, or at os.Stderr when there is none. It is process-global
// because fleet's logger is: every fleet component in the process (the
// simulated machines of fleet/fleetsim, fleet's registry client) logs to
// the same sink.
package fleetlog

import (
	"io"
	"log"
	"os"
	"sync"
	_ "unsafe" // go:linkname

	_ "github.com/coreos/fleet/log" // the logger reached below
)

//go:linkname fleetLogger github.com/coreos/fleet/log.logger
var fleetLogger *log.Logger

// sinks are the writers pushed by Redirect, the newest last; fleet's lines
// go to the newest.
var (
	mu    sync.Mutex
	sinks []*sink
)

type sink struct{ w io.Writer }

// Redirect sends fleet's log lines to w until restore is called, and
// then to the sink pushed before it (os.Stderr when none). Redirections
// may end in any order; the newest live one wins.
func Redirect(w io.Writer) (restore func()) {
	mu.Lock()
	defer mu.Unlock()
	s := &sink{w: w}
	sinks = append(sinks, s)
	apply()
	var once sync.Once
	return func() {
		once.Do(func() {
			mu.Lock()
			defer mu.Unlock()
			for i, x := range sinks {
				if x == s {
					sinks = append(sinks[:i], sinks[i+1:]...)
					break
				}
			}
			apply()
		})
	}
}

func apply() {
	if len(sinks) == 0 {
		fleetLogger.SetOutput(os.Stderr)
		return
	}
	fleetLogger.SetOutput(sinks[len(sinks)-1].w)
}
