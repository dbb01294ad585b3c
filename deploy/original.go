package deploy

import "fmt"

// OriginalUnitName is the name of a fleet unit that monder/kaylee, the
// program Kaylee descends from, created:
// <prefix>:<name>:<hash6>:<group6>:<index>.service, where hash6 is the first
// three bytes of the SHA-1 of its stored JSON, group6 three random bytes
// (one group per allowed replica on a host) and index counts from 1.
// Kaylee's own names carry an 8-digit hash (see UnitName), so the two never
// parse as each other.
type OriginalUnitName struct {
	Prefix   string
	Name     string // the stored unit's name, as the original read it from the JSON
	SpecHash string // 6 hex digits
	Group    string // 6 hex digits
	Index    int
}

func (u OriginalUnitName) String() string {
	return fmt.Sprintf("%s:%s:%s:%s:%d.service", u.Prefix, u.Name, u.SpecHash, u.Group, u.Index)
}

// ParseOriginalUnitName splits a fleet unit name that monder/kaylee rendered
// with the given prefix. The original did not check names, so Name is any
// non-empty text without a colon; it returns false for every other name.
func ParseOriginalUnitName(prefix, s string) (OriginalUnitName, bool) {
	parts, i, ok := splitUnitName(prefix, s, 6)
	if !ok {
		return OriginalUnitName{}, false
	}
	return OriginalUnitName{Prefix: prefix, Name: parts[1], SpecHash: parts[2], Group: parts[3], Index: i}, true
}
