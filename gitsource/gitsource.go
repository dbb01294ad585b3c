// Package gitsource fetches unit files from a git repository with go-git:
// a shallow, single-ref fetch into a cache directory, the revision a ref
// points at, and the files under a path at that revision.
package gitsource

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	gosync "sync"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/internal/redact"
)

// MaxFileSize is the largest unit file read; bigger ones are refused. It
// is deploy's, which local files (kaylee validate) obey too.
const MaxFileSize = deploy.MaxFileSize

// Config says what to fetch.
type Config struct {
	// URL of the repository: https://, http://, ssh://, user@host:path,
	// file:// or a local path. Credentials in it (https://user:pass@…,
	// https://token@…) are used, and never shown: see RedactURL.
	URL string
	// Ref is a branch, a tag or a full commit hash; empty means the
	// remote's HEAD.
	Ref string
	// Path is the directory of unit files in the repository; empty or "."
	// means the root.
	Path string
	// CacheDir holds the fetched repository (see DefaultCacheDir).
	CacheDir string
	Auth     transport.AuthMethod // nil: none (see Auth)
	// Verify, when set, makes Fetch refuse revisions whose signatures
	// are not by a trusted key.
	Verify *Verify
}

// Source is a repository being followed. It is safe for concurrent use.
//
// Its cache directory may be shared with other Sources and processes:
// Fetch holds a lock on it (see lock) and opens the repository afresh
// under the lock. A cache that cannot be read is fetched again.
type Source struct {
	cfg      Config
	shown    string   // cfg.URL as shown: its credentials masked
	secrets  []string // the credentials, masked in every error (see redact.Secrets)
	dir      string
	verifier *verifier // nil: no verification
	mu       gosync.Mutex
	last     *Snapshot     // the last good (verified) snapshot
	lastObj  plumbing.Hash // what its ref pointed at (a tag object for annotated tags)
	// overHTTP: the URL is fetched over smart HTTP (see WithAfter).
	overHTTP bool
	// lastCaps and lastRef are the capabilities the server advertised in
	// the last listing and the ref resolved in it (for guess).
	lastCaps *capability.List
	lastRef  plumbing.ReferenceName
	// held, if set (by tests), is called with the cache lock held; what
	// it returns is called before the lock is released.
	held func() (release func())
	// maxTreeDepth is MaxTreeDepth; tests of the limit set less, so that
	// their trees need not be thousands of directories deep.
	maxTreeDepth int
}

// File is a unit file at a revision.
type File struct {
	Path string // relative to the repository root, slash separated
	Data []byte
	// Blob is the git object hash of a regular file's blob (what git
	// hash-object prints), which names its content: a file whose Blob is
	// unchanged between two snapshots has the same Data. Empty for a file
	// read through a symlink, and for files not read from git.
	Blob string
}

// FileError is a file that could not be read (too big, a symlink leaving
// the repository); the sync treats it like a file that does not parse.
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string { return e.Path + ": " + e.Err.Error() }

// Snapshot is the unit files under Path at one revision.
type Snapshot struct {
	Revision string // full commit hash
	// Parents are the revision's parent commits (full hashes): a
	// revision descends from each of them.
	Parents []string
	Ref     string // what was asked for, resolved: "main", "v1.2", or the hash
	Files   []File
	Errors  []*FileError
	// Recipients is the repository's deploy.RecipientsFile (at its root,
	// whatever Path is), read under the rules of unit files; nil when the
	// revision has none. One that cannot be read is in Errors instead.
	Recipients *File
	// Verified is who signed the revision, e.g. "SSH key SHA256:… of
	// alice@example.com" or "OpenPGP key 4AB1… (Alice
	// <alice@example.com>)"; empty when verification is off.
	Verified string
}

// Short is ref@abbreviated-revision, for summaries.
func (s *Snapshot) Short() string {
	rev := s.Revision
	if len(rev) > 7 {
		rev = rev[:7]
	}
	if s.Ref == "" || s.Ref == s.Revision {
		return rev
	}
	return s.Ref + "@" + rev
}

// DefaultCacheDir is /var/lib/kaylee as root, else <user cache dir>/kaylee.
func DefaultCacheDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/kaylee"
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "kaylee")
	}
	return filepath.Join(os.TempDir(), "kaylee")
}

// New returns a source; nothing is fetched yet.
func New(cfg Config) (*Source, error) {
	if cfg.URL == "" {
		return nil, errors.New("no repository given")
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = DefaultCacheDir()
	}
	if isLocalPath(cfg.URL) {
		abs, err := filepath.Abs(cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("repository %s: %w", RedactURL(cfg.URL), err)
		}
		cfg.URL = abs
	}
	p := path.Clean("/" + filepath.ToSlash(cfg.Path))
	cfg.Path = strings.TrimPrefix(p, "/")
	sum := sha256.Sum256([]byte(cfg.URL))
	s := &Source{
		cfg:          cfg,
		shown:        RedactURL(cfg.URL),
		secrets:      secrets(cfg),
		dir:          filepath.Join(cfg.CacheDir, "git", hex.EncodeToString(sum[:8])),
		overHTTP:     overHTTP(cfg.URL),
		maxTreeDepth: MaxTreeDepth,
	}
	if cfg.Verify != nil {
		v, err := newVerifier(cfg.Verify, cfg.Ref)
		if err != nil {
			return nil, err
		}
		s.verifier = v
	}
	return s, nil
}

func isLocalPath(u string) bool {
	if strings.Contains(u, "://") {
		return false
	}
	// scp-like user@host:path is remote; a Windows drive is not a concern.
	return !scpLike.MatchString(u)
}

var scpLike = regexp.MustCompile(`^[^/]+@[^/:]+:`)

// URL is the repository's URL as shown to people (a local path made
// absolute): its credentials masked (RedactURL). Only the Source itself
// uses the URL as given.
func (s *Source) URL() string { return s.shown }

// RedactURL is a repository URL with its credentials masked, host and
// path kept: the whole user info of an http(s) URL, which is a token even
// without a password (https://***@host/x); only the password of an ssh
// URL (ssh://git:***@host/x, git@host:x unchanged). See package
// internal/redact for the rule.
func RedactURL(u string) string { return redact.URL(u) }

// Redact masks the credentials of every URL quoted in s (an error's text,
// a log line).
func Redact(s string) string { return redact.Text(s) }

// secrets are the credentials of cfg: those of its URL and the password
// or token of its HTTP auth.
func secrets(cfg Config) []string {
	out := redact.Secrets(cfg.URL)
	switch a := cfg.Auth.(type) {
	case *githttp.BasicAuth:
		out = append(out, redact.Forms(a.Password)...)
	case *githttp.TokenAuth:
		out = append(out, redact.Forms(a.Token)...)
	}
	return out
}

// redactedError is an error of go-git (or of the HTTP or SSH client under
// it) with the source's credentials masked in its text. It is not
// unwrapped, so that no caller reaches the error holding the raw URL
// (*url.Error, go-git's endpoint); errors.Is still sees what it wraps
// (transport.ErrAuthenticationRequired, context.DeadlineExceeded).
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string        { return e.msg }
func (e *redactedError) Is(target error) bool { return errors.Is(e.err, target) }

// scrub masks the source's credentials in a transport error.
func (s *Source) scrub(err error) error {
	if err == nil {
		return nil
	}
	return &redactedError{msg: redact.Scrub(err.Error(), s.secrets), err: err}
}

// Path is the directory read in the repository ("" for the root).
func (s *Source) Path() string { return s.cfg.Path }

// open opens the cache repository in dir, making it if missing. Call it
// with the lock held.
//
// The cache's remote holds the URL as shown, credentials masked (a cache
// made by an older version is corrected): fetches name the real URL
// (FetchOptions.RemoteURL), so it is never written to disk.
func (s *Source) open(dir string) (*git.Repository, error) {
	r, err := openCache(dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("git cache: %w", err)
		}
		r, err = git.PlainInit(dir, true)
	}
	if err == nil {
		err = s.setRemote(r)
	}
	if err != nil {
		return nil, fmt.Errorf("git cache %s: %w", dir, s.scrub(err))
	}
	return r, nil
}

// setRemote makes the cache's origin the URL as shown.
func (s *Source) setRemote(r *git.Repository) error {
	cfg, err := r.Config()
	if err != nil {
		return err
	}
	if o := cfg.Remotes["origin"]; o != nil && len(o.URLs) == 1 && o.URLs[0] == s.shown {
		return nil
	}
	o := &config.RemoteConfig{Name: "origin", URLs: []string{s.shown}}
	if err := o.Validate(); err != nil {
		return err
	}
	cfg.Remotes["origin"] = o
	return r.SetConfig(cfg)
}

// target is what a ref resolved to on the remote.
type target struct {
	name   string                 // short name for summaries
	ref    plumbing.ReferenceName // remote ref to fetch; "" for a bare commit
	commit plumbing.Hash          // the commit (peeled), when the listing says it
	object plumbing.Hash          // what ref points at (a tag object for annotated tags)
}

var commitRe = regexp.MustCompile(`^[0-9a-f]{40}$`)

// resolve lists the remote's refs (one round trip, no fetch) and returns
// what the ref points at, with the listing, whose session can fetch it
// (nil for a bare commit, which is not listed). The caller closes it.
func (s *Source) resolve(ctx context.Context) (target, *listing, error) {
	if commitRe.MatchString(s.cfg.Ref) {
		h := plumbing.NewHash(s.cfg.Ref)
		return target{name: s.cfg.Ref, commit: h, object: h}, nil, nil
	}
	l, err := s.list(ctx)
	if err != nil {
		return target{}, nil, fmt.Errorf("listing refs of %s: %w", s.shown, s.scrub(explain(err)))
	}
	t, err := s.resolveIn(l.refs)
	if err != nil {
		l.close()
		return target{}, nil, err
	}
	return t, l, nil
}

// resolveIn is what the ref points at among the remote's refs (the
// peeled ones as NAME^{}).
func (s *Source) resolveIn(refs []*plumbing.Reference) (target, error) {
	byName := map[plumbing.ReferenceName]*plumbing.Reference{}
	for _, ref := range refs {
		byName[ref.Name()] = ref
	}
	var candidates []plumbing.ReferenceName
	switch {
	case s.cfg.Ref == "":
		head := byName[plumbing.HEAD]
		if head == nil {
			return target{}, fmt.Errorf("%s has no HEAD (an empty repository?): name a ref", s.shown)
		}
		if head.Type() == plumbing.HashReference {
			return target{name: "HEAD", ref: plumbing.HEAD, commit: head.Hash(), object: head.Hash()}, nil
		}
		candidates = []plumbing.ReferenceName{head.Target()}
	case strings.HasPrefix(s.cfg.Ref, "refs/"):
		candidates = []plumbing.ReferenceName{plumbing.ReferenceName(s.cfg.Ref)}
	default:
		candidates = []plumbing.ReferenceName{plumbing.NewBranchReferenceName(s.cfg.Ref), plumbing.NewTagReferenceName(s.cfg.Ref)}
	}
	for _, name := range candidates {
		ref := byName[name]
		if ref == nil {
			continue
		}
		t := target{name: name.Short(), ref: name, object: ref.Hash(), commit: ref.Hash()}
		if peeled := byName[plumbing.ReferenceName(string(name)+"^{}")]; peeled != nil {
			t.commit = peeled.Hash()
		}
		return t, nil
	}
	return target{}, fmt.Errorf("%s has no branch or tag %q (check the ref)", s.shown, s.cfg.Ref)
}

// Fetch returns the unit files at the ref's current revision. When the
// ref has not moved since the last call, it costs one ref listing and
// returns the same snapshot, without touching the cache.
//
// With Config.Verify, a revision that fails verification is an error
// wrapping ErrUnverified (a *VerificationError), every time it is asked
// for; it never replaces the last good snapshot.
func (s *Source) Fetch(ctx context.Context) (*Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, l, g, err := s.listAndGuess(ctx) // g holds the cache lock, when not nil
	defer g.drop()
	if err != nil {
		return nil, err
	}
	defer l.close()
	if l != nil {
		s.lastCaps, s.lastRef = l.adv.Capabilities, t.ref
	}
	if s.last != nil && s.last.Revision == t.commit.String() && s.lastObj == t.object {
		return s.last, nil
	}
	if g == nil {
		unlock, err := s.lock(ctx)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	if s.held != nil {
		defer s.held()()
	}
	snap, obj, err := s.fetchInto(ctx, s.dir, t, l, g)
	if err != nil && !permanent(ctx, err) {
		snap, obj, err = s.refetch(ctx, t, err)
	}
	if err != nil {
		return nil, err
	}
	snap.Ref = t.name
	s.last, s.lastObj = snap, obj
	return snap, nil
}

// fetchInto opens (or makes) the cache repository in dir, fetches the
// target into it if missing (with g's pack when it fits, else over l's
// session when l is not nil and unused), verifies it and reads the
// snapshot. It returns what the ref pointed at, too.
func (s *Source) fetchInto(ctx context.Context, dir string, t target, l *listing, g *guess) (*Snapshot, plumbing.Hash, error) {
	var r *git.Repository
	var err error
	if g != nil && dir == s.dir {
		r = g.repo // opened under the same lock
	} else if r, err = s.open(dir); err != nil {
		return nil, plumbing.ZeroHash, err
	}
	c, tag, obj, err := s.commit(ctx, r, t, l, g)
	if err != nil {
		return nil, plumbing.ZeroHash, err
	}
	verified := ""
	if s.verifier != nil {
		if verified, err = s.verifier.verify(t, c, tag); err != nil {
			return nil, plumbing.ZeroHash, err
		}
	}
	snap, err := s.readReusing(c, s.last)
	if err != nil {
		return nil, plumbing.ZeroHash, err
	}
	snap.Verified = verified
	return snap, obj, nil
}

// refetch handles a failure in the cache (firstErr): it fetches afresh
// into an empty directory beside it. When that gets as far as the
// fetched revision, the new directory replaces the cache (a damaged one:
// a crash or a full disk); when it does not (the remote failed), the
// cache is kept and the error returned.
func (s *Source) refetch(ctx context.Context, t target, firstErr error) (*Snapshot, plumbing.Hash, error) {
	fresh := s.dir + ".fresh"
	if err := os.RemoveAll(fresh); err != nil {
		return nil, plumbing.ZeroHash, firstErr
	}
	snap, obj, err := s.fetchInto(ctx, fresh, t, nil, nil)
	if err != nil && !permanent(ctx, err) {
		_ = os.RemoveAll(fresh)
		if err.Error() == firstErr.Error() {
			return nil, plumbing.ZeroHash, firstErr
		}
		return nil, plumbing.ZeroHash, fmt.Errorf("%w (fetching afresh failed too: %v)", firstErr, err)
	}
	old := s.dir + ".old"
	_ = os.RemoveAll(old)
	if rerr := os.Rename(s.dir, old); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		_ = os.RemoveAll(fresh)
		return nil, plumbing.ZeroHash, fmt.Errorf("%w (replacing the cache: %v)", firstErr, rerr)
	}
	if rerr := os.Rename(fresh, s.dir); rerr != nil {
		return nil, plumbing.ZeroHash, fmt.Errorf("%w (replacing the cache: %v)", firstErr, rerr)
	}
	_ = os.RemoveAll(old)
	return snap, obj, err
}

// permanentError is an error a fresh fetch would not change (a missing
// path, a refused signature).
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// permanent says whether err is not worth a fresh fetch: it is about the
// revision, not the cache, or ctx has ended.
func permanent(ctx context.Context, err error) bool {
	var ve *VerificationError
	var pe permanentError
	return ctx.Err() != nil || errors.As(err, &ve) || errors.As(err, &pe)
}

// commit fetches what is missing (shallow, only the ref) and returns the
// commit, the annotated tag the ref names (or nil) and what the ref
// points at. With a listing whose session is unused, the pack is the one
// guessed (g), when g asked for exactly what the listing calls for, else
// asked for on the listing's session: the ref as listed, without a second
// listing. Otherwise, or when that fails, go-git's fetch lists the refs
// again and fetches the ref as it is then.
func (s *Source) commit(ctx context.Context, r *git.Repository, t target, l *listing, g *guess) (*object.Commit, *object.Tag, plumbing.Hash, error) {
	if c, tag, err := peel(r, t.object); err == nil {
		return c, tag, t.object, nil // already in the cache
	}
	opts := &git.FetchOptions{RemoteName: "origin", RemoteURL: s.cfg.URL, Auth: s.cfg.Auth, Tags: git.NoTags, Force: true, Depth: 1, RefSpecs: refSpecs(t)}
	if holdsRef(r, t) {
		// The cache holds the commit the ref pointed at before. A fetch of
		// depth 1 makes the new head a shallow root, and git's server then
		// sends its whole tree again, every blob (1,003 objects for a
		// commit changing one file of 1,000); of depth 2, when the new
		// head's parent is the commit the cache holds, only what changed.
		// The history fetched stays bounded: two commits, not one.
		opts.Depth = 2
	}
	if t.ref == "" {
		// A bare commit: servers only hand out what refs reach, so fetch
		// every branch with history and look for it.
		opts.Depth = 0
	}
	if l != nil && !l.used && t.ref != "" && g.fits(l, r.Storer, t, opts.Depth) {
		// The guessed pack is the listed head's: fits compared the request
		// with the one the listing calls for, want included.
		if err := g.take(ctx, r.Storer); err == nil {
			if c, tag, err := peel(r, g.want); err == nil {
				if err := setLocalRef(r.Storer, t, g.want); err != nil {
					return nil, nil, plumbing.ZeroHash, fmt.Errorf("git cache: %w", err)
				}
				return c, tag, g.want, nil
			}
		} else if ctx.Err() != nil {
			return nil, nil, plumbing.ZeroHash, fmt.Errorf("fetching %s from %s: %w", t.name, s.shown, s.scrub(explain(err)))
		}
		// The guess failed (the server had not the commit yet, the answer
		// broke off): ask the listing's session, as without one.
	}
	if l != nil && !l.used && t.ref != "" {
		err := l.fetch(ctx, r.Storer, t, opts.Depth)
		if err == nil {
			c, tag, err := peel(r, t.object)
			if err != nil {
				return nil, nil, plumbing.ZeroHash, fmt.Errorf("%s at %s: %w", s.shown, t.name, s.scrub(err))
			}
			return c, tag, t.object, nil
		}
		if ctx.Err() != nil {
			return nil, nil, plumbing.ZeroHash, fmt.Errorf("fetching %s from %s: %w", t.name, s.shown, s.scrub(explain(err)))
		}
		// The server may refuse what it listed when the ref was force-pushed
		// since: fetch the ref as it is now (go-git's fetch lists it again).
	}
	if err := r.FetchContext(ctx, opts); err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil, nil, plumbing.ZeroHash, fmt.Errorf("fetching %s from %s: %w", t.name, s.shown, s.scrub(explain(err)))
	}
	obj := t.object
	if t.ref != "" && t.ref != plumbing.HEAD {
		// The listing may be older than the fetch: use what was fetched.
		if ref, err := r.Reference(t.ref, true); err == nil {
			obj = ref.Hash()
		}
	}
	c, tag, err := peel(r, obj)
	if err != nil {
		return nil, nil, plumbing.ZeroHash, fmt.Errorf("%s at %s: %w", s.shown, t.name, s.scrub(err))
	}
	return c, tag, obj, nil
}

// holdsRef says whether the cache r holds the commit its copy of t's ref
// (what the last fetch of it fetched) points at.
func holdsRef(r *git.Repository, t target) bool {
	local := t.ref
	switch t.ref {
	case "":
		return false
	case plumbing.HEAD:
		local = "refs/remotes/origin/HEAD"
	}
	ref, err := r.Reference(local, true)
	if err != nil {
		return false
	}
	_, _, err = peel(r, ref.Hash())
	return err == nil
}

// refSpecs are what a fetch of t asks for: the ref into the same name,
// or, for a bare commit, every branch.
func refSpecs(t target) []config.RefSpec {
	switch t.ref {
	case "":
		return []config.RefSpec{"+refs/heads/*:refs/remotes/origin/*"}
	case plumbing.HEAD:
		return []config.RefSpec{"+HEAD:refs/remotes/origin/HEAD"}
	}
	return []config.RefSpec{config.RefSpec(fmt.Sprintf("+%s:%s", t.ref, t.ref))}
}

// peel returns the commit h names and, when h is an annotated tag, the
// tag.
func peel(r *git.Repository, h plumbing.Hash) (*object.Commit, *object.Tag, error) {
	tag, err := r.TagObject(h)
	if err == nil {
		c, err := tag.Commit()
		return c, tag, err
	}
	if !errors.Is(err, plumbing.ErrObjectNotFound) {
		return nil, nil, err
	}
	c, err := r.CommitObject(h)
	return c, nil, err
}

// read collects *.yaml and *.yml files under Path at a commit, skipping
// hidden directories. A symlink is followed only within the repository;
// a file over MaxFileSize is refused; a tree nested deeper than
// MaxTreeDepth refuses the revision.
//
// Each tree and blob is read once, from its entry: the cost is linear in
// the files and the depth, however they are laid out.
func (s *Source) read(c *object.Commit) (*Snapshot, error) { return s.readReusing(c, nil) }

// readReusing is read, taking the data of a file whose blob is one of
// prev's files' (nil: none) from prev instead of reading the blob again:
// a new commit costs the blobs it changed, not every file's.
func (s *Source) readReusing(c *object.Commit, prev *Snapshot) (*Snapshot, error) {
	root, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("reading commit %s: %w", c.Hash, err)
	}
	tree, base, stack, err := s.pathTree(c, root)
	if err != nil {
		return nil, err
	}
	tr := &treeReader{
		maxDepth: s.maxTreeDepth,
		rev:      c.Hash.String(),
		snap:     &Snapshot{Revision: c.Hash.String(), Parents: make([]string, 0, len(c.ParentHashes))},
		links:    map[plumbing.Hash]*object.Tree{},
	}
	for _, h := range c.ParentHashes {
		tr.snap.Parents = append(tr.snap.Parents, h.String())
	}
	if prev != nil {
		tr.reuse = make(map[plumbing.Hash][]byte, len(prev.Files))
		for _, f := range prev.Files {
			if f.Blob != "" {
				tr.reuse[plumbing.NewHash(f.Blob)] = f.Data
			}
		}
	}
	if err := tr.walk(tree, base, stack); err != nil {
		return nil, err
	}
	if err := tr.readRecipients(root); err != nil {
		return nil, err
	}
	return tr.snap, nil
}

// readRecipients reads the repository's deploy.RecipientsFile into the
// snapshot's Recipients (or, when it cannot be read, its Errors). The
// walk never takes it for a unit file: it is under a hidden directory
// and has no .yaml name.
func (tr *treeReader) readRecipients(root *object.Tree) error {
	dir, name := path.Split(deploy.RecipientsFile)
	dir = strings.TrimSuffix(dir, "/")
	e, err := root.FindEntry(dir)
	if missing(err) || err == nil && e.Mode != filemode.Dir {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s at %s: %w", dir, short(tr.rev), err)
	}
	sub, err := root.Tree(dir)
	if err != nil {
		return fmt.Errorf("reading %s at %s: %w", dir, short(tr.rev), err)
	}
	f, err := sub.FindEntry(name)
	if missing(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s at %s: %w", deploy.RecipientsFile, short(tr.rev), err)
	}
	data, ferr := readEntry([]*object.Tree{root, sub}, []string{dir}, tr.links, deploy.RecipientsFile, *f)
	var se storageError
	if errors.As(ferr, &se) {
		return fmt.Errorf("reading %s at %s: %w", deploy.RecipientsFile, short(tr.rev), se.error)
	}
	if ferr != nil {
		tr.snap.Errors = append(tr.snap.Errors, &FileError{Path: deploy.RecipientsFile, Err: ferr})
		return nil
	}
	tr.snap.Recipients = &File{Path: deploy.RecipientsFile, Data: data}
	return nil
}

// pathTree finds Path's tree under the commit's root tree: it returns
// that tree, Path's components (nil when Path is "") and the trees from
// the root to it.
func (s *Source) pathTree(c *object.Commit, root *object.Tree) (*object.Tree, []string, []*object.Tree, error) {
	if s.cfg.Path == "" {
		return root, nil, []*object.Tree{root}, nil
	}
	tree, err := root.Tree(s.cfg.Path)
	if err != nil {
		err = fmt.Errorf("path %s: not a directory at %s: %w (nothing was changed)", s.cfg.Path, c.Hash.String()[:7], err)
		if e, ferr := root.FindEntry(s.cfg.Path); ferr == nil && e.Mode != filemode.Dir || missing(ferr) {
			err = permanentError{err} // not a cache problem
		}
		return nil, nil, nil, err
	}
	base := strings.Split(s.cfg.Path, "/")
	stack := []*object.Tree{root}
	for _, name := range base[:len(base)-1] {
		t, err := stack[len(stack)-1].Tree(name)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("reading %s: %w", name, err) // found above: cannot happen
		}
		stack = append(stack, t)
	}
	return tree, base, append(stack, tree), nil
}

// treeReader reads the unit files of the trees of commit rev into snap.
type treeReader struct {
	maxDepth int    // MaxTreeDepth, or less in tests
	rev      string // the commit's hash
	snap     *Snapshot
	links    map[plumbing.Hash]*object.Tree // trees reached by symlinks, decoded once
	reuse    map[plumbing.Hash][]byte       // the data of blobs read before, by hash
}

// walk reads tree t and the directories under it. dirs is the directory
// being read, as components from the root, and trees the trees from the
// root to it; the walk is depth first, so appending to them in a call
// does not disturb the caller's view.
func (tr *treeReader) walk(t *object.Tree, dirs []string, trees []*object.Tree) error {
	prefix := "" // the directory's path, made when a file needs it
	for _, e := range t.Entries {
		switch {
		case strings.HasPrefix(e.Name, "."):
		case e.Mode == filemode.Dir:
			if err := tr.walkDir(t, e.Name, dirs, trees); err != nil {
				return err
			}
		case deploy.IsUnitFile(e.Name):
			if prefix == "" && len(dirs) > 0 {
				prefix = strings.Join(dirs, "/") + "/"
			}
			if err := tr.readFile(trees, dirs, prefix+e.Name, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// walkDir walks the directory name of tree t, within MaxTreeDepth.
func (tr *treeReader) walkDir(t *object.Tree, name string, dirs []string, trees []*object.Tree) error {
	if len(dirs)+1 > tr.maxDepth {
		return permanentError{fmt.Errorf("%s: directories nested deeper than %d levels at %s; the revision is refused (nothing was changed)",
			abbrevPath(append(dirs, name)), tr.maxDepth, short(tr.rev))}
	}
	sub, err := t.Tree(name)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path.Join(path.Join(dirs...), name), err)
	}
	return tr.walk(sub, append(dirs, name), append(trees, sub))
}

// readFile reads the unit file e, at path full, into the snapshot: its
// data, or its file error. A storage error fails the whole read.
func (tr *treeReader) readFile(trees []*object.Tree, dirs []string, full string, e object.TreeEntry) error {
	regular := e.Mode == filemode.Regular || e.Mode == filemode.Executable
	if data, ok := tr.reuse[e.Hash]; ok && regular {
		tr.snap.Files = append(tr.snap.Files, File{Path: full, Data: data, Blob: e.Hash.String()})
		return nil
	}
	data, ferr := readEntry(trees, dirs, tr.links, full, e)
	var se storageError
	if errors.As(ferr, &se) {
		return fmt.Errorf("reading %s at %s: %w", full, short(tr.rev), se.error)
	}
	if ferr != nil {
		tr.snap.Errors = append(tr.snap.Errors, &FileError{Path: full, Err: ferr})
		return nil
	}
	f := File{Path: full, Data: data}
	if regular {
		f.Blob = e.Hash.String()
	}
	tr.snap.Files = append(tr.snap.Files, f)
	return nil
}

// MaxTreeDepth is how deeply directories may nest in a revision (git's
// own default limit, core.maxTreeDepth): a deeper tree refuses the
// revision rather than costing time without bound.
const MaxTreeDepth = 4096

// MaxSymlinks is how many symlinks reading one file may follow (Linux's
// limit); a longer chain is a file error.
const MaxSymlinks = 40

// abbrevPath is a long path shortened for messages: its first components,
// "…", its last one and how deep it is.
func abbrevPath(dirs []string) string {
	if len(dirs) <= 8 {
		return strings.Join(dirs, "/")
	}
	return fmt.Sprintf("%s/…/%s (%d levels)", strings.Join(dirs[:4], "/"), dirs[len(dirs)-1], len(dirs))
}

// storageError is a failure to read the repository (a damaged cache),
// not a problem of the file.
type storageError struct{ error }

// missing says whether err is a path not in a tree.
func missing(err error) bool {
	return errors.Is(err, object.ErrDirectoryNotFound) || errors.Is(err, object.ErrEntryNotFound) || errors.Is(err, object.ErrFileNotFound)
}

// readEntry reads entry e of tree dir, at full in the repository: a
// regular file, or a symlink (through any chain of symlinks, to files
// or through directories) to one inside the repository. Failures to read
// the repository are storageErrors.
//
// trees are the trees from the root to the one holding e, dirs their
// names (of trees[1:]); links caches the trees symlinks lead to.
func readEntry(trees []*object.Tree, dirs []string, links map[plumbing.Hash]*object.Tree, full string, e object.TreeEntry) ([]byte, error) {
	dir := trees[len(trees)-1]
	switch e.Mode {
	case filemode.Regular, filemode.Executable:
		return readBlob(dir, e)
	case filemode.Symlink:
		link, err := readLink(dir, e)
		if err != nil {
			return nil, err
		}
		r := &resolver{trees: slices.Clone(trees), dirs: slices.Clone(dirs), links: links,
			chain: []string{full}, seen: map[string]bool{full + "\x00": true}}
		dest, found, err := r.follow(link)
		if err != nil {
			return nil, fmt.Errorf("symlink to %s%w", link, err)
		}
		switch found.entry.Mode {
		case filemode.Regular, filemode.Executable:
		case filemode.Dir:
			if dest == "" {
				dest = "the repository's root"
			}
			return nil, fmt.Errorf("symlink to %s: %s is a directory; not followed", link, dest)
		default:
			return nil, fmt.Errorf("symlink to %s: %s is not a regular file (mode %s); not followed", link, dest, found.entry.Mode)
		}
		return readBlob(found.dir, found.entry)
	}
	return nil, fmt.Errorf("not a regular file (mode %s)", e.Mode)
}

// maxLink is the longest symlink target read (PATH_MAX).
const maxLink = 4096

// readLink reads a symlink's target.
func readLink(dir *object.Tree, e object.TreeEntry) (string, error) {
	f, err := dir.TreeEntryFile(&e)
	if err != nil {
		return "", storageError{err}
	}
	if f.Size > maxLink {
		return "", fmt.Errorf("a symlink to a target of %d bytes (over %d); not followed", f.Size, maxLink)
	}
	link, err := f.Contents()
	if err != nil {
		return "", storageError{err}
	}
	return link, nil
}

// located is an entry and the tree that holds it.
type located struct {
	dir   *object.Tree
	entry object.TreeEntry
}

// resolver follows symlinks in a revision's tree the way the kernel
// would in a checkout, component by component, without leaving the
// repository: at most MaxSymlinks of them, and a loop is named.
type resolver struct {
	trees []*object.Tree // the directories from the root to the current one
	dirs  []string       // their names (of trees[1:])
	chain []string       // the symlinks followed, by path
	seen  map[string]bool
	links map[plumbing.Hash]*object.Tree // trees decoded, by hash
}

var errLeaves = errors.New(" leaves the repository; not followed")

// via is the chain of symlinks followed so far, for messages.
func (r *resolver) via(last string) string {
	chain := r.chain[:len(r.chain):len(r.chain)]
	if len(chain) > 4 {
		chain = append(chain[:2:2], "…", chain[len(chain)-1])
	}
	return strings.Join(append(chain, last), " -> ")
}

// follow resolves link from the current directory. It returns the path
// and entry reached, or an error to follow "symlink to <link>".
func (r *resolver) follow(link string) (string, located, error) {
	dirEntry := located{entry: object.TreeEntry{Mode: filemode.Dir}}
	if path.IsAbs(link) {
		return "", located{}, errLeaves
	}
	rest := strings.Split(link, "/")
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			if len(r.dirs) == 0 {
				if len(r.chain) > 1 {
					return "", located{}, fmt.Errorf(" leaves the repository (%s); not followed", r.via(".."))
				}
				return "", located{}, errLeaves
			}
			r.trees, r.dirs = r.trees[:len(r.trees)-1], r.dirs[:len(r.dirs)-1]
			continue
		}
		cur := r.trees[len(r.trees)-1]
		at := strings.Join(append(r.dirs[:len(r.dirs):len(r.dirs)], name), "/")
		e, err := cur.FindEntry(name)
		if err != nil {
			if missing(err) {
				return "", located{}, fmt.Errorf(": %s does not exist", at)
			}
			return "", located{}, storageError{err}
		}
		switch {
		case e.Mode == filemode.Symlink:
			key := at + "\x00" + strings.Join(rest, "/")
			if r.seen[key] {
				return "", located{}, fmt.Errorf(": a symlink loop (%s); not followed", r.via(at))
			}
			r.seen[key] = true
			if len(r.chain) == MaxSymlinks {
				return "", located{}, fmt.Errorf(": more than %d symlinks to follow (%s); not followed", MaxSymlinks, r.via(at))
			}
			r.chain = append(r.chain, at)
			next, err := readLink(cur, *e)
			if err != nil {
				return "", located{}, err
			}
			if path.IsAbs(next) {
				return "", located{}, fmt.Errorf(" leaves the repository (%s); not followed", r.via(next))
			}
			rest = append(strings.Split(next, "/"), rest...)
		case len(rest) == 0:
			return at, located{dir: cur, entry: *e}, nil
		case e.Mode == filemode.Dir:
			sub := r.links[e.Hash]
			if sub == nil {
				if sub, err = cur.Tree(name); err != nil {
					return "", located{}, storageError{err}
				}
				r.links[e.Hash] = sub
			}
			r.trees, r.dirs = append(r.trees, sub), append(r.dirs, name)
		default:
			return "", located{}, fmt.Errorf(": %s is not a directory", at)
		}
	}
	return strings.Join(r.dirs, "/"), dirEntry, nil
}

// readBlob reads the file entry e of dir, refusing one over MaxFileSize.
func readBlob(dir *object.Tree, e object.TreeEntry) ([]byte, error) {
	f, err := dir.TreeEntryFile(&e)
	if err != nil {
		return nil, storageError{err} // its entry is there: the blob is not
	}
	if f.Size > MaxFileSize {
		return nil, deploy.FileTooBig(f.Size)
	}
	r, err := f.Reader()
	if err != nil {
		return nil, storageError{err}
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, storageError{err}
	}
	return data, nil
}

// explain adds a hint to the transport errors operators meet most.
func explain(err error) error {
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired):
		return fmt.Errorf("%w (give a user name and a password or token, or an SSH key)", err)
	case errors.Is(err, transport.ErrAuthorizationFailed):
		return fmt.Errorf("%w (check the credentials and that they may read the repository)", err)
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return fmt.Errorf("%w (check the repository URL)", err)
	case strings.Contains(err.Error(), "knownhosts"):
		return fmt.Errorf("%w (add the host key to the known hosts file, e.g. ssh-keyscan HOST >> ~/.ssh/known_hosts)", err)
	}
	return err
}

// LocalOrigin is the URL of the "origin" remote of a repository given as a
// local path (a CI runner's checkout), credentials masked; "" for a URL,
// or a repository without one. Two checkouts of one repository in two
// workspaces have different paths and the same origin.
func LocalOrigin(repo string) string {
	if strings.HasPrefix(repo, "file://") {
		repo = strings.TrimPrefix(repo, "file://")
	} else if !isLocalPath(repo) {
		return ""
	}
	r, err := git.PlainOpenWithOptions(repo, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return ""
	}
	rem, err := r.Remote("origin")
	if err != nil || len(rem.Config().URLs) == 0 {
		return ""
	}
	return RedactURL(rem.Config().URLs[0])
}
