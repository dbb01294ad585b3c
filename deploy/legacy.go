package deploy

import "strings"

// legacyFile is the first-generation unit format (docker only): name plus a
// nested spec with one image. It is converted to Spec with engine docker.
type legacyFile struct {
	Name string     `yaml:"name"`
	Spec legacySpec `yaml:"spec"`
}

type legacySpec struct {
	Replicas           int            `yaml:"replicas"`
	MaxReplicasPerHost int            `yaml:"maxReplicasPerHost"`
	Image              string         `yaml:"image"`
	Cmd                string         `yaml:"cmd"`
	EnvFiles           []string       `yaml:"envFiles"`
	Env                []EnvVar       `yaml:"env"`
	Volumes            []legacyVolume `yaml:"volumes"`
	Machine            []string       `yaml:"machine"`
	MachineID          string         `yaml:"machineId"`
	DockerArgs         []string       `yaml:"dockerArgs"`
	Global             bool           `yaml:"global"`
	Conflicts          []string       `yaml:"conflicts"`
}

type legacyVolume struct {
	ID      string `yaml:"id"`
	Driver  string `yaml:"driver"`
	Path    string `yaml:"path"`
	Options string `yaml:"options"`
}

func (l legacyFile) convert() Spec {
	s := l.Spec
	out := Spec{
		Name:               l.Name,
		Replicas:           s.Replicas,
		MaxReplicasPerHost: s.MaxReplicasPerHost,
		Engine:             EngineDocker,
		EnvFiles:           s.EnvFiles,
		Env:                s.Env,
		Args:               s.DockerArgs,
		Machine:            s.Machine,
		MachineID:          s.MachineID,
		Global:             s.Global,
		Conflicts:          s.Conflicts,
	}
	if s.Image != "" || s.Cmd != "" {
		out.Apps = []App{{Image: s.Image, Cmd: s.Cmd}}
	}
	for _, v := range s.Volumes {
		out.Volumes = append(out.Volumes, Volume{ID: v.ID, Driver: v.Driver, Path: v.Path, Options: v.Options})
	}
	return out
}

// relocateLegacyLines maps field paths of the legacy format to the paths of
// the converted spec, so that validation errors still point at the line.
func relocateLegacyLines(lines map[string]int) map[string]int {
	renames := []struct{ from, to string }{
		{"spec.image", "apps[0].image"},
		{"spec.cmd", "apps[0].cmd"},
		{"spec.dockerArgs", "args"},
		{"spec.", ""},
	}
	out := make(map[string]int, len(lines))
	for p, l := range lines {
		q := p
		for _, r := range renames {
			if strings.HasPrefix(q, r.from) {
				q = r.to + strings.TrimPrefix(q, r.from)
				break
			}
		}
		out[q] = l
	}
	return out
}
