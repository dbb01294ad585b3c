//go:build !unix

package listen

// RaiseNoFile returns 0: the limit is unknown here.
func RaiseNoFile() (uint64, error) { return 0, nil }
