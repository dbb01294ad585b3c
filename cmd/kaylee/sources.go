package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/kaylee-gitops/kaylee/agent"
	"github.com/kaylee-gitops/kaylee/config"
	"github.com/kaylee-gitops/kaylee/gitsource"
)

// sourceFlags are the git flags that describe one source; with --config
// each source sets them in the file instead.
var sourceFlags = []string{"repo", "ref", "path", "ssh-key", "known-hosts", "insecure-skip-host-key-check",
	"git-username", "git-password-file", "source", "allow-empty", "max-prune"}

// errRewindFlag: --allow-rewind beside --config allows rewinds for one
// kaylee sync --once run; a process that keeps running takes it per
// source, from the file.
var errRewindFlag = errors.New("--allow-rewind with --config allows rewinds for one run of kaylee sync --once; for a process that keeps running, set allowRewind: true on the source in the file (and remove it once applied)")

// loadConfig reads --config, refusing the one-source flags beside it.
func loadConfig(file string, fl *pflag.FlagSet) (*config.File, error) {
	if file == "" {
		return nil, nil
	}
	for _, name := range sourceFlags {
		if f := fl.Lookup(name); f != nil && f.Changed {
			return nil, fmt.Errorf("--config %s and --%s (or %s%s) both given: with a config file, set %s per source in the file",
				file, name, envPrefix, strings.ToUpper(strings.ReplaceAll(name, "-", "_")), name)
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	return config.Load(file, data)
}

// openSources builds the sources of --config, or the one of the flags.
func (a *app) openSources(g *gitFlags, cf *config.File, interval time.Duration) ([]agent.Source, error) {
	var cfgs []config.Source
	if cf != nil {
		if err := cf.NeedSources(); err != nil {
			return nil, err
		}
		cfgs = cf.Sources
	} else {
		cs, err := g.source()
		if err != nil {
			return nil, err
		}
		cfgs = []config.Source{cs}
	}
	env := agent.SourceEnv{CacheDir: g.cacheDir, Force: g.force,
		Password: a.getenv(envPrefix + "GIT_PASSWORD"), SSHPassphrase: a.getenv(envPrefix + "SSH_PASSPHRASE")}
	out := make([]agent.Source, 0, len(cfgs))
	for _, cs := range cfgs {
		s, err := agent.OpenSource(cs, env)
		if err != nil {
			return nil, passphraseHint(err)
		}
		if g.allowRewind {
			// The flag's name is the record; beside --config, for one
			// run only: a process that keeps running refuses it.
			s.Options.AllowRewind = "--allow-rewind"
		}
		if s.Interval == 0 {
			s.Interval = interval
		}
		out = append(out, s)
	}
	return out, nil
}

// passphraseHint says where the passphrase of an encrypted SSH key goes.
func passphraseHint(err error) error {
	var ae *gitsource.AuthError
	if errors.As(err, &ae) && ae.Encrypted {
		return fmt.Errorf("%w: set %sSSH_PASSPHRASE", err, envPrefix)
	}
	return err
}

// source is the config of the one source the flags describe; its fields
// are named by their flags in messages.
func (g *gitFlags) source() (config.Source, error) {
	if g.repo == "" {
		return config.Source{}, fmt.Errorf("no repository: give --repo (or %sREPO), or --config with a sources: list", envPrefix)
	}
	maxPrune, err := config.ParsePercent(g.maxPrune)
	if err != nil {
		return config.Source{}, fmt.Errorf("--max-prune %q: %w", g.maxPrune, err)
	}
	flags := map[string]string{"repo": "--repo", "ref": "--ref", "path": "--path", "sshKeyFile": "--ssh-key", "knownHosts": "--known-hosts",
		"username": "--git-username", "passwordFile": "--git-password-file", "name": "--source", "allowRewind": "--allow-rewind"}
	return config.Source{
		Name: g.sourceName, Repo: g.repo, Ref: g.ref, Path: g.path,
		SSHKeyFile: g.sshKey, KnownHosts: g.knownHosts, InsecureSkipHostKeyCheck: g.insecureSkipHostKey,
		Username: g.username, PasswordFile: g.passwordFile, AllowEmpty: g.allowEmpty, MaxPrune: maxPrune, AllowRewind: g.allowRewind,
		Where: func(field string) string { return flags[field] },
	}, nil
}
