package embedetcd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrDataDirInUse is returned (wrapped in a *DataDirInUseError) by Start
// when another server, in this process or another, uses the data
// directory. Without this check the second server would wait forever on
// etcd's database lock, deaf to signals.
var ErrDataDirInUse = errors.New("data directory in use")

// DataDirInUseError names the directory and, when it can be told, the
// process that holds it.
type DataDirInUseError struct {
	Dir string
	PID int // 0: unknown
	// By says what holds it: "another embedded etcd" (its lock file) or
	// "an etcd" (the database itself is locked, by an etcd started some
	// other way).
	By string
}

func (e *DataDirInUseError) Error() string {
	who := e.By
	if e.PID != 0 {
		who += fmt.Sprintf(" (process %d)", e.PID)
	}
	return fmt.Sprintf("etcd data directory %s is in use by %s", e.Dir, who)
}

// Is makes errors.Is(err, ErrDataDirInUse) hold.
func (e *DataDirInUseError) Is(target error) bool { return target == ErrDataDirInUse }

// lockFileName is the file in the data directory a server holds locked
// (flock, exclusive, non-blocking) for its whole life, from Start to Close;
// it holds the pid of the process that has it.
const lockFileName = "kaylee-etcd.lock"

// dbPath is where etcd keeps its bbolt database in a data directory.
func dbPath(dir string) string { return filepath.Join(dir, "member", "snap", "db") }

// lockDir takes the data directory for this server: its lock file, then
// a check that no etcd started some other way holds the database. It
// returns the function that releases the lock.
func lockDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd data dir: %w", err)
	}
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("etcd data dir lock: %w", err)
	}
	held, err := tryLock(f, true)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("etcd data dir lock %s: %w", path, err)
	}
	if held {
		pid := readPID(f)
		f.Close()
		return nil, &DataDirInUseError{Dir: dir, PID: pid, By: "another embedded etcd"}
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if db, err := os.Open(dbPath(dir)); err == nil {
		held, _ := tryLock(db, false)
		db.Close() // closing drops the probe's own shared lock
		if held {
			f.Close()
			return nil, &DataDirInUseError{Dir: dir, PID: lockHolder(dbPath(dir)), By: "an etcd"}
		}
	}
	return func() { f.Close() }, nil
}

func readPID(f *os.File) int {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil {
		return 0
	}
	return pid
}
