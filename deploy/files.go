package deploy

import "strings"

// IsUnitFile reports whether a file name found in a directory (of a
// checkout, or given to kaylee validate/render) is a unit file: *.yaml or
// *.yml. Files named explicitly are read whatever their extension.
func IsUnitFile(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}
