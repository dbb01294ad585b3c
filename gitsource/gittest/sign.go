package gittest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// NeedTool returns the path of a program a test needs. When it is
// missing the test is skipped, except in CI (CI=true), which installs
// it (.ci/run): there the test fails.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI must run this test: no %s: %v", name, err)
		}
		t.Skipf("no %s: %v", name, err)
	}
	return p
}

// Signer makes git sign commits and tags with a key (git commit -S,
// git tag -s).
type Signer interface {
	// GitConfig is the git -c settings that select the key.
	GitConfig() []string
	// Env is added to git's environment.
	Env() []string
}

// GPGSigner is an OpenPGP key in its own GNUPGHOME.
type GPGSigner struct {
	Home        string // GNUPGHOME
	Fingerprint string // upper-case hex
	PublicKey   []byte // armored public key (a keyring of one key)
}

// NewGPGSigner makes an ed25519 signing key for uid, e.g.
// "Alice <alice@example.com>", with gpg.
func NewGPGSigner(t testing.TB, uid string) *GPGSigner {
	t.Helper()
	NeedTool(t, "gpg")
	// A short home: gpg-agent's socket path must fit in sun_path.
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run()
		_ = os.RemoveAll(home)
	})
	s := &GPGSigner{Home: home}
	s.gpg(t, "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
	for _, line := range strings.Split(string(s.gpg(t, "--with-colons", "--list-keys", uid)), "\n") {
		if f := strings.Split(line, ":"); f[0] == "fpr" && len(f) > 9 {
			s.Fingerprint = f[9]
			break
		}
	}
	if s.Fingerprint == "" {
		t.Fatalf("gpg: no fingerprint for %s", uid)
	}
	s.PublicKey = s.gpg(t, "--armor", "--export", s.Fingerprint)
	return s
}

func (s *GPGSigner) gpg(t testing.TB, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("gpg", append([]string{"--homedir", s.Home}, args...)...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out.Bytes()
}

// GitConfig implements Signer.
func (s *GPGSigner) GitConfig() []string {
	return []string{"gpg.format=openpgp", "gpg.program=gpg", "user.signingkey=" + s.Fingerprint}
}

// Env implements Signer.
func (s *GPGSigner) Env() []string { return []string{"GNUPGHOME=" + s.Home} }

// SSHSigner is an SSH key made by ssh-keygen.
type SSHSigner struct {
	KeyFile     string // private key; KeyFile+".pub" is the public key
	Principal   string // its comment, and the principal in AllowedSigner
	PublicKey   string // "ssh-ed25519 AAAA…"
	Fingerprint string // "SHA256:…"
}

// NewSSHSigner makes an ed25519 key for principal (e.g. an email
// address) with ssh-keygen.
func NewSSHSigner(t testing.TB, principal string) *SSHSigner {
	t.Helper()
	NeedTool(t, "ssh-keygen")
	key := filepath.Join(t.TempDir(), "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key, "-C", principal).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(pub))
	out, err := exec.Command("ssh-keygen", "-l", "-E", "sha256", "-f", key+".pub").Output()
	if err != nil {
		t.Fatalf("ssh-keygen -l: %v", err)
	}
	// "256 SHA256:… comment (ED25519)"
	return &SSHSigner{KeyFile: key, Principal: principal, PublicKey: f[0] + " " + f[1], Fingerprint: strings.Fields(string(out))[1]}
}

// AllowedSigner is the key's line for an allowed signers file, with
// options (e.g. `namespaces="git"`) if not empty.
func (s *SSHSigner) AllowedSigner(options string) string {
	if options != "" {
		return s.Principal + " " + options + " " + s.PublicKey
	}
	return s.Principal + " " + s.PublicKey
}

// GitConfig implements Signer.
func (s *SSHSigner) GitConfig() []string {
	return []string{"gpg.format=ssh", "user.signingkey=" + s.KeyFile}
}

// Env implements Signer.
func (s *SSHSigner) Env() []string { return nil }

func signArgs(s Signer, args ...string) []string {
	var out []string
	for _, c := range s.GitConfig() {
		out = append(out, "-c", c)
	}
	return append(out, args...)
}

// CommitSigned commits everything, signed by s, and returns the commit
// hash.
func (r *Repo) CommitSigned(msg string, s Signer) string {
	r.t.Helper()
	r.Git("add", "-A")
	if _, err := r.run(s.Env(), nil, signArgs(s, "commit", "-q", "--allow-empty", "-S", "-m", msg)...); err != nil {
		r.t.Fatal(err)
	}
	return r.Git("rev-parse", "HEAD")
}

// TagSigned makes an annotated tag of HEAD signed by s.
func (r *Repo) TagSigned(name, msg string, s Signer) {
	r.t.Helper()
	if _, err := r.run(s.Env(), nil, signArgs(s, "tag", "-s", "-m", msg, name)...); err != nil {
		r.t.Fatal(err)
	}
}

// Tamper rewrites a commit's message, keeping its signature (which no
// longer matches), points the current branch at the result and returns
// its hash.
func (r *Repo) Tamper(rev string) string {
	r.t.Helper()
	body := r.Git("cat-file", "commit", rev)
	h, err := r.run(nil, strings.NewReader(body+"\ntampered\n"), "hash-object", "-t", "commit", "-w", "--stdin")
	if err != nil {
		r.t.Fatal(err)
	}
	r.Git("update-ref", "HEAD", h)
	return h
}

// GitVerify asks git whether it accepts the signature of a commit or a
// tag ("verify-commit" or "verify-tag"), trusting the keys in an armored
// OpenPGP keyring and an allowed signers file (either may be empty).
// It returns nil when git does.
func (r *Repo) GitVerify(verb, rev string, keyring, allowedSigners []byte) error {
	r.t.Helper()
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		r.t.Fatal(err)
	}
	defer func() {
		_ = exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run()
		_ = os.RemoveAll(home)
	}()
	if len(keyring) > 0 {
		cmd := exec.Command("gpg", "--homedir", home, "--batch", "--import")
		cmd.Stdin = bytes.NewReader(keyring)
		if out, err := cmd.CombinedOutput(); err != nil {
			r.t.Fatalf("gpg --import: %v\n%s", err, out)
		}
	}
	signers := filepath.Join(r.t.TempDir(), "allowed_signers")
	if err := os.WriteFile(signers, allowedSigners, 0o644); err != nil {
		r.t.Fatal(err)
	}
	_, err = r.run([]string{"GNUPGHOME=" + home}, nil, "-c", "gpg.program=gpg", "-c", "gpg.ssh.allowedSignersFile="+signers, verb, rev)
	if err != nil {
		return fmt.Errorf("git does not accept %s: %w", rev, err)
	}
	return nil
}
