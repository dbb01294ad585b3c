package router

import (
	"context"
	"sort"
	"testing"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// changeAfterUnits is a store that changes the instance registry right
// after each units listing, as a scheduler can between the router's two
// reads.
type changeAfterUnits struct {
	*store.Store
	change func()
}

func (c changeAfterUnits) ListUnits(ctx context.Context) ([]*store.Unit, int64, error) {
	units, rev, err := c.Store.ListUnits(ctx)
	c.change()
	return units, rev, err
}

// The routes and the revision the router reports come from one read of
// etcd: an instance change that lands between the units and the
// registry is not in a configuration said to be of the revision before
// it (the status would claim a revision older than what Caddy serves).
func TestReadInputIsOneRevision(t *testing.T) {
	ctx := context.Background()
	s := store.New(etcdtest.New(t).Client(t), "/kaylee2")
	sp := &deploy.Spec{Name: "web", Replicas: 2, Apps: []deploy.App{{Image: "docker://nginx"}}, Domains: []string{"web.test"},
		Ports: []deploy.Port{{Name: "http", Port: 80}}}
	if _, err := s.PutUnit(ctx, sp, store.Fence{}); err != nil {
		t.Fatal(err)
	}
	inst := func(name string) *store.Instance {
		return &store.Instance{Unit: "web", Instance: name, MachineIP: "127.0.0.1", State: "active/running",
			Ports: []deploy.Port{{Name: "http", Port: 8080}}}
	}
	if err := s.ApplyInstances(ctx, []*store.Instance{inst("a")}, nil, store.Fence{}); err != nil {
		t.Fatal(err)
	}
	r := changeAfterUnits{Store: s, change: func() {
		if err := s.ApplyInstances(ctx, []*store.Instance{inst("b")}, []string{"web/a"}, store.Fence{}); err != nil {
			t.Fatal(err)
		}
	}}
	in, err := readInput(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, i := range in.instances {
		got = append(got, i.Instance)
	}
	sort.Strings(got)
	if len(got) != 1 || got[0] != "a" {
		t.Errorf("read at revision %d: instances %v, want [a] (the registry at that revision; b came after)", in.rev, got)
	}
}
