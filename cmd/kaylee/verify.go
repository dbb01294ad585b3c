package main

import (
	"fmt"

	"github.com/kaylee-gitops/kaylee/config"
	"github.com/kaylee-gitops/kaylee/gitsource"
)

// setVerify reads a source's keys into its git config.
func setVerify(gc *gitsource.Config, cs config.Source) error {
	if cs.Verify != nil {
		return fmt.Errorf("%s: commit verification is not built yet", cs.Where("verify"))
	}
	return nil
}
