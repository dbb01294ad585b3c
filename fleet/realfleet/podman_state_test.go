package realfleet_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/fleet/realfleet"
)

// TestPodmanStateOf: a test sees its own pods and containers on a machine
// that tests running beside it share, told apart by its unit prefix (the
// name, the pod, or the instance label), and none of another prefix that
// starts the same way. It needs no cluster.
func TestPodmanStateOf(t *testing.T) {
	inst := func(v string) map[string]string { return map[string]string{"io.kaylee.instance": v} }
	st := realfleet.PodmanState{
		Pods: []realfleet.Pod{
			{Name: "sp_countly_1a2b3c4d_9f_0"},
			{Name: "pf_fields_5e6f7a8b_9f_0"},
			{Name: "renamed", Labels: inst("sp_countly_1a2b3c4d_9f_1")},
			{Name: "spx_other_0"},
		},
		Containers: []realfleet.PodmanContainer{
			{Name: "sp_countly_1a2b3c4d_9f_0-0", PodName: "sp_countly_1a2b3c4d_9f_0"},
			{Name: "sp_countly_1a2b3c4d_9f_0-infra", PodName: "sp_countly_1a2b3c4d_9f_0", Infra: true},
			{Name: "3f9e0c1d2b4a-infra", PodName: "sp_countly_1a2b3c4d_9f_1", Infra: true},
			{Name: "loose", Labels: inst("sp_countly_1a2b3c4d_9f_2")},
			{Name: "pf_fields_5e6f7a8b_9f_0-0", PodName: "pf_fields_5e6f7a8b_9f_0"},
			{Name: "rt-podbasics-countly", PodName: "rt-podbasics"},
			{Name: "spx_other_0-0", PodName: "spx_other_0"},
		},
	}
	names := func(s realfleet.PodmanState) string {
		var out []string
		for _, p := range s.Pods {
			out = append(out, "pod "+p.Name)
		}
		for _, c := range s.Containers {
			out = append(out, c.Name)
		}
		return strings.Join(out, ", ")
	}
	for _, tt := range []struct {
		prefix, want string
		empty        bool
	}{
		{"sp_", "pod sp_countly_1a2b3c4d_9f_0, pod renamed, sp_countly_1a2b3c4d_9f_0-0, sp_countly_1a2b3c4d_9f_0-infra, 3f9e0c1d2b4a-infra, loose", false},
		{"pf_", "pod pf_fields_5e6f7a8b_9f_0, pf_fields_5e6f7a8b_9f_0-0", false},
		{"ao_", "", true},
	} {
		got := st.Of(tt.prefix)
		if names(got) != tt.want || got.Empty() != tt.empty {
			t.Errorf("Of(%q) = %s (empty %v), want %s (empty %v)", tt.prefix, names(got), got.Empty(), tt.want, tt.empty)
		}
	}
}

// TestClusterAgentTTL: the agent TTL is read from the --agent-ttl that
// scripts/real-cluster wrote in a machine's fleetd.service; a file without
// it is an error that names the file. It needs no cluster.
func TestClusterAgentTTL(t *testing.T) {
	dir := t.TempDir()
	c := &realfleet.Cluster{Dir: dir, Machines: []realfleet.Machine{{Name: "kaylee-m1"}}}
	unit := filepath.Join(c.Root(c.Machines[0]), "etc", "systemd", "system", "fleetd.service")
	if err := os.MkdirAll(filepath.Dir(unit), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		body    string
		want    time.Duration
		wantErr string
	}{
		{"[Service]\nExecStart=/usr/local/bin/fleetd --etcd-servers http://127.0.0.1:12379 --agent-ttl 15s \\\n  --listen unix:///var/run/fleet.sock\n", 15 * time.Second, ""},
		{"[Service]\nExecStart=/usr/local/bin/fleetd --agent-ttl 30s\n", 30 * time.Second, ""},
		{"[Service]\nExecStart=/usr/local/bin/fleetd --agent-ttl soon\n", 0, `--agent-ttl "soon"`},
		{"[Service]\nExecStart=/usr/local/bin/fleetd --agent-ttl\n", 0, unit + ": no --agent-ttl"},
	} {
		if err := os.WriteFile(unit, []byte(tt.body), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := c.AgentTTL()
		if got != tt.want || (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("AgentTTL of %q = %s, %v; want %s, error %q", tt.body, got, err, tt.want, tt.wantErr)
		}
	}
}
