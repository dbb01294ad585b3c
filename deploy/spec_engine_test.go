package deploy

import (
	"strings"
	"testing"
)

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

// docker and podman pass the apps the variables of an optional env file
// only when env names them: a unit with one is warned, at its line.
func TestOptionalEnvFileWarnings(t *testing.T) {
	const file = "name: web\nenvFiles:\n- /etc/web.env\n- -/etc/extra.env\napps:\n- image: docker://web:1\n"
	for _, tt := range []struct{ engine, def, want string }{
		{"", "", ""},
		{"", EnginePodman, `u.yaml:4: envFiles[1]: "-/etc/extra.env" is optional: with engine podman its variables reach the apps only when env names them (rkt passed them all); drop the - to pass the file to the apps (it must then exist on every machine)`},
		{"engine: docker\n", "", `u.yaml:5: envFiles[1]: "-/etc/extra.env" is optional: with engine docker its variables reach the apps only when env names them (rkt passed them all); drop the - to pass the file to the apps (it must then exist on every machine)`},
		{"engine: rkt\n", EnginePodman, ""},
	} {
		docs, err := Decode("u.yaml", []byte(tt.engine+file))
		if err != nil || len(docs) != 1 || docs[0].Err != nil {
			t.Fatalf("decode: %v %v", err, docs)
		}
		var got []string
		for _, w := range docs[0].WarningsWithDefaultEngine(tt.def) {
			if w.Field != "engine" {
				got = append(got, w.Error())
			}
		}
		if strings.Join(got, "\n") != tt.want {
			t.Errorf("engine %q, default %q: warnings %q, want %q", tt.engine, tt.def, got, tt.want)
		}
	}
}
