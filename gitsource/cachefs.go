package gitsource

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// openCache opens the bare repository at dir, as git.PlainOpen does,
// except that each pack index is read whole, in one read. go-git decodes
// an index straight from its file, a few bytes a read, and a cache opened
// afresh reads every pack's index at its first lookup: a pass opens the
// cache twice, once to ask for a webhook's commit and once to fetch, and
// the cache keeps up to MaxPacks packs (BenchmarkOpenCache).
func openCache(dir string) (*git.Repository, error) {
	return openCacheFS(osfs.New(dir))
}

// openCacheFS is openCache on the repository's file system.
func openCacheFS(fs billy.Filesystem) (*git.Repository, error) {
	if _, err := fs.Stat(""); err != nil {
		if os.IsNotExist(err) {
			return nil, git.ErrRepositoryNotExists
		}
		return nil, err
	}
	return git.Open(filesystem.NewStorage(wholeIndexes{fs}, cache.NewObjectLRUDefault()), nil)
}

// wholeIndexes is a file system whose pack indexes (*.idx) open as
// copies in memory, read with one read. Every other file is the file
// system's own.
type wholeIndexes struct{ billy.Filesystem }

func (w wholeIndexes) Open(name string) (billy.File, error) {
	f, err := w.Filesystem.Open(name)
	if err != nil || !strings.HasSuffix(name, ".idx") {
		return f, err
	}
	defer f.Close()
	b, err := readWhole(f)
	if err != nil {
		return nil, fmt.Errorf("reading pack index %s: %w", name, err)
	}
	return &memFile{name: f.Name(), Reader: bytes.NewReader(b)}, nil
}

// readWhole reads f whole, sized by its length: one read. A pack's index
// never changes once written (git and go-git put a new one in place by
// renaming it), and the index's own checksum, checked as it is decoded,
// would tell a short copy.
func readWhole(f billy.File) ([]byte, error) {
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	b := make([]byte, size)
	_, err = io.ReadFull(f, b)
	return b, err
}

// memFile is a read-only billy.File over bytes in memory.
type memFile struct {
	name string
	*bytes.Reader
}

var errReadOnly = errors.New("read-only copy of a pack index")

func (m *memFile) Name() string              { return m.name }
func (m *memFile) Write([]byte) (int, error) { return 0, errReadOnly }
func (m *memFile) Truncate(int64) error      { return errReadOnly }
func (m *memFile) Close() error              { return nil }
func (m *memFile) Lock() error               { return nil }
func (m *memFile) Unlock() error             { return nil }
