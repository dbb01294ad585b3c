package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kaylee-gitops/kaylee/config"
	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/sync"
)

// SourceEnv is what opening a source takes beside its config.
type SourceEnv struct {
	CacheDir string // git's cache; "" for gitsource's default
	Force    bool   // passes prune past MaxPrune
	// Password and SSHPassphrase come from the environment; a source's
	// passwordFile overrides Password.
	Password      string
	SSHPassphrase string
}

// OpenSource builds a source's git access and pass options from its
// config; secrets come from files and env only. Errors name the field of
// cs that is wrong (cs.Where); Interval is left for the caller.
func OpenSource(cs config.Source, env SourceEnv) (Source, error) {
	password := env.Password
	if cs.PasswordFile != "" {
		b, err := os.ReadFile(cs.PasswordFile)
		if err != nil {
			return Source{}, fmt.Errorf("%s: %w", cs.Where("passwordFile"), err)
		}
		password = strings.TrimSpace(string(b))
	}
	auth, err := gitsource.Auth(cs.Repo, gitsource.AuthConfig{
		SSHKeyFile: cs.SSHKeyFile, SSHPassphrase: env.SSHPassphrase,
		KnownHostsFile: cs.KnownHosts, InsecureSkipHostKeyCheck: cs.InsecureSkipHostKeyCheck,
		Username: cs.Username, Password: password,
	})
	if err != nil {
		return Source{}, authError(cs, err)
	}
	gc := gitsource.Config{URL: cs.Repo, Ref: cs.Ref, Path: cs.Path, CacheDir: env.CacheDir, Auth: auth}
	if err := setVerify(&gc, cs); err != nil {
		return Source{}, err
	}
	src, err := gitsource.New(gc)
	if err != nil {
		return Source{}, fmt.Errorf("%s: %w", cs.Where("repo"), err)
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
		return Source{}, fmt.Errorf("%s %q: no / or spaces (it is part of etcd keys)", cs.Where("name"), cs.Name)
	}
	return Source{Config: cs, Fetcher: src, URL: src.URL(), Timeout: cs.Timeout, Interval: cs.Interval,
		Options: sync.Options{Source: cs.Name, URL: src.URL(), Path: src.Path(), AllowEmpty: cs.AllowEmpty, MaxPrune: cs.MaxPrune,
			Force: env.Force, History: src, AllowRewind: allowedRewind(cs), ConflictsWith: cs.ConflictsWith,
			Freeze: cs.Freeze}}, nil
}

// allowedRewind names what allows a source's rewinds, for the record
// ("kaylee.yaml:7: sources[0].allowRewind: true"); "" when nothing does.
// A caller that allows them otherwise (a flag) sets Options.AllowRewind
// itself.
func allowedRewind(cs config.Source) string {
	if !cs.AllowRewind {
		return ""
	}
	return cs.Where("allowRewind") + ": true"
}

// authError names the field of the credential that failed.
func authError(cs config.Source, err error) error {
	var ae *gitsource.AuthError
	if !errors.As(err, &ae) {
		return fmt.Errorf("%s: %w", cs.Where("repo"), err)
	}
	field := "sshKeyFile"
	if ae.Part == gitsource.AuthKnownHosts {
		field = "knownHosts"
	}
	return fmt.Errorf("%s: %w", cs.Where(field), err)
}

// setVerify reads a source's keys (verify: in the config file) into its
// git config.
func setVerify(gc *gitsource.Config, cs config.Source) error {
	v := cs.Verify
	if v == nil {
		return nil
	}
	mode, err := gitsource.ParseVerifyMode(v.Mode)
	if err != nil {
		return fmt.Errorf("%s: %w", cs.Where("verify"), err)
	}
	gv := &gitsource.Verify{Mode: mode}
	if v.Keyring != "" {
		if gv.Keyring, err = os.ReadFile(v.Keyring); err != nil {
			return fmt.Errorf("%s: keyring: %w", cs.Where("verify"), err)
		}
		gv.KeyringName = filepath.Base(v.Keyring)
	}
	if v.AllowedSigners != "" {
		if gv.AllowedSigners, err = os.ReadFile(v.AllowedSigners); err != nil {
			return fmt.Errorf("%s: allowedSigners: %w", cs.Where("verify"), err)
		}
		gv.AllowedSignersName = filepath.Base(v.AllowedSigners)
	}
	gc.Verify = gv
	return nil
}
