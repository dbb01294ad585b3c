package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/kaylee-gitops/kaylee/config"
	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/sync"
)

// source is one git source as this process follows it: from --config, or
// the one the git flags describe.
type source struct {
	cfg      config.Source
	git      *gitsource.Source
	opts     sync.Options
	interval time.Duration
	timeout  time.Duration // of a pass; 0: sync.DefaultTimeout
}

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
func (a *app) openSources(g *gitFlags, cf *config.File, interval time.Duration) ([]*source, error) {
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
	out := make([]*source, 0, len(cfgs))
	for _, cs := range cfgs {
		s, err := a.openSource(cs, g.cacheDir, g.force)
		if err != nil {
			return nil, err
		}
		if g.allowRewind && cf != nil {
			s.opts.AllowRewind = "--allow-rewind" // one run: the caller refuses it otherwise
		}
		if s.interval = cs.Interval; s.interval == 0 {
			s.interval = interval
		}
		s.timeout = cs.Timeout
		out = append(out, s)
	}
	return out, nil
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

// openSource builds a source's git access and pass options; secrets come
// from files and the environment only.
func (a *app) openSource(cs config.Source, cacheDir string, force bool) (*source, error) {
	password := a.getenv(envPrefix + "GIT_PASSWORD")
	if cs.PasswordFile != "" {
		b, err := os.ReadFile(cs.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cs.Where("passwordFile"), err)
		}
		password = strings.TrimSpace(string(b))
	}
	auth, err := gitsource.Auth(cs.Repo, gitsource.AuthConfig{
		SSHKeyFile: cs.SSHKeyFile, SSHPassphrase: a.getenv(envPrefix + "SSH_PASSPHRASE"),
		KnownHostsFile: cs.KnownHosts, InsecureSkipHostKeyCheck: cs.InsecureSkipHostKeyCheck,
		Username: cs.Username, Password: password,
	})
	if err != nil {
		return nil, authError(cs, err)
	}
	gc := gitsource.Config{URL: cs.Repo, Ref: cs.Ref, Path: cs.Path, CacheDir: cacheDir, Auth: auth}
	if err := setVerify(&gc, cs); err != nil {
		return nil, err
	}
	src, err := gitsource.New(gc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cs.Where("repo"), err)
	}
	if cs.Name == "" {
		// A checkout is named after its origin, not its directory: two
		// runner workspaces of one repository are one source.
		named := src.URL()
		if o := gitsource.LocalOrigin(cs.Repo); o != "" {
			named = o
		}
		cs.Name = sync.DefaultSourceName(named, src.Path())
	}
	if strings.ContainsAny(cs.Name, "/ ") {
		return nil, fmt.Errorf("%s %q: no / or spaces (it is part of etcd keys)", cs.Where("name"), cs.Name)
	}
	return &source{cfg: cs, git: src, opts: sync.Options{Source: cs.Name, URL: src.URL(), Path: src.Path(),
		AllowEmpty: cs.AllowEmpty, MaxPrune: cs.MaxPrune, Force: force, History: src, AllowRewind: allowedRewind(cs), ConflictsWith: cs.ConflictsWith}}, nil
}

// allowedRewind names what allows a source's rewinds, for the record
// ("kaylee.yaml:7: sources[0].allowRewind: true", "--allow-rewind"); ""
// when nothing does.
func allowedRewind(cs config.Source) string {
	if !cs.AllowRewind {
		return ""
	}
	if w := cs.Where("allowRewind"); strings.HasPrefix(w, "--") {
		return w
	}
	return cs.Where("allowRewind") + ": true"
}

// authError names the field or flag of the credential that failed.
func authError(cs config.Source, err error) error {
	var ae *gitsource.AuthError
	if !errors.As(err, &ae) {
		return fmt.Errorf("%s: %w", cs.Where("repo"), err)
	}
	field := "sshKeyFile"
	if ae.Part == gitsource.AuthKnownHosts {
		field = "knownHosts"
	}
	if ae.Encrypted {
		return fmt.Errorf("%s: %w: set %sSSH_PASSPHRASE", cs.Where(field), err, envPrefix)
	}
	return fmt.Errorf("%s: %w", cs.Where(field), err)
}
