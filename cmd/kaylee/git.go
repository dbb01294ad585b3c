package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/sync"
)

// gitFlags are the flags of every command that reads a git source.
type gitFlags struct {
	repo, ref, path, cacheDir string
	sshKey, knownHosts        string
	insecureSkipHostKey       bool
	username, passwordFile    string
	source                    string
	allowEmpty, force         bool
	maxPrune                  string
}

func (f *gitFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.repo, "repo", "", "git repository: https://, ssh://, user@host:path, file:// or a local path")
	fl.StringVar(&f.ref, "ref", "", "branch, tag or full commit hash (default: the remote's HEAD)")
	fl.StringVar(&f.path, "path", "", "directory of unit files in the repository (default: the root)")
	fl.StringVar(&f.cacheDir, "cache-dir", gitsource.DefaultCacheDir(), "where the fetched repository is kept")
	fl.StringVar(&f.sshKey, "ssh-key", "", "SSH private key for ssh URLs (passphrase from KAYLEE_SSH_PASSPHRASE; default: the ssh agent)")
	fl.StringVar(&f.knownHosts, "known-hosts", "", "known_hosts file to check the SSH server's key (default ~/.ssh/known_hosts)")
	fl.BoolVar(&f.insecureSkipHostKey, "insecure-skip-host-key-check", false, "do not check the SSH server's host key (unsafe)")
	fl.StringVar(&f.username, "git-username", "", "user for https (with --git-password-file or KAYLEE_GIT_PASSWORD)")
	fl.StringVar(&f.passwordFile, "git-password-file", "", "file holding the https password or token (or set KAYLEE_GIT_PASSWORD)")
	fl.StringVar(&f.source, "source", "", "name of this git source in etcd: its record and inventory (default: from --repo and --path)")
	fl.BoolVar(&f.allowEmpty, "allow-empty", false, "allow a sync that leaves the source with no unit")
	fl.StringVar(&f.maxPrune, "max-prune", "50%", "largest share of the source's units one sync may prune without --force")
	fl.BoolVar(&f.force, "force", false, "allow pruning more than --max-prune")
}

// open builds the source and the pass options from the flags; secrets come
// from files and the environment only.
func (a *app) openGit(f *gitFlags) (*gitsource.Source, sync.Options, error) {
	if f.repo == "" {
		return nil, sync.Options{}, errors.New("no repository: give --repo (or KAYLEE_REPO)")
	}
	maxPrune, err := parsePercent(f.maxPrune)
	if err != nil {
		return nil, sync.Options{}, fmt.Errorf("--max-prune %q: %w", f.maxPrune, err)
	}
	password := a.getenv(envPrefix + "GIT_PASSWORD")
	if f.passwordFile != "" {
		b, err := os.ReadFile(f.passwordFile)
		if err != nil {
			return nil, sync.Options{}, fmt.Errorf("--git-password-file: %w", err)
		}
		password = strings.TrimSpace(string(b))
	}
	auth, err := gitsource.Auth(f.repo, gitsource.AuthConfig{
		SSHKeyFile: f.sshKey, SSHPassphrase: a.getenv(envPrefix + "SSH_PASSPHRASE"),
		KnownHostsFile: f.knownHosts, InsecureSkipHostKeyCheck: f.insecureSkipHostKey,
		Username: f.username, Password: password,
	})
	if err != nil {
		return nil, sync.Options{}, err
	}
	src, err := gitsource.New(gitsource.Config{URL: f.repo, Ref: f.ref, Path: f.path, CacheDir: f.cacheDir, Auth: auth})
	if err != nil {
		return nil, sync.Options{}, err
	}
	name := f.source
	if name == "" {
		name = sync.DefaultSourceName(src.URL(), src.Path())
	}
	if strings.ContainsAny(name, "/ ") {
		return nil, sync.Options{}, fmt.Errorf("--source %q: no / or spaces", name)
	}
	return src, sync.Options{Source: name, URL: src.URL(), Path: src.Path(), AllowEmpty: f.allowEmpty, MaxPrune: maxPrune, Force: f.force}, nil
}

func parsePercent(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || v <= 0 || v > 100 {
		return 0, errors.New("use a percentage between 1% and 100%")
	}
	return v / 100, nil
}
