package view

import (
	"testing"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// Issue 25: a waiter wants the hash the scheduler rolls out (a unit that
// names no engine hashes with the default engine; rkt keeps the seed's
// hash), and the engine line says where a unit's engine comes from.
func TestWantOfAndEngineLine(t *testing.T) {
	bare := &deploy.Spec{Name: "web", Replicas: 2, Apps: []deploy.App{{Image: "web:1"}}}
	own := &deploy.Spec{Name: "db", Engine: deploy.EnginePodman, Apps: []deploy.App{{Image: "db:1"}}}
	docker := *bare
	docker.Engine = deploy.EngineDocker
	for _, tt := range []struct {
		spec      *deploy.Spec
		def, hash string
		line      string
	}{
		{bare, "", bare.Hash(0), "web: engine rkt (the cluster default)"},
		{bare, deploy.EngineRkt, bare.Hash(0), "web: engine rkt (the cluster default)"},
		{bare, deploy.EngineDocker, docker.Hash(0), "web: engine docker (the cluster default)"},
		{own, deploy.EngineDocker, own.Hash(0), "db: engine podman (its own)"},
	} {
		if w := WantOf(tt.spec, 0, tt.def); w.Hash != tt.hash || w.Replicas != tt.spec.Replicas {
			t.Errorf("WantOf(%s, %q) = %+v, want hash %s", tt.spec.Name, tt.def, w, tt.hash)
		}
		if got := EngineLine(tt.spec, tt.def); got != tt.line {
			t.Errorf("EngineLine(%s, %q) = %q, want %q", tt.spec.Name, tt.def, got, tt.line)
		}
	}
}

// Issue 26: validate's line for a unit shows its domains and the port
// the router sends them to.
func TestUnitLine(t *testing.T) {
	shop := &deploy.Spec{Name: "shop", Engine: deploy.EngineDocker, Apps: []deploy.App{{Image: "shop"}},
		Ports:   []deploy.Port{{Name: "metrics", Port: 9090}, {Name: "http", Port: 8080}},
		Domains: []string{"shop.example.com", "*.shop.example.com"}}
	plain := &deploy.Spec{Name: "web", Apps: []deploy.App{{Image: "web"}}}
	for _, tt := range []struct {
		spec *deploy.Spec
		line string
	}{
		{shop, "shop: engine docker (its own); domains shop.example.com, *.shop.example.com on port http (8080)"},
		{plain, "web: engine rkt (the cluster default)"},
	} {
		if got := UnitLine(tt.spec, ""); got != tt.line {
			t.Errorf("UnitLine(%s) = %q, want %q", tt.spec.Name, got, tt.line)
		}
	}
}
