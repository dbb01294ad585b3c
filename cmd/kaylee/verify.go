package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kaylee-gitops/kaylee/config"
	"github.com/kaylee-gitops/kaylee/gitsource"
)

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
