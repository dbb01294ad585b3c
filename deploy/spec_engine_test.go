package deploy

import "testing"

func TestWithDefaultEngine(t *testing.T) {
	base := Spec{Name: "web", Apps: []App{{Image: "docker://nginx"}}}
	rktHash := base.Hash(0)
	for _, tc := range []struct {
		engine, def, want string
		sameHash          bool
	}{
		{"", "", "", true},
		{"", EngineRkt, "", true}, // the seed's default: hash unchanged
		{"", EnginePodman, EnginePodman, false},
		{"", EngineDocker, EngineDocker, false},
		{EngineDocker, EnginePodman, EngineDocker, false},
		{EngineRkt, EnginePodman, EngineRkt, false},
	} {
		s := base
		s.Engine = tc.engine
		got := s.WithDefaultEngine(tc.def)
		if got.Engine != tc.want {
			t.Errorf("engine %q, default %q: runs %q, want %q", tc.engine, tc.def, got.Engine, tc.want)
		}
		if s.Engine != tc.engine {
			t.Errorf("engine %q, default %q: the spec was changed", tc.engine, tc.def)
		}
		if same := got.Hash(0) == rktHash; same != tc.sameHash {
			t.Errorf("engine %q, default %q: hash %s, the seed default's %s (same: %v, want %v)", tc.engine, tc.def, got.Hash(0), rktHash, same, tc.sameHash)
		}
	}
}
