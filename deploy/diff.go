package deploy

import (
	"bytes"
	"encoding/json"
	"sort"
)

// FieldChange is one top-level field that differs between two versions of
// a unit's canonical JSON. Before or After is nil where the field is absent.
type FieldChange struct {
	Field         string
	Before, After json.RawMessage
}

// ChangedFields lists the top-level fields that differ between two units'
// canonical JSON, by field name. decoded is false when before is not a JSON
// object (then every field of after is listed as added).
func ChangedFields(before, after []byte) (changes []FieldChange, decoded bool) {
	var a, b map[string]json.RawMessage
	errA := json.Unmarshal(before, &a)
	_ = json.Unmarshal(after, &b)
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if x, y := a[k], b[k]; x == nil || y == nil || !bytes.Equal(x, y) {
			changes = append(changes, FieldChange{Field: k, Before: x, After: y})
		}
	}
	return changes, errA == nil && a != nil
}
