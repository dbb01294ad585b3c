package fleetreg_test

import (
	"context"
	"path"
	"sort"
	"strings"
	"testing"
	"time"

	etcd "github.com/coreos/etcd/client"
	"github.com/coreos/fleet/client"
	"github.com/coreos/fleet/job"
	"github.com/coreos/fleet/unit"

	"github.com/kaylee-gitops/kaylee/fleet/fleetreg"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// SweepLeftovers removes the unit file of a destroyed fleet unit that
// is its caller's own, and the directory the unit's last heartbeat
// recreated after its destroy (as fleet's agents do); it keeps a file
// still used (by a fleet unit of the same text), files and directories
// not its own, and every live fleet unit as fleet's own client reads it.
func TestSweepLeftovers(t *testing.T) {
	e := etcdtest.New(t)
	c, err := etcd.New(etcd.Config{Endpoints: e.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	const prefix = "/_coreos.com/fleet/"
	keys := etcd.NewKeysAPI(c)
	api := fleetreg.New(keys, prefix)
	reg := api.Registry()
	create := func(name, text string) {
		t.Helper()
		uf, err := unit.NewUnitFile(text)
		if err != nil {
			t.Fatal(err)
		}
		if err := reg.CreateUnit(&job.Unit{Name: name, Unit: *uf, TargetState: job.JobStateLaunched}); err != nil {
			t.Fatal(err)
		}
	}
	own := func(id string) string {
		return "[Service]\nEnvironment=\"KAYLEE_ID=" + id + "\"\nExecStart=/bin/sleep 1d\n"
	}
	create("k2:a:1.service", own("k2_a_1"))                // destroyed: its file goes
	create("k2:b:1.service", own("k2_b_1"))                // kept
	create("k2:c:1.service", own("k2_shared"))             // kept, and so its file
	create("k2:d:1.service", own("k2_shared"))             // destroyed, its file still used by c
	create("x:f.service", "[Service]\nExecStart=/bin/f\n") // not its own: destroyed, file kept
	ctx := context.Background()
	for _, name := range []string{"k2:a:1.service", "k2:d:1.service", "x:f.service"} {
		if err := reg.DestroyUnit(name); err != nil {
			t.Fatal(err)
		}
		// The last heartbeat of the agent that ran it, after the destroy.
		if err := reg.UnitHeartbeat(name, "m1", time.Second); err != nil {
			t.Fatal(err)
		}
	}
	children := func(dir string, recursive bool) []*etcd.Node {
		t.Helper()
		r, err := keys.Get(ctx, path.Join(prefix, dir), &etcd.GetOptions{Recursive: recursive})
		if err != nil {
			t.Fatal(err)
		}
		return r.Node.Nodes
	}
	emptyDirs := func() []string {
		var out []string
		for _, n := range children("job", true) {
			if len(n.Nodes) == 0 {
				out = append(out, path.Base(n.Key))
			}
		}
		sort.Strings(out)
		return out
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(emptyDirs()) < 3 { // the heartbeats expire
		if time.Now().After(deadline) {
			t.Fatalf("heartbeats not expired: empty directories %v", emptyDirs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := len(children("unit", false)); n != 4 {
		t.Fatalf("before: %d unit files, want 4 (fleet keeps the destroyed ones')", n)
	}

	ownsName := func(name string) bool { return strings.HasPrefix(name, "k2:") }
	ownsFile := func(text string) bool { return strings.Contains(text, "KAYLEE_ID=k2_") }
	left, err := api.SweepLeftovers(ctx, ownsName, ownsFile)
	if err != nil {
		t.Fatal(err)
	}
	if left.UnitFiles != 1 || left.Dirs != 2 {
		t.Errorf("swept %+v, want 1 unit file (k2:a's) and 2 directories (k2:a's, k2:d's)", left)
	}
	if got := strings.Join(emptyDirs(), " "); got != "x:f.service" {
		t.Errorf("empty directories after: %q, want x:f.service's only", got)
	}
	var texts []string
	for _, n := range children("unit", false) {
		texts = append(texts, n.Value)
	}
	all := strings.Join(texts, "\n")
	if len(texts) != 3 || strings.Contains(all, "k2_a_1") || !strings.Contains(all, "k2_b_1") || !strings.Contains(all, "k2_shared") || !strings.Contains(all, "/bin/f") {
		t.Errorf("unit files after: want b's, the shared one and x:f's, got %d:\n%s", len(texts), all)
	}
	units, err := (&client.RegistryClient{Registry: reg}).Units()
	if err != nil {
		t.Fatal(err)
	}
	var live []string
	for _, u := range units {
		if len(u.Options) == 0 {
			t.Errorf("%s: no unit file as fleet's client reads it", u.Name)
		}
		live = append(live, u.Name)
	}
	if got := strings.Join(live, " "); got != "k2:b:1.service k2:c:1.service" {
		t.Errorf("fleet's units after: %q, want k2:b:1.service k2:c:1.service", got)
	}
	if left, err := api.SweepLeftovers(ctx, ownsName, ownsFile); err != nil || left != (fleetreg.Leftovers{}) {
		t.Errorf("a second sweep: %+v, %v; want nothing", left, err)
	}
}
