// Package localtree reads unit files from local paths (a checkout given
// to kaylee validate, render or run) under the rules the git side
// (gitsource) applies to a repository:
//
//   - A directory is read recursively (*.yaml and *.yml, hidden
//     directories skipped, symlinked directories not entered), and every
//     file read must resolve inside it: a symlink that leaves it (an
//     absolute one, or one climbing out with ..) is refused and never
//     opened. Resolution goes through an os.Root, so a symlink swapped in
//     after the check cannot lead out either. A chain of more than 8
//     symlinks (os.Root's limit) or a loop is refused.
//   - A file named explicitly is the user's choice: a symlink there is
//     followed wherever it leads, but what it reaches obeys the rules
//     below like any other file.
//   - Only regular files are read: a FIFO, a device or a socket is
//     refused ("not a regular file") after a stat, before it is opened,
//     and opened with O_NONBLOCK, so that one swapped in meanwhile cannot
//     block either.
//   - A file over deploy.MaxFileSize is refused before it is read, and
//     reading stops one byte past the limit whatever its size claimed.
//   - Reading honours the context: a cancelled command ends between
//     chunks of 64 KiB and between files.
//
// A refused file is a *FileError naming the file and why, never its
// content.
package localtree

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// File is a unit file found under the paths given to Read: its content,
// or, with Err set, why it was not read.
type File struct {
	Path string // as given, or joined to the directory given
	Data []byte // nil when Err != nil
	Err  *FileError
}

// FileError is a file refused or not readable; the other files are read.
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// Read reads the unit files under paths, in order: each directory's
// files sorted by name, each file named explicitly whatever its
// extension. A path that does not exist, or a directory that cannot be
// listed, is an error, as is the end of ctx; a file that cannot be read
// is a File with Err set.
func Read(ctx context.Context, paths []string) ([]File, error) {
	var out []File
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if !st.IsDir() {
			data, err := readExplicit(ctx, p)
			if err := canceled(ctx, err); err != nil {
				return nil, err
			}
			out = append(out, file(p, data, err))
			continue
		}
		files, err := readDir(ctx, p)
		if err != nil {
			return nil, err
		}
		out = append(out, files...)
	}
	return out, nil
}

func file(path string, data []byte, err error) File {
	if err != nil {
		return File{Path: path, Err: &FileError{Path: path, Err: err}}
	}
	return File{Path: path, Data: data}
}

// canceled is ctx's error when err is because of it.
func canceled(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return err
	}
	return nil
}

// readExplicit reads a file named explicitly: symlinks are followed.
func readExplicit(ctx context.Context, p string) ([]byte, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, cannot(err)
	}
	if err := check(st); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_RDONLY|oNonblock, 0)
	if err != nil {
		return nil, cannot(err)
	}
	defer f.Close()
	return readOpen(ctx, f)
}

// readDir reads the unit files under dir, each resolved inside it.
func readDir(ctx context.Context, dir string) ([]File, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("reading directory %s: %w", dir, err)
	}
	defer root.Close()
	var found []string // slash-separated, relative to dir
	err = fs.WalkDir(root.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() && rel != "." && strings.HasPrefix(d.Name(), ".") {
			return fs.SkipDir // .git and friends
		}
		if !d.IsDir() && deploy.IsUnitFile(d.Name()) {
			found = append(found, rel)
		}
		return nil
	})
	if err := canceled(ctx, err); err != nil {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("reading directory %s: %w", dir, err)
	}
	full := make(map[string]string, len(found))
	for _, rel := range found {
		full[rel] = filepath.Join(dir, filepath.FromSlash(rel))
	}
	sort.Slice(found, func(i, j int) bool { return full[found[i]] < full[found[j]] })
	out := make([]File, 0, len(found))
	for _, rel := range found {
		data, err := readIn(ctx, root, dir, rel)
		if err := canceled(ctx, err); err != nil {
			return nil, err
		}
		out = append(out, file(full[rel], data, err))
	}
	return out, nil
}

// readIn reads rel inside root (the directory dir), refusing a symlink
// that leads out of it.
func readIn(ctx context.Context, root *os.Root, dir, rel string) ([]byte, error) {
	name := filepath.FromSlash(rel)
	li, err := root.Lstat(name)
	if err != nil {
		return nil, cannot(err)
	}
	via := "" // "symlink to TARGET: " when rel is a symlink
	if li.Mode()&fs.ModeSymlink != 0 {
		target, err := root.Readlink(name)
		if err != nil {
			return nil, cannot(err)
		}
		via = "symlink to " + target + ": "
		st, err := root.Stat(name)
		if err != nil {
			return nil, refusedLink(dir, name, target, err)
		}
		li = st
	}
	if err := check(li); err != nil {
		return nil, fmt.Errorf("%s%w", via, err)
	}
	f, err := root.OpenFile(name, os.O_RDONLY|oNonblock, 0)
	if err != nil {
		return nil, fmt.Errorf("%s%w", via, cannot(err))
	}
	defer f.Close()
	data, err := readOpen(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("%s%w", via, err)
	}
	return data, nil
}

// refusedLink explains why the symlink name (to target) in dir could not
// be resolved inside it: it leads out, loops, or leads nowhere.
func refusedLink(dir, name, target string, err error) error {
	if dirReal, derr := filepath.EvalSymlinks(dir); derr == nil {
		// Where it would lead, for the message only: nothing there is
		// opened.
		dest, lerr := filepath.EvalSymlinks(filepath.Join(dir, name))
		if lerr != nil && filepath.IsAbs(target) {
			dest, lerr = filepath.Clean(target), nil
		}
		if lerr == nil && !within(dirReal, dest) {
			return fmt.Errorf("symlink to %s leaves the directory %s; not followed", target, dir)
		}
	}
	switch {
	case filepath.IsAbs(target):
		return fmt.Errorf("symlink to %s: an absolute symlink; not followed (make it relative)", target)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("symlink to %s: no such file", target)
	case errors.Is(err, syscall.ELOOP) || strings.Contains(err.Error(), "too many"):
		return fmt.Errorf("symlink to %s: a symlink loop, or a chain of more than 8 symlinks; not followed", target)
	}
	return fmt.Errorf("symlink to %s: %w; not followed", target, unwrapPath(err))
}

// within says whether path is dir or below it (both clean and absolute).
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// check refuses what is not a regular file, or is over the size limit.
func check(st fs.FileInfo) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("not a regular file (%s); not read", kind(st.Mode()))
	}
	if st.Size() > deploy.MaxFileSize {
		return deploy.FileTooBig(st.Size())
	}
	return nil
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "mode " + m.String()
}

// chunk is how much is read between two looks at the context.
const chunk = 64 << 10

// readOpen reads an open file: a regular one (checked again on the open
// file, in case it was swapped), up to MaxFileSize bytes, stopping when
// ctx ends.
func readOpen(ctx context.Context, f *os.File) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, cannot(err)
	}
	if err := check(st); err != nil {
		return nil, err
	}
	r := io.LimitReader(f, deploy.MaxFileSize+1) // a file may grow, or lie about its size
	data := make([]byte, 0, min(st.Size()+1, deploy.MaxFileSize+1))
	buf := make([]byte, chunk)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := r.Read(buf)
		data = append(data, buf[:n]...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, cannot(err)
		}
	}
	if len(data) > deploy.MaxFileSize {
		return nil, fmt.Errorf("more than %d bytes; unit files over %d bytes are refused", deploy.MaxFileSize, deploy.MaxFileSize)
	}
	return data, nil
}

// cannot is a failure to read, without the path (the FileError names it).
func cannot(err error) error {
	return fmt.Errorf("cannot read: %w", unwrapPath(err))
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
