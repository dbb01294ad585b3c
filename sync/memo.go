package sync

import (
	"bytes"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/store"
)

// fileParse is one unit file read and validated with a default engine:
// what parse adds to a snapshot's parsed for it. It is shared between
// passes: never modified once made.
type fileParse struct {
	docs     []*deploy.Document
	canon    [][]byte // the canonical JSON of each valid document (nil for the others)
	errors   []store.SyncError
	warnings []store.SyncError // of valid documents
	bad      bool
}

// parseMemo keeps the files a loop parsed, by path, with the blob (or
// the data) and the default engine they were parsed with: a new revision
// costs the files it changed. It holds the files of the last snapshot
// parsed only; a change of the default engine, on which validation
// depends, parses every file again.
type parseMemo struct {
	engine string
	files  map[string]memoEntry
	// parsed are the paths the last pass read and validated (for tests).
	parsed []string
}

type memoEntry struct {
	blob string // gitsource.File.Blob; when empty, data is compared
	data []byte
	fp   *fileParse
}

// same says whether f is the file e was parsed from.
func (e memoEntry) same(f gitsource.File) bool {
	if f.Blob != "" || e.blob != "" {
		return f.Blob == e.blob
	}
	return bytes.Equal(f.Data, e.data)
}

// lookup returns the parse of f with engine: the memo's when f and the
// engine are the ones it was made with, else a new one, kept in next
// (the memo of this snapshot).
func (m *parseMemo) lookup(f gitsource.File, engine string, next map[string]memoEntry) *fileParse {
	if e, ok := m.files[f.Path]; ok && m.engine == engine && e.same(f) {
		next[f.Path] = e
		return e.fp
	}
	fp := parseFile(f, engine)
	m.parsed = append(m.parsed, f.Path)
	e := memoEntry{blob: f.Blob, fp: fp}
	if f.Blob == "" {
		e.data = f.Data
	}
	next[f.Path] = e
	return fp
}
