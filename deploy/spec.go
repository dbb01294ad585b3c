// Package deploy defines Kaylee's unit spec: its types, strict decoding from
// YAML and JSON, validation, canonical JSON, and rendering into fleet units.
//
// The package is pure: it does no I/O and imports no etcd, git or fleet client.
package deploy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
)

// Engines a unit can run on.
const (
	EngineRkt    = "rkt"
	EngineDocker = "docker"
)

// Spec is one Kaylee unit as an operator writes it. The field order is the
// seed format's order and is the order of the canonical JSON.
type Spec struct {
	Name               string   `json:"name" yaml:"name"`
	Replicas           int      `json:"replicas,omitempty" yaml:"replicas"`
	MaxReplicasPerHost int      `json:"maxReplicasPerHost,omitempty" yaml:"maxReplicasPerHost"`
	Engine             string   `json:"engine,omitempty" yaml:"engine"`
	EnvFiles           []string `json:"envFiles,omitempty" yaml:"envFiles"`
	Env                []EnvVar `json:"env,omitempty" yaml:"env"`
	Volumes            []Volume `json:"volumes,omitempty" yaml:"volumes"`
	Net                string   `json:"net,omitempty" yaml:"net"`
	Apps               []App    `json:"apps,omitempty" yaml:"apps"`
	Args               []string `json:"args,omitempty" yaml:"args"`
	Machine            []string `json:"machine,omitempty" yaml:"machine"`
	MachineID          string   `json:"machineId,omitempty" yaml:"machineId"`
	Global             bool     `json:"global,omitempty" yaml:"global"`
	Conflicts          []string `json:"conflicts,omitempty" yaml:"conflicts"`
}

// EnvVar is one environment variable given to every app of the unit.
type EnvVar struct {
	Name  string `json:"name" yaml:"name"`
	Value string `json:"value" yaml:"value"`
}

// Volume is a host path or a driver-provided volume mounted into the apps.
type Volume struct {
	ID      string `json:"id,omitempty" yaml:"id"`
	Driver  string `json:"driver,omitempty" yaml:"driver"`
	Source  string `json:"source,omitempty" yaml:"source"`
	Path    string `json:"path" yaml:"path"`
	Options string `json:"options,omitempty" yaml:"options"`
}

// Pull policies of an app's image.
const (
	PullMissing = "missing" // the default: fetch only an image the host does not have
	PullAlways  = "always"  // fetch (update) the image before every start
	PullNever   = "never"   // use only what the host has (air-gapped hosts)
)

// pullPolicies are the values apps[].pull accepts, the default first.
var pullPolicies = []string{PullMissing, PullAlways, PullNever}

// App is one container image of the unit's pod.
type App struct {
	Image string   `json:"image" yaml:"image"`
	Cmd   string   `json:"cmd,omitempty" yaml:"cmd"`
	Args  []string `json:"args,omitempty" yaml:"args"`
	Pull  string   `json:"pull,omitempty" yaml:"pull"` // missing, always or never; empty is missing
}

// PullPolicy returns the app's pull policy, applying the default (missing).
func (a *App) PullPolicy() string {
	if a.Pull == "" {
		return PullMissing
	}
	return a.Pull
}

// EngineName returns the engine the spec runs on, applying the default (rkt).
func (s *Spec) EngineName() string {
	if s.Engine == "" {
		return EngineRkt
	}
	return s.Engine
}

// Instances returns how many fleet units the spec renders to.
func (s *Spec) Instances() int {
	switch {
	case s.Global, s.MachineID != "", s.Replicas == 0:
		return 1
	default:
		return s.Replicas
	}
}

// Replicated reports whether the spec's fleet units may run side by side
// during a rollout (a spec with replicas, not global and not pinned to a
// machine). Other specs are replaced by stopping the old unit first.
func (s *Spec) Replicated() bool {
	return s.Replicas > 0 && !s.Global && s.MachineID == ""
}

// CanonicalJSON returns the spec as stored under <prefix>/units/<name>: the
// seed's field order, empty fields omitted, no HTML escaping, no trailing
// newline.
func (s *Spec) CanonicalJSON() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		// Spec holds only strings, ints, bools and slices of them.
		panic(fmt.Sprintf("deploy: encoding spec: %v", err))
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// Hash returns the spec hash used in fleet unit names: 8 hex digits of the
// SHA-256 of the canonical JSON and the restart counter. The same spec and
// counter always give the same hash; `kaylee restart` bumps the counter.
func (s *Spec) Hash(restart int64) string {
	h := sha256.New()
	h.Write(s.CanonicalJSON())
	if restart != 0 {
		h.Write([]byte("\x00restart=" + strconv.FormatInt(restart, 10)))
	}
	return hex.EncodeToString(h.Sum(nil))[:8]
}
