package deploy

import (
	"fmt"
	"strings"
)

// IsUnitFile reports whether a file name found in a directory (of a
// checkout, or given to kaylee validate/render) is a unit file: *.yaml or
// *.yml. Files named explicitly are read whatever their extension.
func IsUnitFile(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

// MaxFileSize is the largest unit file read, from git or from a local
// directory; bigger ones are refused before they are read.
const MaxFileSize = 1 << 20

// FileTooBig is the error of a unit file of size bytes, over MaxFileSize.
func FileTooBig(size int64) error {
	return fmt.Errorf("%d bytes; unit files over %d bytes are refused", size, MaxFileSize)
}
