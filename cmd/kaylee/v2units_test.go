package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	etcd "github.com/coreos/etcd/client"
	"github.com/coreos/fleet/client"

	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
	"github.com/kaylee-gitops/kaylee/store/v2units"
)

// seedCountlyJSON is the seed README's CI example: the countly unit as
// JSON, stored at /kaylee2/units/countly.
func seedCountlyJSON(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../deploy/testdata/countly.json")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// fleetUnits are the names of fleet's units that start with prefix.
func fleetUnits(t *testing.T, api client.API, prefix string) []string {
	t.Helper()
	us, err := api.Units()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, u := range us {
		if strings.HasPrefix(u.Name, prefix) {
			out = append(out, u.Name)
		}
	}
	slices.Sort(out)
	return out
}

// waitShown polls ok every 200ms for up to 90s.
func waitShown(t *testing.T, what string, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		done, got := ok()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 90s: %s; got:\n%s", what, got)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The seed README's CI contract as the original kept it: the countly JSON
// written through etcd's v2 keys API (as etcdctl set does) is scheduled by
// kaylee server — kaylee ls shows it, fleet runs its 4 units; the same value
// written again (the original's kaylee restart) rolls every replica; a v2
// delete destroys them.
func TestServerSchedulesV2Units(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	cluster, err := fleetsim.Start(context.Background(), fleetsim.Config{Endpoints: e.Endpoints(),
		Machines: fleetsim.Machines(3, map[string]string{"ssd": "false"}), TTL: 4 * time.Second, EngineInterval: time.Second, StartDelay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	api := cluster.API()
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	srv := startKaylee(t, env, "server", "--min-ready", "300ms", "--lease-ttl", "2s")
	keys, err := v2units.NewKeys(v2units.KeysConfig{Endpoints: e.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, value := context.Background(), seedCountlyJSON(t)
	if _, err := keys.Set(ctx, "/kaylee2/units/countly", value, nil); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Phase, SpecHash  string
		Running, Desired int
	}
	status := func() (bool, string) {
		r := kaylee(t, env, "status", "countly", "-o", "json")
		st.Phase = ""
		_ = json.Unmarshal([]byte(r.stdout), &st)
		return st.Phase == "running" && st.Running == 4, r.stdout + r.err + "\nserver:\n" + srv.errb.String()
	}
	waitShown(t, "countly, written through v2, running 4/4", status)
	if r := kaylee(t, env, "ls"); r.code != 0 || strings.TrimSpace(r.stdout) != "countly" {
		t.Fatalf("kaylee ls: exit %d %q %s", r.code, r.stdout, r.err)
	}
	units := fleetUnits(t, api, "k2:countly:")
	if len(units) != 4 {
		t.Fatalf("fleet units of countly: %q", units)
	}

	// The original's kaylee restart: the same value, PrevValue the same.
	first := st.SpecHash
	if _, err := keys.Set(ctx, "/kaylee2/units/countly", value, &etcd.SetOptions{PrevValue: value}); err != nil {
		t.Fatal(err)
	}
	waitShown(t, "countly rolled by the v2 restart", func() (bool, string) {
		ok, got := status()
		return ok && st.SpecHash != first && len(fleetUnits(t, api, "k2:countly:")) == 4, got
	})
	if again := fleetUnits(t, api, "k2:countly:"); slices.Equal(again, units) {
		t.Fatalf("the v2 restart left the same fleet units: %q", again)
	}
	if r := kaylee(t, env, "events", "countly"); !strings.Contains(r.stdout, "the same value written again through etcd's v2 API at /kaylee2/units/countly") {
		t.Errorf("events lack the v2 restart:\n%s%s", r.stdout, r.err)
	}

	if _, err := keys.Delete(ctx, "/kaylee2/units/countly", nil); err != nil {
		t.Fatal(err)
	}
	waitShown(t, "countly's fleet units destroyed after the v2 delete", func() (bool, string) {
		left := fleetUnits(t, api, "k2:countly:")
		return len(left) == 0, strings.Join(left, "\n")
	})
	if r := kaylee(t, env, "ls"); r.code != 0 || strings.TrimSpace(r.stdout) != "" {
		t.Fatalf("kaylee ls after the v2 delete: exit %d %q %s", r.code, r.stdout, r.err)
	}
}

// On the etcd CI starts from Debian's etcd-server (with --enable-v2), a
// v2 write made with Debian's own client (ETCDCTL_API=2 etcdctl set, as CI
// scripts written for the original do) of the seed's countly JSON is
// scheduled by kaylee dev's scheduler: countly runs 4/4.
func TestV2UnitsExternalEtcd(t *testing.T) {
	t.Parallel()
	etcdctl, err := exec.LookPath("etcdctl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI must run this test: no etcdctl on PATH (.ci/run installs Debian's etcd-client)")
		}
		t.Skip("no etcdctl on PATH (apt-get install etcd-client)")
	}
	endpoint := os.Getenv("KAYLEE_TEST_ETCD_ENDPOINT")
	if endpoint == "" {
		endpoint = etcdtest.New(t).ClientURL()
	}
	id := time.Now().UnixNano()
	prefix := fmt.Sprintf("/e2e-v2-%d", id)
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": endpoint, "KAYLEE_ETCD_PREFIX": prefix}
	p := startKaylee(t, env, "dev", "--fleet-prefix", prefix+"/fleet/", "--min-ready", "300ms")
	waitOutput(t, p.out, "ready:", 60*time.Second)

	cmd := exec.Command(etcdctl, "--endpoints", endpoint, "set", prefix+"/units/countly", seedCountlyJSON(t))
	cmd.Env = append(os.Environ(), "ETCDCTL_API=2")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ETCDCTL_API=2 etcdctl set: %v\n%s", err, out)
	}
	waitShown(t, "countly, set with ETCDCTL_API=2 etcdctl, running 4/4", func() (bool, string) {
		r := kaylee(t, env, "status", "countly", "-o", "json")
		var st struct {
			Phase   string
			Running int
		}
		_ = json.Unmarshal([]byte(r.stdout), &st)
		return st.Phase == "running" && st.Running == 4, r.stdout + r.err + "\ndev:\n" + p.errb.String()
	})
}
