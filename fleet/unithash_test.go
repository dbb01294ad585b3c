package fleet

import (
	"testing"

	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// The pass planner's cache of unit file hashes gives fleet's hash of the
// options a fleet unit has now, pass after pass: a unit file changed
// under the same name (drift: someone replaced it in fleet) hashes anew,
// and one changed back hashes as before.
func TestUnitHashesFollowOptions(t *testing.T) {
	units, err := deploy.Render(benchSpec(1), deploy.RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	opts := units[0].Options
	changed := make([]*schema.UnitOption, len(opts))
	for i, o := range opts {
		cp := *o
		changed[i] = &cp
	}
	changed[len(changed)-1].Value += " --drifted"
	h := newUnitHashes()
	for pass, tc := range []struct {
		what    string
		options []*schema.UnitOption
	}{
		{"first seen", opts}, {"the same again", opts}, {"changed in fleet", changed}, {"changed back", opts}, {"changed again", changed},
	} {
		if got, want := h.of(tc.options), unitHash(tc.options); got != want {
			t.Fatalf("pass %d (%s): hash %s, fleet's is %s", pass, tc.what, got, want)
		}
		h.sweep()
		if len(h.entries) != 1 {
			t.Fatalf("pass %d (%s): %d entries kept after the pass, want the 1 it used", pass, tc.what, len(h.entries))
		}
	}
}
