//go:build unix

package embedetcd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// A second server on a data directory in use fails at once, naming the
// directory and this process; the first goes on serving; once it is
// closed the directory can be used again. An etcd started some other way
// (its database locked, no lock file) is detected too.
func TestDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	first, err := Start(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()

	began := time.Now()
	second, err := Start(Config{Dir: dir})
	if err == nil {
		second.Close()
		t.Fatal("a second server started on a data directory in use")
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("the second start took %s to fail", took)
	}
	want := fmt.Sprintf("etcd data directory %s is in use by another embedded etcd (process %d)", dir, os.Getpid())
	if !errors.Is(err, ErrDataDirInUse) || err.Error() != want {
		t.Fatalf("second start: %v\nwant errors.Is ErrDataDirInUse and %q", err, want)
	}

	c := client(t, first)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("the first server stopped serving: %v", err)
	}
	first.Close()

	// The database locked by something else than a server of this package.
	db, err := os.OpenFile(dbPath(dir), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(db.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	_, err = Start(Config{Dir: dir})
	want = fmt.Sprintf("etcd data directory %s is in use by an etcd (process %d)", dir, os.Getpid())
	if !errors.Is(err, ErrDataDirInUse) || err.Error() != want {
		t.Fatalf("start on a locked database: %v\nwant %q", err, want)
	}
	db.Close()

	again, err := Start(Config{Dir: dir})
	if err != nil {
		t.Fatalf("the directory stays taken after Close: %v", err)
	}
	defer again.Close()
	r, err := client(t, again).Get(ctx, "k")
	if err != nil || len(r.Kvs) != 1 {
		t.Fatalf("data after a restart on the directory: %v %v", r, err)
	}
	if _, err := os.Stat(filepath.Join(dir, lockFileName)); err != nil {
		t.Errorf("no lock file: %v", err)
	}
}

// client is a v3 client on s, closed at the end of the test.
func client(t *testing.T, s *Server) *clientv3.Client {
	t.Helper()
	c, err := s.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
