package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// kaylee endpoints lists the replicas that serve, from the registry the
// server keeps.
func TestEndpoints(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	startFleet(t, e, 2)
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	startKaylee(t, env, "server", "--min-ready", "300ms", "--lease-ttl", "2s")
	dir := writeFiles(t, map[string]string{"web.yaml": unitWeb + "ports:\n- {name: http, port: 8080}\n- {name: dns, port: 53, protocol: udp}\n"})
	if r := kaylee(t, env, "run", "--wait", "--timeout", "60s", dir); r.code != 0 {
		t.Fatalf("run: %d %s%s", r.code, r.stdout, r.err)
	}
	var r result
	waitFor(t, 20*time.Second, "two endpoints", func() bool {
		r = kaylee(t, env, "endpoints", "web")
		return strings.Count(r.stdout, "http=8080/tcp,dns=53/udp") == 2
	})
	if !strings.HasPrefix(r.stdout, "INSTANCE") || !strings.Contains(r.stdout, "active/running") || !strings.Contains(r.stdout, "192.0.2.") {
		t.Fatalf("endpoints:\n%s", r.stdout)
	}
	r = kaylee(t, env, "endpoints", "web", "-o", "json")
	var ins []struct {
		Instance, FleetUnit, MachineIP, State string
		Ports                                 []struct{ Name string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &ins); err != nil || len(ins) != 2 || ins[0].FleetUnit != ins[0].Instance+".service" || ins[0].Ports[0].Name != "http" {
		t.Fatalf("endpoints -o json: %v\n%s", err, r.stdout)
	}
	if r := kaylee(t, env, "endpoints", "nope"); r.code != 1 || !strings.Contains(r.err, `no unit named "nope"`) {
		t.Fatalf("unknown unit: %d %s", r.code, r.err)
	}
}
