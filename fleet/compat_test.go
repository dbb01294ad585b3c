package fleet

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/store"
)

// TestStoredJSONCompat: JSON that scripts written for monder/kaylee store
// under /kaylee2/units/ is scheduled as it was there, and what Kaylee
// ignores or refuses is told in the unit's status: unknown fields are
// ignored with a warning in the status message; "apps": null is no apps;
// a key that differs from the JSON's name is refused with both fixes.
func TestStoredJSONCompat(t *testing.T) {
	t.Parallel() // its own etcd and fleet (newHarness): it waits on fleet's engine, not the CPU
	h := newHarness(t, fleetsim.Machines(2))
	h.serve(h.api, testOptions)
	ctx := context.Background()
	c := h.etcd.Client(t)
	for key, value := range map[string]string{
		"extra":  `{"name":"extra","replicas":2,"owner":"ci","apps":[{"image":"docker://nginx","tag":"x"}],"args":null,"env":null}`,
		"noapps": `{"name":"noapps","apps":null}`,
		"other":  `{"name":"misnamed","apps":[{"image":"docker://nginx"}]}`,
	} {
		if _, err := c.Put(ctx, "/kaylee2/units/"+key, value); err != nil {
			t.Fatal(err)
		}
	}
	extra := &deploy.Spec{Name: "extra", Replicas: 2, Apps: []deploy.App{{Image: "docker://nginx"}}}
	st := h.waitStatus("extra", store.PhaseRunning, extra.Hash(0), 60*time.Second)
	want := `; the stored JSON has fields Kaylee ignores: /kaylee2/units/extra:1: unknown field "owner" (known fields:`
	if st.Running != 2 || !strings.Contains(st.Message, want) || !strings.Contains(st.Message, `/kaylee2/units/extra:1: apps[0]: unknown field "tag" (known fields: args, cmd, image, pull): ignored`) {
		t.Errorf("extra: %d running, message %q; want 2 and the ignored fields", st.Running, st.Message)
	}
	for name, msg := range map[string]string{
		"noapps": "the stored unit is invalid; its fleet units are left as they are: /kaylee2/units/noapps:1: apps: required: at least one app with an image",
		"other":  "the stored unit is invalid; its fleet units are left as they are: the key is /kaylee2/units/other, the JSON's name is misnamed: write it under /kaylee2/units/misnamed (setting name to other instead leaves monder/kaylee's fleet units of misnamed, if any, running beside Kaylee's of other)",
	} {
		st := h.waitStatus(name, store.PhaseFailed, "", 30*time.Second)
		if st.Message != msg {
			t.Errorf("%s: message %q, want %q", name, st.Message, msg)
		}
	}
}
