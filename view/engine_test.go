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
