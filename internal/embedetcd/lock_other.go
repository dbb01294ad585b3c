//go:build !unix

package embedetcd

import "os"

// tryLock is a no-op where flock is missing: a data directory in use is
// not detected there.
func tryLock(*os.File, bool) (bool, error) { return false, nil }

func lockHolder(string) int { return 0 }
