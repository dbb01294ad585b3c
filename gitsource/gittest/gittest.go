// Package gittest makes real git repositories for tests (with the git
// CLI) and serves them over smart HTTP (git http-backend, with basic auth)
// and SSH (an in-process server running git-upload-pack, with public key
// auth and a known_hosts file).
package gittest

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Repo is a git repository with a work tree, on branch main.
type Repo struct {
	t   testing.TB
	Dir string
}

// NewRepo makes an empty repository.
func NewRepo(t testing.TB) *Repo {
	t.Helper()
	r := &Repo{t: t, Dir: t.TempDir()}
	r.Git("init", "-q", "-b", "main")
	r.Git("config", "user.email", "test@example.com")
	r.Git("config", "user.name", "test")
	r.Git("config", "commit.gpgsign", "false")
	return r
}

// Git runs git in the repository and returns its trimmed output.
func (r *Repo) Git(args ...string) string {
	r.t.Helper()
	out, err := r.run(nil, nil, args...)
	if err != nil {
		r.t.Fatal(err)
	}
	return out
}

// run runs git with extra environment and stdin; the error has git's
// output.
func (r *Repo) run(env []string, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = r.Dir
	cmd.Env = append(append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+r.Dir), env...)
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return strings.TrimSpace(out.String()), nil
}

// Write writes files (path → content) into the work tree; an empty
// content removes the file.
func (r *Repo) Write(files map[string]string) {
	r.t.Helper()
	for name, body := range files {
		p := filepath.Join(r.Dir, filepath.FromSlash(name))
		if body == "" {
			if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
				r.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
}

// Commit commits everything and returns the commit hash.
func (r *Repo) Commit(msg string) string {
	r.t.Helper()
	r.Git("add", "-A")
	r.Git("commit", "-q", "--allow-empty", "-m", msg)
	return r.Git("rev-parse", "HEAD")
}

// FileURL is the repository as a file:// URL.
func (r *Repo) FileURL() string { return "file://" + filepath.ToSlash(r.Dir) }

// Symlink makes name (slash separated, in the work tree) a symlink to
// target, as written (relative or absolute).
func (r *Repo) Symlink(name, target string) {
	r.t.Helper()
	p := filepath.Join(r.Dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	_ = os.Remove(p)
	if err := os.Symlink(target, p); err != nil {
		r.t.Fatal(err)
	}
}

// FastImport feeds the stream write writes to git fast-import (see
// git-fast-import(1): commits, blobs and trees made without a work tree,
// thousands a second). The work tree is left as it was: to Write and
// Commit on top, check out first (Git("reset", "-q", "--hard", "main")).
func (r *Repo) FastImport(write func(w io.Writer) error) {
	r.t.Helper()
	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriterSize(pw, 1<<16)
		err := write(bw)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	_, err := r.run(nil, pr, "fast-import", "--quiet")
	pr.CloseWithError(io.ErrClosedPipe) // unblock the writer if git stopped early
	if err != nil {
		r.t.Fatal(err)
	}
}

// ServeHTTP serves the repository over git's smart HTTP protocol (git
// http-backend). With a user name, requests need basic auth with it and
// password. It returns the repository's URL.
func (r *Repo) ServeHTTP(user, password string) string {
	r.t.Helper()
	return r.ServeHTTPHook(user, password, nil)
}

// ServeHTTPHook is ServeHTTP with a hook called before each request is
// served, and before its auth is checked (a request refused for want of
// credentials is seen too: req.BasicAuth says what it gave), e.g. to move
// a ref between a client's ref listing (GET .../info/refs) and its fetch
// (POST .../git-upload-pack).
func (r *Repo) ServeHTTPHook(user, password string, hook func(req *http.Request)) string {
	r.t.Helper()
	return r.ServeHTTPAround(user, password, func(req *http.Request, serve func()) {
		if hook != nil {
			hook(req)
		}
		serve()
	})
}

// ServeHTTPAround is ServeHTTP with around called for each request (its
// auth not checked yet): serve serves it, answer sent once serve returns.
// around may do things before and after, e.g. hold a request until
// another one was answered.
func (r *Repo) ServeHTTPAround(user, password string, around func(req *http.Request, serve func())) string {
	r.t.Helper()
	execPath := r.Git("--exec-path")
	backend := &cgi.Handler{
		Path: filepath.Join(execPath, "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + filepath.Dir(r.Dir), "GIT_HTTP_EXPORT_ALL=1"},
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		around(req, func() {
			if user != "" {
				u, p, ok := req.BasicAuth()
				if !ok || u != user || p != password {
					w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
					http.Error(w, "unauthorized", http.StatusUnauthorized)
					return
				}
			}
			backend.ServeHTTP(w, req)
		})
	})
	srv := httptest.NewServer(h)
	r.t.Cleanup(srv.Close)
	return srv.URL + "/" + filepath.Base(r.Dir)
}

// KeyPair is an SSH key: the private key file and the public key.
type KeyPair struct {
	File   string
	Public ssh.PublicKey
}

// NewKey writes a new ed25519 private key (OpenSSH format, no passphrase)
// to a temp file.
func NewKey(t testing.TB) KeyPair {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return KeyPair{File: file, Public: sp}
}

// SSHServer serves repositories with git-upload-pack.
type SSHServer struct {
	URL        string // ssh://git@127.0.0.1:PORT/<repo dir>
	KnownHosts string // a known_hosts file with the server's key
	mu         sync.Mutex
	execs      int
}

// Execs is how many git commands clients ran (a fetch or a listing is one).
func (s *SSHServer) Execs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.execs
}

// ServeSSH serves the repository over SSH to clients with the given key.
func (r *Repo) ServeSSH(client ssh.PublicKey) *SSHServer {
	r.t.Helper()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		r.t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		r.t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(k.Marshal(), client.Marshal()) {
				return nil, nil
			}
			return nil, fmt.Errorf("unknown key")
		},
	}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { ln.Close() })
	s := &SSHServer{URL: "ssh://git@" + ln.Addr().String() + r.Dir}
	kh := filepath.Join(r.t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(ln.Addr().String())}, signer.PublicKey())
	if err := os.WriteFile(kh, []byte(line+"\n"), 0o600); err != nil {
		r.t.Fatal(err)
	}
	s.KnownHosts = kh
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c, cfg)
		}
	}()
	return s
}

func (s *SSHServer) serve(c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		go s.session(ch, chReqs)
	}
}

func (s *SSHServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		if req.Type == "env" {
			_ = req.Reply(true, nil)
			continue
		}
		if req.Type != "exec" || len(req.Payload) < 4 {
			_ = req.Reply(false, nil)
			continue
		}
		n := binary.BigEndian.Uint32(req.Payload)
		line := string(req.Payload[4 : 4+n])
		prog, arg, _ := strings.Cut(line, " ")
		if prog != "git-upload-pack" {
			_ = req.Reply(false, nil)
			return
		}
		_ = req.Reply(true, nil)
		s.mu.Lock()
		s.execs++
		s.mu.Unlock()
		cmd := exec.Command("git-upload-pack", strings.Trim(arg, "'\""))
		cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
		code := 0
		if err := cmd.Run(); err != nil {
			code = 1
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
		}
		_ = ch.CloseWrite()
		status := make([]byte, 4)
		binary.BigEndian.PutUint32(status, uint32(code))
		_, _ = ch.SendRequest("exit-status", false, status)
		_, _ = io.Copy(io.Discard, ch)
		return
	}
}
