//go:build unix

package embedetcd

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// tryLock takes a flock on f without waiting (exclusive or shared); held
// says another open file holds a conflicting one.
func tryLock(f *os.File, exclusive bool) (held bool, err error) {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for {
		err = syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	return false, err
}

// lockHolder is the pid of the process holding a flock on path, from
// Linux's /proc/locks; 0 when it cannot be told.
func lockHolder(path string) int {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0
	}
	data, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0
	}
	ino := strconv.FormatUint(uint64(sys.Ino), 10)
	for _, line := range strings.Split(string(data), "\n") {
		// 1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF
		f := strings.Fields(line)
		if len(f) < 6 || f[1] != "FLOCK" {
			continue // a waiter ("->") or another kind of lock
		}
		if i := strings.LastIndexByte(f[5], ':'); i >= 0 && f[5][i+1:] == ino {
			if pid, err := strconv.Atoi(f[4]); err == nil {
				return pid
			}
		}
	}
	return 0
}
