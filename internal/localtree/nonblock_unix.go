//go:build unix

package localtree

import "syscall"

// oNonblock: opening a FIFO does not wait for a writer.
const oNonblock = syscall.O_NONBLOCK
