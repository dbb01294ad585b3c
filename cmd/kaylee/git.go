package main

import (
	"github.com/spf13/pflag"

	"github.com/kaylee-gitops/kaylee/gitsource"
)

// gitFlags are the flags of every command that reads a git source.
type gitFlags struct {
	repo, ref, path, cacheDir string
	sshKey, knownHosts        string
	insecureSkipHostKey       bool
	username, passwordFile    string
	sourceName                string
	configFile                string
	allowEmpty, force         bool
	allowRewind               bool
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
	fl.StringVar(&f.configFile, "config", "", "file listing the git sources to follow (see kaylee help config); instead of --repo and the other source flags")
	fl.StringVar(&f.sourceName, "source", "", "name of this git source in etcd: its record and inventory (default: from --repo and --path)")
	fl.BoolVar(&f.allowEmpty, "allow-empty", false, "allow a sync that leaves the source with no unit")
	fl.StringVar(&f.maxPrune, "max-prune", "50%", "largest share of the source's units one sync may prune without --force")
	fl.BoolVar(&f.force, "force", false, "allow pruning more than --max-prune")
	fl.BoolVar(&f.allowRewind, "allow-rewind", false, "apply a revision that does not descend from the one last applied (the ref moved back, or its history rewritten), which is otherwise refused; with --config, for one kaylee sync --once run")
}
