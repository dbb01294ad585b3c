//go:build !unix

package localtree

const oNonblock = 0
