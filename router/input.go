package router

import (
	"context"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// input is what the routes are computed from, as read from etcd.
type input struct {
	specs     map[string]*deploy.Spec // the units that decode and validate, by name
	instances []*store.Instance
	domains   []string // every unit's
	rev       int64    // the units were read at
}

// Reader is what the routes are read from: the units and the instance
// registry at the revision the units were read at. *store.Store is one.
type Reader interface {
	ListUnits(ctx context.Context) ([]*store.Unit, int64, error)
	ListInstancesAt(ctx context.Context, rev int64) (map[string]*store.Instance, error)
}

var _ Reader = (*store.Store)(nil)

func readInput(ctx context.Context, s Reader) (*input, error) {
	units, rev, err := s.ListUnits(ctx)
	if err != nil {
		return nil, err
	}
	all, err := s.ListInstancesAt(ctx, rev)
	if err != nil {
		return nil, err
	}
	in := &input{specs: make(map[string]*deploy.Spec, len(units)), instances: make([]*store.Instance, 0, len(all)), rev: rev}
	for _, u := range units {
		if u.Err == nil {
			in.specs[u.Name] = &u.Spec
			in.domains = append(in.domains, u.Spec.Domains...)
		}
	}
	for _, i := range all {
		in.instances = append(in.instances, i)
	}
	return in, nil
}

// ReadRoutes reads the units and the instance registry and returns the
// routes a router makes of them (kaylee routes, and the console's).
func ReadRoutes(ctx context.Context, s Reader) ([]Route, error) {
	in, err := readInput(ctx, s)
	if err != nil {
		return nil, err
	}
	return Routes(in.specs, in.instances), nil
}
