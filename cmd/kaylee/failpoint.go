package main

import (
	"os"
	"syscall"
	"time"
)

// Fault injection for the fault tests (faults/): with
// KAYLEE_TEST_STOP_AFTER_CONFIRM=FILE, the scheduler stops its own process
// (SIGSTOP, as a frozen VM or a long GC pause would) right after it has
// confirmed its leadership before fleet calls, once FILE exists (it is
// removed). Nothing else reads it.
const stopAfterConfirmEnv = envPrefix + "TEST_STOP_AFTER_CONFIRM"

func (a *app) stopAfterConfirm() func() {
	file := a.getenv(stopAfterConfirmEnv)
	if file == "" {
		return nil
	}
	return func() {
		if os.Remove(file) == nil {
			_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
			// The stop reaches every thread asynchronously: wait here so
			// that the process freezes at this point, not in the call.
			time.Sleep(200 * time.Millisecond)
		}
	}
}
