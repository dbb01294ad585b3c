package fleet

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/fleet/fleetsim/fleetsimtest"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

func TestAPIRegistryAndHTTP(t *testing.T) {
	t.Parallel() // its own etcd and fleet: it waits on fleet's engine, not the CPU
	e := etcdtest.New(t)
	ms := fleetsim.Machines(2, map[string]string{"az": "a"}, map[string]string{"az": "b"})
	sim, err := fleetsim.Start(context.Background(), fleetsim.Config{Endpoints: e.Endpoints(), Machines: ms, StartDelay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	httpEndpoint := fleetsimtest.StartAPIServer(t, e.Endpoints(), fleetsim.DefaultKeyPrefix)

	for _, tt := range []struct {
		name string
		cfg  Config
	}{
		{"registry", Config{EtcdEndpoints: e.Endpoints()}},
		{"http on unix socket", Config{Endpoint: httpEndpoint}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			api, err := NewAPI(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			machines, err := api.Machines()
			if err != nil {
				t.Fatalf("Machines: %v", err)
			}
			var got []string
			for _, m := range machines {
				got = append(got, m.ID+"/"+m.Metadata["az"])
			}
			sort.Strings(got)
			want := []string{ms[0].ID + "/a", ms[1].ID + "/b"}
			sort.Strings(want)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("machines %v, want %v", got, want)
			}
			name := "k2:api-" + strings.ReplaceAll(tt.name, " ", "-") + ":0123abcd:abcdef:0.service"
			u := &schema.Unit{Name: name, DesiredState: "launched", Options: []*schema.UnitOption{
				{Section: "Service", Name: "ExecStart", Value: "/bin/true"},
				{Section: "X-Fleet", Name: "MachineMetadata", Value: "az=b"},
			}}
			if err := api.CreateUnit(u); err != nil {
				t.Fatalf("CreateUnit: %v", err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				states, err := api.UnitStates()
				if err != nil {
					t.Fatalf("UnitStates: %v", err)
				}
				for _, s := range states {
					if s.Name == name && s.SystemdSubState == "running" {
						if s.MachineID != ms[1].ID {
							t.Fatalf("ran on %s, want the az=b machine", s.MachineID)
						}
						return
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("unit not running; states: %+v", states)
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}

func TestNewAPIErrors(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Endpoint: "ftp://x"}, `use unix:///path/to/fleet.sock or http(s)://host:port`},
		{Config{}, "no etcd endpoints"},
	} {
		if _, err := NewAPI(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewAPI(%+v) = %v, want %q", tt.cfg, err, tt.want)
		}
	}
}
