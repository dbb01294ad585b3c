package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Unit prefixes: every fleet unit Kaylee creates starts with "<prefix>:".
const (
	DefaultUnitPrefix = "k2"
	MaxUnitPrefixLen  = 16
)

var unitPrefixRe = regexp.MustCompile(`^[a-z0-9]{1,16}$`)

// CheckUnitPrefix reports whether p can prefix fleet unit names.
func CheckUnitPrefix(p string) error {
	if !unitPrefixRe.MatchString(p) {
		return fmt.Errorf("unit prefix %q: use 1 to %d lowercase letters or digits", p, MaxUnitPrefixLen)
	}
	return nil
}

// UnitName is the name of one fleet unit rendered from a spec:
// <prefix>:<name>:<spechash>:<group>:<index>.service.
type UnitName struct {
	Prefix   string
	Name     string // the Kaylee unit's name
	SpecHash string
	Group    string
	Index    int
}

func (u UnitName) String() string {
	return fmt.Sprintf("%s:%s:%s:%s:%d.service", u.Prefix, u.Name, u.SpecHash, u.Group, u.Index)
}

// InstanceID is KAYLEE_ID: unique per fleet unit, usable as a file or
// container name.
func (u UnitName) InstanceID() string {
	return fmt.Sprintf("%s_%s_%s_%s_%d", u.Prefix, u.Name, u.SpecHash, u.Group, u.Index)
}

// ParseUnitName splits a fleet unit name rendered with the given prefix. It
// returns false for every other name, so units Kaylee did not create are
// never mistaken for its own.
func ParseUnitName(prefix, s string) (UnitName, bool) {
	parts, i, ok := splitUnitName(prefix, s, 8)
	if !ok || !nameRe.MatchString(parts[1]) {
		return UnitName{}, false
	}
	return UnitName{Prefix: prefix, Name: parts[1], SpecHash: parts[2], Group: parts[3], Index: i}, true
}

// splitUnitName splits <prefix>:<name>:<hash>:<group>:<index>.service
// with a hash of hashLen hex digits, a group of 6 and a canonical index;
// the name is checked only for being there.
func splitUnitName(prefix, s string, hashLen int) ([]string, int, bool) {
	rest, ok := strings.CutSuffix(s, ".service")
	if !ok {
		return nil, 0, false
	}
	parts := strings.Split(rest, ":")
	if len(parts) != 5 || parts[0] != prefix || parts[1] == "" ||
		!isHex(parts[2], hashLen) || !isHex(parts[3], 6) {
		return nil, 0, false
	}
	i, err := strconv.Atoi(parts[4])
	if err != nil || i < 0 || strconv.Itoa(i) != parts[4] {
		return nil, 0, false
	}
	return parts, i, true
}

// GroupConflict is the Conflicts value of a replica of unit name in
// maxReplicasPerHost group group: it matches every member of the group,
// of every spec of the unit (the group ids are the unit's, see Render).
func GroupConflict(prefix, name, group string) string {
	return fmt.Sprintf("%s:%s:*:%s:*.service", prefix, name, group)
}

// groupID derives the conflict group id of group g from key: a replicated
// unit's name (the same ids for every spec of it), or a stateful unit's
// spec hash. The same spec always renders to the same names.
func groupID(key string, g int) string {
	sum := sha256.Sum256([]byte(key + "/" + strconv.Itoa(g)))
	return hex.EncodeToString(sum[:])[:6]
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
