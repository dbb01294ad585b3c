package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// usageError is a wrong number of arguments or a bad flag: the message,
// then the command's usage line and where to read more.
type usageError struct {
	cmd *cobra.Command
	err error
}

func (e *usageError) Error() string {
	return fmt.Sprintf("%v\nUsage: %s\nRun '%s --help' for more.", e.err, e.cmd.UseLine(), e.cmd.CommandPath())
}

func (e *usageError) Unwrap() error { return e.err }

// addUsageToErrors makes every command of the tree under root answer an
// argument or flag error with its usage line (cobra's own usage output is
// silenced: it prints the whole help). The exit code stays 1, as for any
// error, but for kaylee sync, whose codes 1 to 3 speak of the repository,
// kaylee migrate, whose 1 speaks of refused units, and kaylee plan, whose
// 1 speaks of files and units: their usage and setup errors are 4 (run).
func addUsageToErrors(root *cobra.Command) {
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{cmd: cmd, err: err}
	})
	walk(root, func(c *cobra.Command) {
		args := c.Args
		if args == nil {
			return
		}
		c.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				return &usageError{cmd: cmd, err: err}
			}
			return nil
		}
	})
}

// walk calls f on c and every command under it.
func walk(c *cobra.Command, f func(*cobra.Command)) {
	f(c)
	for _, sub := range c.Commands() {
		walk(sub, f)
	}
}
