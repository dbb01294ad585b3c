package gitsource

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

// AuthConfig holds credentials. Secrets come from files or the
// environment, never from the command line.
type AuthConfig struct {
	SSHKeyFile    string // private key for ssh URLs
	SSHPassphrase string // its passphrase (KAYLEE_SSH_PASSPHRASE)
	// KnownHostsFile checks the server's host key; default
	// ~/.ssh/known_hosts. InsecureSkipHostKeyCheck turns the check off.
	KnownHostsFile           string
	InsecureSkipHostKeyCheck bool
	Username                 string // for http(s)
	Password                 string // password or token for http(s)
}

// Auth returns the auth method for a repository URL, or nil for none.
func Auth(repoURL string, c AuthConfig) (transport.AuthMethod, error) {
	switch {
	case isSSH(repoURL):
		return sshAuth(repoURL, c)
	case strings.HasPrefix(repoURL, "http://") || strings.HasPrefix(repoURL, "https://"):
		if c.Password == "" && c.Username == "" {
			return nil, nil
		}
		user := c.Username
		if user == "" {
			user = "git" // a token alone: most servers take any user name
		}
		return &githttp.BasicAuth{Username: user, Password: c.Password}, nil
	}
	return nil, nil
}

// AuthError is a credential that could not be used; Part says which.
type AuthError struct {
	Part      string // AuthSSHKey or AuthKnownHosts
	Encrypted bool   // the SSH key needs a passphrase
	Err       error
}

// The parts of an AuthError.
const (
	AuthSSHKey     = "ssh key"
	AuthKnownHosts = "known hosts"
)

func (e *AuthError) Error() string { return e.Err.Error() }
func (e *AuthError) Unwrap() error { return e.Err }

func isSSH(u string) bool {
	return strings.HasPrefix(u, "ssh://") || strings.HasPrefix(u, "git+ssh://") || scpLike.MatchString(u)
}

func sshAuth(repoURL string, c AuthConfig) (transport.AuthMethod, error) {
	user := "git"
	if u, err := url.Parse(repoURL); err == nil && u.User != nil && u.User.Username() != "" {
		user = u.User.Username()
	} else if m := scpLike.FindString(repoURL); m != "" {
		user = m[:strings.Index(m, "@")]
	}
	hostKeys, err := hostKeyCallback(c)
	if err != nil {
		return nil, err
	}
	if c.SSHKeyFile == "" {
		a, err := gitssh.NewSSHAgentAuth(user)
		if err != nil {
			return nil, &AuthError{Part: AuthSSHKey, Err: fmt.Errorf("an ssh repository, no SSH key given, and the ssh agent is not usable either: %w", err)}
		}
		a.HostKeyCallback = hostKeys
		return a, nil
	}
	keys, err := gitssh.NewPublicKeysFromFile(user, c.SSHKeyFile, c.SSHPassphrase)
	if err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, &AuthError{Part: AuthSSHKey, Encrypted: true, Err: fmt.Errorf("SSH key %s is encrypted and no passphrase was given", c.SSHKeyFile)}
		}
		return nil, &AuthError{Part: AuthSSHKey, Err: fmt.Errorf("SSH key %s: %w", c.SSHKeyFile, err)}
	}
	keys.HostKeyCallback = hostKeys
	return keys, nil
}

func hostKeyCallback(c AuthConfig) (ssh.HostKeyCallback, error) {
	if c.InsecureSkipHostKeyCheck {
		return ssh.InsecureIgnoreHostKey(), nil
	}
	file := c.KnownHostsFile
	if file == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, &AuthError{Part: AuthKnownHosts, Err: fmt.Errorf("no known hosts file given and no home directory: %w", err)}
		}
		file = filepath.Join(home, ".ssh", "known_hosts")
	}
	if _, err := os.Stat(file); err != nil {
		return nil, &AuthError{Part: AuthKnownHosts, Err: fmt.Errorf("known hosts file %s: %w (add the server's key with ssh-keyscan HOST >> %s, give another known hosts file, or skip the host key check, which is unsafe)", file, err, file)}
	}
	cb, err := gitssh.NewKnownHostsCallback(file)
	if err != nil {
		return nil, &AuthError{Part: AuthKnownHosts, Err: fmt.Errorf("known hosts file %s: %w", file, err)}
	}
	return cb, nil
}
