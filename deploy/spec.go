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
	"slices"
	"strconv"
	"strings"
	"time"
)

// Engines a unit can run on.
const (
	EngineRkt    = "rkt"
	EngineDocker = "docker"
	EnginePodman = "podman"
)

// Engines are the engines a unit may name, the default first.
var Engines = []string{EngineRkt, EngineDocker, EnginePodman}

// CheckEngine returns an error unless name is one of Engines.
func CheckEngine(name string) error {
	if !slices.Contains(Engines, name) {
		return fmt.Errorf("%q is not an engine: use %s", name, strings.Join(Engines, ", "))
	}
	return nil
}

// ValidateWithDefaultEngine validates the document as a cluster whose
// default engine is engine runs it (see WithDefaultEngine): a unit that
// names no engine meets the refusals of the engine it runs with.
func (d *Document) ValidateWithDefaultEngine(engine string) error {
	cp := *d
	cp.Spec = *d.Spec.WithDefaultEngine(engine)
	return cp.Validate()
}

// WithDefaultEngine returns the spec the scheduler runs for a cluster
// whose default engine is engine: the spec itself when it names its engine
// or when the default is rkt (or ""), the seed format's own default, so
// that its hash stays what it always was; otherwise a copy that names the
// default. The copy hashes otherwise, so that switching a cluster's
// default rolls its units over. The stored JSON is never changed.
func (s *Spec) WithDefaultEngine(engine string) *Spec {
	if s.Engine != "" || engine == "" || engine == EngineRkt {
		return s
	}
	cp := *s
	cp.Engine = engine
	return &cp
}

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
	// Health comes last: it is newer than the seed format, and the canonical
	// JSON of a unit without it stays what the seed shows.
	Health *Health `json:"health,omitempty" yaml:"health"`
	// Update is the rollout policy; like Health it is newer than the seed.
	Update *Update `json:"update,omitempty" yaml:"update"`
	// Ports are published with each running replica in the instance
	// registry (<prefix>/instances/); they change no fleet unit.
	Ports []Port `json:"ports,omitempty" yaml:"ports"`
	// Spread places the replicas evenly over a machine metadata key.
	Spread *Spread `json:"spread,omitempty" yaml:"spread"`
	// Stateful makes each replica a member with a stable ordinal
	// (0..replicas-1) that keeps its machine and its data (see stateful.go).
	Stateful bool `json:"stateful,omitempty" yaml:"stateful"`
	// OnMachineLoss is what the scheduler does with a member whose machine
	// is gone: wait (the default) or move. Stateful units only.
	OnMachineLoss string `json:"onMachineLoss,omitempty" yaml:"onMachineLoss"`
	// Primary tells which member is the primary (its probe passes), for
	// update.order. Stateful units only.
	Primary *Probe `json:"primary,omitempty" yaml:"primary"`
	// Domains are the host names (and "*." wildcards) a front router
	// (kaylee router) sends to the unit's serving replicas; they change no
	// fleet unit.
	Domains []string `json:"domains,omitempty" yaml:"domains"`
	// DomainsPort names the entry of Ports that serves HTTP for Domains;
	// empty: the port named http, else the only tcp port.
	DomainsPort string `json:"domainsPort,omitempty" yaml:"domainsPort"`
	// DependsOn names the units whose rollout must be done before this
	// unit's starts (see depends.go); it changes no fleet unit.
	DependsOn []string `json:"dependsOn,omitempty" yaml:"dependsOn"`
	// Freeze are windows in which a git source changes nothing of the
	// unit (see freeze.go); they change no fleet unit.
	Freeze []FreezeWindow `json:"freeze,omitempty" yaml:"freeze"`
}

// Port is a port a unit's replicas serve on, for the instance registry.
type Port struct {
	Name     string `json:"name" yaml:"name"`
	Port     int    `json:"port" yaml:"port"`
	Protocol string `json:"protocol,omitempty" yaml:"protocol"` // tcp (default) or udp
}

// EnvVar is one environment variable given to every app of the unit:
// a value in clear, or a secret, an age file (ASCII-armored) that only
// the machines running the unit decrypt, encrypted to the recipients
// named (see secret.go).
type EnvVar struct {
	Name       string   `json:"name" yaml:"name"`
	Value      string   `json:"value" yaml:"value"`
	Secret     string   `json:"secret,omitempty" yaml:"secret"`
	Recipients []string `json:"recipients,omitempty" yaml:"recipients"`
}

// Volume is a host path or a driver-provided volume mounted into the apps.
type Volume struct {
	ID      string `json:"id,omitempty" yaml:"id"`
	Driver  string `json:"driver,omitempty" yaml:"driver"`
	Source  string `json:"source,omitempty" yaml:"source"`
	Path    string `json:"path" yaml:"path"`
	Options string `json:"options,omitempty" yaml:"options"`
}

// Pull policies of an app's image. The default depends on the engine (see
// App.PullPolicy).
const (
	PullMissing = "missing" // fetch only an image the host does not have (docker's and podman's default)
	PullAlways  = "always"  // fetch (update) the image before every start (rkt's default)
	PullNever   = "never"   // use only what the host has (air-gapped hosts)
)

// pullPolicies are the values apps[].pull accepts, the default first.
var pullPolicies = []string{PullMissing, PullAlways, PullNever}

// App is one container image of the unit's pod.
type App struct {
	Image string   `json:"image" yaml:"image"`
	Cmd   string   `json:"cmd,omitempty" yaml:"cmd"`
	Args  []string `json:"args,omitempty" yaml:"args"`
	Pull  string   `json:"pull,omitempty" yaml:"pull"` // missing, always or never; empty is the engine's default
}

// PullPolicy returns the app's pull policy on an engine, applying the
// engine's default: always for rkt (monder/kaylee ran rkt fetch before
// every start, which re-pulls docker:// images, so kaylee restart updated
// :latest), missing for docker (docker run pulls an image it does not
// have; a pull line would fail on a host that cannot reach the registry)
// and for podman (podman's own default: a locally built or loaded image
// runs without a registry; write pull: always to update :latest on every
// start).
func (a *App) PullPolicy(engine string) string {
	switch {
	case a.Pull != "":
		return a.Pull
	case engine == EngineDocker, engine == EnginePodman:
		return PullMissing
	default:
		return PullAlways
	}
}

// Defaults and limits of a health check.
const (
	DefaultHealthInterval    = 5 * time.Second
	DefaultHealthTimeout     = 2 * time.Second
	DefaultHealthStartPeriod = 60 * time.Second
	DefaultHealthFailures    = 3
	MaxHealthDuration        = time.Hour
	MaxHealthFailures        = 100
	MaxHealthPathLen         = 256
	MaxHealthExecWords       = 16
)

// Kinds of health check.
const (
	HealthHTTP = "http"
	HealthTCP  = "tcp"
	HealthExec = "exec"
)

// Health is a unit's health check. It runs on the machine that runs the
// replica, inside the fleet unit (ExecStartPost): the replica reaches
// active/running only once the check passes, and a running replica that
// fails Failures checks in a row is restarted by systemd. Exactly one of
// HTTP, TCP and Exec is set. Durations are kept as written (Go syntax,
// such as "5s" or "1m30s"); empty means the default.
type Health struct {
	HTTP        *HTTPCheck `json:"http,omitempty" yaml:"http"`
	TCP         *TCPCheck  `json:"tcp,omitempty" yaml:"tcp"`
	Exec        []string   `json:"exec,omitempty" yaml:"exec"` // a command run on the machine, absolute path first
	Interval    string     `json:"interval,omitempty" yaml:"interval"`
	Timeout     string     `json:"timeout,omitempty" yaml:"timeout"`
	StartPeriod string     `json:"startPeriod,omitempty" yaml:"startPeriod"`
	Failures    int        `json:"failures,omitempty" yaml:"failures"`
}

// HTTPCheck passes when GET path on the port answers 2xx or 3xx.
type HTTPCheck struct {
	Port int    `json:"port" yaml:"port"`
	Path string `json:"path,omitempty" yaml:"path"` // empty is /
}

// TCPCheck passes when a connection to the port opens.
type TCPCheck struct {
	Port int `json:"port" yaml:"port"`
}

// RequestPath returns the path the check requests, applying the default (/).
func (c *HTTPCheck) RequestPath() string {
	if c.Path == "" {
		return "/"
	}
	return c.Path
}

// Kind returns which check the health block holds: http, tcp, exec, or ""
// when it holds none (or more than one: see Validate).
func (h *Health) Kind() string {
	var kinds []string
	if h.HTTP != nil {
		kinds = append(kinds, HealthHTTP)
	}
	if h.TCP != nil {
		kinds = append(kinds, HealthTCP)
	}
	if len(h.Exec) > 0 {
		kinds = append(kinds, HealthExec)
	}
	if len(kinds) != 1 {
		return ""
	}
	return kinds[0]
}

// IntervalDuration returns how long the check waits between two probes,
// applying the default (5s).
func (h *Health) IntervalDuration() time.Duration {
	return durationOr(h.Interval, DefaultHealthInterval)
}

// TimeoutDuration returns how long one probe may take, applying the
// default (2s).
func (h *Health) TimeoutDuration() time.Duration {
	return durationOr(h.Timeout, DefaultHealthTimeout)
}

// StartPeriodDuration returns how long a new replica may take to become
// healthy, applying the default (60s).
func (h *Health) StartPeriodDuration() time.Duration {
	return durationOr(h.StartPeriod, DefaultHealthStartPeriod)
}

// FailureThreshold returns how many failed probes in a row make a running
// replica unhealthy, applying the default (3).
func (h *Health) FailureThreshold() int {
	if h.Failures == 0 {
		return DefaultHealthFailures
	}
	return h.Failures
}

// durationOr parses a health duration, or returns def for an empty (or
// invalid: Validate refuses those) one.
func durationOr(v string, def time.Duration) time.Duration {
	if d, ok := parseHealthDuration(v); ok {
		return d
	}
	return def
}

// parseHealthDuration reads a duration of the health block: Go syntax,
// more than 0 and at most MaxHealthDuration.
func parseHealthDuration(v string) (time.Duration, bool) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > MaxHealthDuration {
		return 0, false
	}
	return d, true
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
		// Spec holds only strings, ints, bools, slices and pointers to
		// structs of them.
		panic(fmt.Sprintf("deploy: encoding spec: %v", err))
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// Hash returns the spec hash used in fleet unit names: 8 hex digits of the
// SHA-256 of the canonical JSON and the restart counter. The same spec and
// counter always give the same hash; `kaylee restart` bumps the counter.
// Left out, as they change no replica's unit file: replicas (a change of
// the count adds or removes replicas and leaves the others running under
// their names), the update policy (changing how to roll out rolls nothing
// out, but for a global unit's strategy, which changes its fleet units),
// ports (published in the instance registry only, but for a podman unit
// whose args publish them with --port: see publishOf), domains and
// domainsPort (read by routers only), dependsOn (read by the scheduler
// only: editing it rolls nothing out), freeze (read by sync only), and a
// stateful unit's
// onMachineLoss and primary (read by the scheduler only). stateful itself
// is kept: a member's fleet unit differs from a replica's (KAYLEE_MEMBER,
// per-member volumes), and the scheduler tells units apart by name.
func (s *Spec) Hash(restart int64) string {
	h := sha256.New()
	cp := *s
	cp.Replicas, cp.Update, cp.Ports = 0, nil, nil
	if s.publishesPorts() {
		cp.Ports = s.Ports // rendered into the pod (podman --publish)
	}
	cp.Domains, cp.DomainsPort = nil, ""
	cp.DependsOn = nil
	cp.Freeze = nil // read by sync only
	cp.OnMachineLoss, cp.Primary = "", nil
	if s.Replicated() {
		// A unit with replicas renders otherwise than one without (its
		// replicas do not conflict with each other): keep them apart.
		cp.Replicas = 1
	}
	if s.Global || s.MachineID != "" {
		// maxReplicasPerHost: 1 (monder/kaylee's JSON) changes nothing
		// there; validation refuses more. No unit stored before had it.
		cp.MaxReplicasPerHost = 0
	}
	h.Write(cp.CanonicalJSON())
	if s.Rolling() {
		h.Write([]byte("\x00strategy=" + StrategyRolling))
	}
	if restart != 0 {
		h.Write([]byte("\x00restart=" + strconv.FormatInt(restart, 10)))
	}
	return hex.EncodeToString(h.Sum(nil))[:8]
}

// Warnings are what a valid unit should hear before it runs, though
// nothing stops it: a unit with no engine runs with rkt, the seed
// format's default (kept for its contract), which no current host has;
// a stateful unit's volume that every member shares (see
// statefulWarnings).
func (d *Document) Warnings() []*FieldError {
	return d.WarningsWithDefaultEngine("")
}

// WarningsWithDefaultEngine is Warnings for a cluster whose default engine
// is engine ("" is rkt): a unit that names no engine is warned that it
// runs with rkt only when the default is rkt.
func (d *Document) WarningsWithDefaultEngine(engine string) []*FieldError {
	if d.Err != nil {
		return nil
	}
	var out []*FieldError
	if d.Spec.Engine == "" && !d.Legacy && (engine == "" || engine == EngineRkt) {
		out = append(out, &FieldError{File: d.File, Line: d.LineOf("apps"), Field: "engine",
			Msg: fmt.Sprintf("none given, so %s runs with rkt (the seed format's default), which is archived and on no current host; write engine: docker, or engine: rkt to keep it", d.Spec.Name)})
	}
	out = append(out, optionalEnvFileWarnings(d, d.Spec.WithDefaultEngine(engine).EngineName())...)
	return append(out, statefulWarnings(d)...)
}

// optionalEnvFileWarnings: with docker or podman, the variables of an
// optional env file ("-" first) reach the apps only when env names them.
// systemd reads the file for the unit (EnvironmentFile=), but the engine
// passes an app only the variables it is told (-e NAME) and the files
// that must exist (--env-file); rkt's --inherit-env passed them all.
func optionalEnvFileWarnings(d *Document, engine string) []*FieldError {
	if engine != EngineDocker && engine != EnginePodman {
		return nil
	}
	var out []*FieldError
	for i, f := range d.Spec.EnvFiles {
		if !strings.HasPrefix(f, "-") {
			continue
		}
		field := fmt.Sprintf("envFiles[%d]", i)
		out = append(out, &FieldError{File: d.File, Line: d.LineOf(field), Field: field,
			Msg: fmt.Sprintf("%q is optional: with engine %s its variables reach the apps only when env names them (rkt passed them all); drop the - to pass the file to the apps (it must then exist on every machine)", f, engine)})
	}
	return out
}
