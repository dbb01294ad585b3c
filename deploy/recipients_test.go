package deploy

import (
	"strings"
	"testing"
)

// TestCheckSecretsSelectors: a recipient's machines as a machineId (fleet
// matches a unit's MachineID against a machine's full ID or its 8-character
// short ID) and as two pairs (both must be implied: each key constrained
// to that one value), for units pinned, constrained, global and spread.
func TestCheckSecretsSelectors(t *testing.T) {
	const full = "0123456789abcdef0123456789abcdef"
	keys := strings.Fields(readTestdata(t, "recipients"))
	key := func(name string) string { // db's or ops's public key
		for i, f := range keys {
			if f == name {
				return keys[i+1]
			}
		}
		t.Fatalf("no key for %s", name)
		return ""
	}
	rs, err := ParseRecipients(".kaylee/recipients", []byte(
		"pin    "+key("db")+"  machineId="+full+"\n"+
			"short  "+key("db")+"  machineId=01234567\n"+
			"edge   "+key("db")+"  role=web,region=eu\n"+
			"ops    "+key("ops")+"  *\n"))
	if err != nil {
		t.Fatal(err)
	}
	one := readTestdata(t, "db-password.age") // one stanza
	doc := func(placement, names string) []*Document {
		y := "name: api\nengine: docker\n" + placement + "apps:\n- image: docker://example/api:1\nenv:\n- name: P\n  secret: |\n" + indent(one) + "\n  recipients: " + names + "\n"
		docs, err := Load("units/api.yaml", []byte(y))
		if err != nil {
			t.Fatalf("%v\n%s", err, y)
		}
		return docs[:1]
	}
	const uncovered = "env[0].recipients: no recipient's machines include every machine api may run on "
	for _, tc := range []struct {
		name, placement, names string
		want                   string // the problem; "" covered by names
	}{
		{"pinned to the machine", "machineId: " + full + "\n", "[pin]", ""},
		{"pinned to another machine", "machineId: fedcba9876543210fedcba9876543210\n", "[pin]",
			uncovered + "(machines with machineId=fedcba9876543210fedcba9876543210; pin: machineId=" + full + ")"},
		{"pinned by its short ID, the recipient's is the same", "machineId: 01234567\n", "[short]", ""},
		{"pinned by the full ID, the recipient's is its short ID", "machineId: " + full + "\n", "[short]", ""},
		// fleet would run it on any machine whose short ID is 01234567.
		{"pinned by the short ID, the recipient's is a full one", "machineId: 01234567\n", "[pin]",
			uncovered + "(machines with machineId=01234567; pin: machineId=" + full + ")"},
		{"not pinned, a machineId recipient", "machine: [role=web, region=eu]\n", "[pin]", uncovered},
		{"two pairs, both constrained", "machine: [role=web, region=eu]\n", "[edge]", ""},
		{"two pairs and another key", "machine: [role=web, region=eu, disk=ssd]\n", "[edge]", ""},
		{"two pairs, one constrained", "machine: [role=web]\n", "[edge]", uncovered + "(machines with role=web; edge: role=web,region=eu)"},
		{"two pairs, the other constrained", "machine: [region=eu]\n", "[edge]", uncovered},
		{"two pairs, a second region allowed", "machine: [role=web, region=eu, region=us]\n", "[edge]", uncovered},
		{"two pairs, another value", "machine: [role=web, region=us]\n", "[edge]", uncovered},
		{"two pairs, pinned", "machineId: " + full + "\n", "[edge]", uncovered},
		{"global on the pairs", "global: true\nmachine: [role=web, region=eu]\n", "[edge]", ""},
		{"global anywhere", "global: true\n", "[edge]", uncovered + "(any machine; edge: role=web,region=eu)"},
		{"global anywhere, every machine's", "global: true\n", "[ops]", ""},
		// spread places replicas over every region of the machines that
		// match: it narrows nothing.
		{"spread over regions", "replicas: 2\nspread: {key: region}\nmachine: [role=web]\n", "[edge]", uncovered},
		{"spread, both pairs constrained", "replicas: 2\nspread: {key: disk}\nmachine: [role=web, region=eu]\n", "[edge]", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckSecrets(doc(tc.placement, tc.names), rs)
			if len(got) != 1 {
				t.Fatalf("%d checks", len(got))
			}
			c := got[0]
			switch {
			case tc.want == "" && (c.Problem != nil || len(c.Covering) != 1):
				t.Errorf("covering %v, problem %v; want it covered", c.Covering, c.Problem)
			case tc.want != "" && (c.Problem == nil || !strings.Contains(c.Problem.Error(), tc.want) || len(c.Covering) != 0):
				t.Errorf("covering %v, problem %v\nwant %q", c.Covering, c.Problem, tc.want)
			}
		})
	}
}
