package deploy

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits of the spec.
const (
	MaxNameLen  = 64
	MaxReplicas = 1000
)

var (
	nameRe      = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	envNameRe   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	conflictRe  = regexp.MustCompile(`^[a-z0-9*?-]+$`)
	metaKeyRe   = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
	volumeIDRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	driverRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	machineIDRe = regexp.MustCompile(`^[A-Za-z0-9]+$`)
	// Words of a health check reach the unit file unquoted, as arguments
	// of Kaylee's check script: only characters that neither systemd nor
	// bash treat specially.
	healthPathRe = regexp.MustCompile(`^/[A-Za-z0-9/._~?=&-]*$`)
	healthWordRe = regexp.MustCompile(`^[A-Za-z0-9_./:=,@+-]+$`)
)

// Validate checks the spec against Kaylee's rules. The error joins one
// *FieldError per problem (without file or line: see Load for those).
func (s *Spec) Validate() error {
	return validateSpec(s, "", func(string) int { return 0 })
}

// Validate checks a decoded document's spec, its errors naming the
// document's file (an etcd key for a stored unit) and lines.
func (d *Document) Validate() error { return d.validate() }

func (d *Document) validate() error {
	return validateSpec(&d.Spec, d.File, d.LineOf)
}

type checker struct {
	file   string
	lineOf func(string) int
	errs   []error
}

func (c *checker) fail(field, format string, args ...any) {
	c.errs = append(c.errs, &FieldError{File: c.file, Line: c.lineOf(field), Field: field, Msg: fmt.Sprintf(format, args...)})
}

func validateSpec(s *Spec, file string, lineOf func(string) int) error {
	c := &checker{file: file, lineOf: lineOf}
	eachString(s, func(field, v string) {
		if isEnvValue(field) {
			c.checkEnvValue(field, v)
		} else {
			c.checkText(field, v)
		}
	})
	c.checkName(s.Name)
	c.checkScheduling(s)
	c.checkApps(s)
	for i, e := range s.Env {
		c.checkEnv(fmt.Sprintf("env[%d]", i), e, s.Env[:i])
		c.checkSecret(fmt.Sprintf("env[%d]", i), e)
	}
	for i, f := range s.EnvFiles {
		if p := strings.TrimPrefix(f, "-"); !isAbsPath(p) {
			c.fail(fmt.Sprintf("envFiles[%d]", i), "%q must be an absolute path without spaces, quotes or backslashes (a leading - makes it optional)", f)
		}
	}
	// A volume is checked as a member renders it (MemberRef replaced by
	// an ordinal); checkStateful checks where MemberRef may stand.
	for i, v := range s.MemberVolumes(0) {
		c.checkVolume(fmt.Sprintf("volumes[%d]", i), v, s.Volumes[i])
	}
	before := len(c.errs)
	if strings.ContainsFunc(s.Net, unicode.IsSpace) {
		c.fail("net", "%q must not contain spaces (separate networks with commas)", s.Net)
	} else {
		c.checkExec("net", s.Net)
	}
	for i, a := range s.Args {
		c.checkExec(fmt.Sprintf("args[%d]", i), a)
	}
	if s.EngineName() == EnginePodman {
		c.checkPodman(s, len(c.errs) == before)
	}
	if s.Health != nil {
		c.checkHealth(s.Health)
	}
	if s.Update != nil {
		c.checkUpdate(s)
	}
	c.checkPorts(s.Ports)
	c.checkDomains(s)
	c.checkDependsOn(s)
	c.checkFreeze(s)
	if s.Spread != nil {
		c.checkSpread(s)
	}
	c.checkStateful(s)
	if len(c.errs) == 0 {
		// Every value is safe; make sure the rendered unit fits fleet's
		// line limit with the longest unit prefix allowed.
		if _, err := Render(s, RenderOptions{UnitPrefix: strings.Repeat("k", MaxUnitPrefixLen)}); err != nil {
			c.errs = append(c.errs, &FieldError{File: file, Line: lineOf(""), Msg: err.Error()})
		}
	}
	return errors.Join(c.errs...)
}

// checkText rejects what could break out of a unit file line: newlines and
// other control characters, invalid UTF-8, and a trailing backslash (systemd
// joins the next line to it).
func (c *checker) checkText(field, v string) {
	switch {
	case !utf8.ValidString(v):
		c.fail(field, "not valid UTF-8")
	case strings.ContainsFunc(v, isControl):
		c.fail(field, "must not contain a newline or other control character: unit files are line-based, so it could inject systemd directives")
	case strings.HasSuffix(v, `\`):
		c.fail(field, "must not end with a backslash: systemd would join the next line of the unit file to it")
	}
}

// isEnvValue: the field is an env entry's value (env[N].value).
func isEnvValue(field string) bool {
	return strings.HasPrefix(field, "env[") && strings.HasSuffix(field, "].value")
}

// checkEnvValue checks an env value. Unlike other values it may hold
// newlines, carriage returns and tabs (a multi-line PEM key, as monder/kaylee
// took them): Environment= renders it quoted with C escapes (quoteEnv),
// which systemd turns back into the characters, so the unit file line stays
// one line. Other control characters are refused: NUL cannot be in an
// environment variable, and the rest are more likely a mistake than a value.
func (c *checker) checkEnvValue(field, v string) {
	switch {
	case !utf8.ValidString(v):
		c.fail(field, "not valid UTF-8")
	case strings.ContainsFunc(v, func(r rune) bool { return isControl(r) && !strings.ContainsRune(envControls, r) }):
		c.fail(field, "must not contain a control character other than newline, carriage return and tab (NUL cannot be in an environment variable)")
	}
}

// envControls are the control characters an env value may hold.
const envControls = "\n\r\t"

func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029'
}

func (c *checker) checkName(name string) {
	switch {
	case name == "":
		c.fail("name", "required: the unit's name (lowercase letters, digits and -)")
	case len(name) > MaxNameLen:
		c.fail("name", "%q is %d characters; at most %d", name, len(name), MaxNameLen)
	case !nameRe.MatchString(name):
		c.fail("name", "%q is not a valid name: use lowercase letters, digits and -, starting and ending with a letter or digit (it becomes an etcd key and a systemd unit name, so no /, :, .., spaces or upper case)", name)
	}
}

func (c *checker) checkScheduling(s *Spec) {
	c.checkReplicas(s)
	if s.MachineID != "" {
		c.checkMachineID(s)
	}
	switch s.Engine {
	case "", EngineRkt, EngineDocker, EnginePodman:
	default:
		c.fail("engine", "%q is not an engine: use rkt (the default), docker or podman", s.Engine)
	}
	for i, m := range s.Machine {
		c.checkMachine(fmt.Sprintf("machine[%d]", i), m)
	}
	for i, p := range s.Conflicts {
		if msg := checkConflict(p); msg != "" {
			c.fail(fmt.Sprintf("conflicts[%d]", i), "%s", msg)
		}
	}
}

// checkReplicas checks replicas and maxReplicasPerHost: in range, and
// left out of a global unit or one pinned with machineId.
func (c *checker) checkReplicas(s *Spec) {
	if s.Replicas < 0 || s.Replicas > MaxReplicas {
		c.fail("replicas", "%d is out of range: 1 to %d (leave it out for a single unit)", s.Replicas, MaxReplicas)
	}
	if s.MaxReplicasPerHost < 0 {
		c.fail("maxReplicasPerHost", "%d must not be negative", s.MaxReplicasPerHost)
	}
	// replicas: 1 (and maxReplicasPerHost: 1, monder/kaylee's default for
	// it) is what a global or pinned unit runs anyway: accepted, as the
	// JSON monder/kaylee's users stored may say it.
	switch {
	case s.Global && s.Replicas > 1:
		c.fail("replicas", "%d with global: a global unit runs one instance on every matching machine (monder/kaylee ran %d global units, %d instances on each): remove replicas, or set it to 1; for more instances on each machine, store more units (%s-1, %s-2, ...) each global",
			s.Replicas, s.Replicas, s.Replicas, s.Name, s.Name)
	case s.MachineID != "" && s.Replicas > 1:
		c.fail("replicas", "%d with machineId: a unit pinned with machineId runs one instance, replaced stop-first on update (monder/kaylee ran %d pinned units; Kaylee's scheduler has no rolling update for replicas pinned to one machine): remove replicas, or set it to 1; for %d replicas on that machine, drop machineId, give the machine fleet metadata of its own (host=NAME in its fleetd config) and write machine: [host=NAME], replicas: %d, maxReplicasPerHost: %d",
			s.Replicas, s.Replicas, s.Replicas, s.Replicas, s.Replicas)
	}
	for _, only := range []struct {
		set  bool
		name string
	}{{s.Global, "global"}, {s.MachineID != "", "machineId"}} {
		if only.set && s.MaxReplicasPerHost > 1 {
			c.fail("maxReplicasPerHost", "has no effect on a unit with %s: remove it", only.name)
		}
	}
}

// checkMachineID checks a unit pinned with machineId: a well-formed ID,
// and none of the placement fields that pinning overrides.
func (c *checker) checkMachineID(s *Spec) {
	if !machineIDRe.MatchString(s.MachineID) {
		c.fail("machineId", "%q is not a machine ID (letters and digits, as in /etc/machine-id)", s.MachineID)
	}
	if s.Global {
		c.fail("global", "a unit cannot be both global and pinned with machineId: choose one")
	}
	if len(s.Conflicts) > 0 {
		c.fail("conflicts", "fleet does not accept conflicts on a unit pinned with machineId: remove one of them")
	}
	if len(s.Machine) > 0 {
		c.fail("machine", "has no effect with machineId: remove one of them")
	}
}

// checkMachine checks one machine metadata constraint, key=value, in the
// form fleet keeps (it silently drops any other).
func (c *checker) checkMachine(field, m string) {
	k, v, ok := strings.Cut(m, "=")
	switch {
	case strings.Contains(m, "!="):
		c.fail(field, "%q: fleet has no != in machine metadata; use key=value", m)
	case !ok || !metaKeyRe.MatchString(k) || v == "" || strings.ContainsFunc(v, unicode.IsSpace):
		c.fail(field, "%q must be key=value (fleet silently drops anything else)", m)
	case !ValidMetadataValue(v):
		c.fail(field, "%q: the value %q holds =, a quote or a backslash, and fleet silently drops such a constraint (the unit would run anywhere)", m, v)
	}
}

func (c *checker) checkApps(s *Spec) {
	if len(s.Apps) == 0 {
		c.fail("apps", "required: at least one app with an image")
		return
	}
	if s.EngineName() == EngineDocker && len(s.Apps) > 1 {
		c.fail("apps", "engine docker runs one app per unit, found %d: split them into units, or use engine podman, which runs them as one pod", len(s.Apps))
	}
	for i, a := range s.Apps {
		field := fmt.Sprintf("apps[%d]", i)
		switch {
		case a.Image == "":
			c.fail(field+".image", "required: the image to run")
		case strings.ContainsFunc(a.Image, unicode.IsSpace):
			c.fail(field+".image", "%q must not contain spaces", a.Image)
		case !imageRe.MatchString(a.Image):
			c.fail(field+".image", "%q is not an image reference: letters, digits and . _ / : @ + = , ~ - (no quotes, $, ; or backslash: it is a word of the Exec line)", a.Image)
		}
		switch {
		case s.EngineName() == EngineRkt && strings.ContainsFunc(a.Cmd, unicode.IsSpace):
			c.fail(field+".cmd", "%q must be one path (rkt --exec): put its arguments in args", a.Cmd)
		default:
			c.checkExec(field+".cmd", a.Cmd)
		}
		for j, w := range a.Args {
			c.checkExec(fmt.Sprintf("%s.args[%d]", field, j), w)
		}
		c.checkPull(field+".pull", a.Pull)
	}
}

func (c *checker) checkPull(field, pull string) {
	if pull == "" || slices.Contains(pullPolicies, pull) {
		return
	}
	msg := fmt.Sprintf("%q is not a pull policy", pull)
	if s := suggest(pull, pullPolicies); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	c.fail(field, "%s: use missing (fetch only an image the host does not have; docker's and podman's default), always (fetch before every start; rkt's default) or never (use only what the host has)", msg)
}

// checkHealth checks a health block. The check's words become arguments of
// an Exec line, so they are held to a charset that needs no quoting.
func (c *checker) checkHealth(h *Health) {
	var kinds []string
	if h.HTTP != nil {
		kinds = append(kinds, HealthHTTP)
		c.checkHealthPort("health.http.port", h.HTTP.Port)
		c.checkHealthPath("health.http.path", h.HTTP.Path)
	}
	if h.TCP != nil {
		kinds = append(kinds, HealthTCP)
		c.checkHealthPort("health.tcp.port", h.TCP.Port)
	}
	if len(h.Exec) > 0 {
		kinds = append(kinds, HealthExec)
		c.checkHealthExec("health.exec", h.Exec)
	}
	switch len(kinds) {
	case 0:
		c.fail("health", "needs one check: http (port and path), tcp (port) or exec (a command)")
	case 1:
	default:
		c.fail("health", "has %s and %s: give exactly one check of http, tcp and exec", strings.Join(kinds[:len(kinds)-1], ", "), kinds[len(kinds)-1])
	}
	for _, d := range []struct{ field, value, def string }{
		{"health.interval", h.Interval, "5s"},
		{"health.timeout", h.Timeout, "2s"},
		{"health.startPeriod", h.StartPeriod, "60s"},
	} {
		c.checkHealthDuration(d.field, d.value, d.def)
	}
	if h.Failures < 0 || h.Failures > MaxHealthFailures {
		c.fail("health.failures", "%d is out of range: 1 to %d (default %d)", h.Failures, MaxHealthFailures, DefaultHealthFailures)
	}
}

// checkHealthPath checks an http check's path (optional).
func (c *checker) checkHealthPath(field, p string) {
	switch {
	case p == "":
	case len(p) > MaxHealthPathLen:
		c.fail(field, "is %d bytes; at most %d", len(p), MaxHealthPathLen)
	case !strings.HasPrefix(p, "/"):
		c.fail(field, "%q must start with /", p)
	case !healthPathRe.MatchString(p):
		c.fail(field, "%q may only hold letters, digits and / . _ ~ ? = & - (no %%, spaces, quotes or $)", p)
	}
}

// checkHealthExec checks an exec check's command: a bounded number of
// words, each needing no quoting, the first an absolute path.
func (c *checker) checkHealthExec(field string, words []string) {
	if len(words) > MaxHealthExecWords {
		c.fail(field, "%d words; at most %d", len(words), MaxHealthExecWords)
	}
	for i, w := range words {
		wf := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case !healthWordRe.MatchString(w):
			c.fail(wf, "%q may only hold letters, digits and _ . / : = , @ + - (no spaces, quotes, $ or %%: the words are passed as they are, never through a shell)", w)
		case i == 0 && !strings.HasPrefix(w, "/"):
			c.fail(wf, "%q must be an absolute path: the command the machine runs", w)
		}
	}
}

// checkHealthDuration checks one of the check's durations (optional), def
// being its default as the error tells it.
func (c *checker) checkHealthDuration(field, value, def string) {
	if value == "" {
		return
	}
	if _, err := time.ParseDuration(value); err != nil {
		c.fail(field, "%q is not a duration: use a number with a unit, such as 5s, 500ms or 1m (default %s)", value, def)
	} else if _, ok := parseHealthDuration(value); !ok {
		c.fail(field, "%q is out of range: more than 0 and at most 1h (default %s)", value, def)
	}
}

func (c *checker) checkHealthPort(field string, port int) {
	switch {
	case port == 0:
		c.fail(field, "required: the port to check, 1 to 65535")
	case port < 0 || port > 65535:
		c.fail(field, "%d is out of range: 1 to 65535", port)
	}
}

func (c *checker) checkEnv(field string, e EnvVar, before []EnvVar) {
	switch {
	case !envNameRe.MatchString(e.Name):
		c.fail(field+".name", "%q is not a variable name (letters, digits and _, not starting with a digit)", e.Name)
	case e.Name == "KAYLEE_ID":
		c.fail(field+".name", "KAYLEE_ID is set by Kaylee for each instance")
	case e.Name == MemberVar:
		c.fail(field+".name", "%s is set by Kaylee for each member of a stateful unit", MemberVar)
	}
	for _, b := range before {
		if b.Name == e.Name {
			c.fail(field+".name", "%s is given twice", e.Name)
		}
	}
}

// checkVolume checks a volume v as rendered; errors quote it as written.
func (c *checker) checkVolume(field string, v, written Volume) {
	if !isAbsPath(v.Path) || strings.ContainsAny(v.Path, ",:") {
		c.fail(field+".path", "%q must be an absolute path in the container, without spaces, quotes, backslashes, commas or colons", v.Path)
	}
	if v.Driver == "" {
		if !isAbsPath(v.Source) || strings.ContainsAny(v.Source, ",:") {
			c.fail(field+".source", "%q must be an absolute host path without spaces, quotes, backslashes, commas or colons (a volume without driver mounts a host path)", written.Source)
		}
		if v.Options != "" {
			c.fail(field+".options", "options are for volume drivers; this volume has no driver")
		}
		return
	}
	c.checkExec(field+".options", v.Options)
	if !driverRe.MatchString(v.Driver) || v.Driver == mountServicePrefix {
		c.fail(field+".driver", "%q is not a driver name (lowercase letters, digits, - and _; systemd-mountservice-<service> for a systemd template)", v.Driver)
	}
	if !volumeIDRe.MatchString(v.ID) {
		c.fail(field+".id", "%q: a volume with a driver needs an id (letters, digits, ., _ and -)", written.ID)
	}
	if v.Source != "" && (strings.HasPrefix(v.Source, "/") || pathProblem(v.Source) != "" || strings.ContainsAny(v.Source, ",:")) {
		c.fail(field+".source", "%q must be a relative path inside the volume, without .., spaces, quotes, backslashes, commas or colons", written.Source)
	}
}

func isAbsPath(p string) bool {
	return strings.HasPrefix(p, "/") && pathProblem(p) == ""
}

func containsDotDot(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return true
		}
	}
	return false
}

// eachString calls f with the path and value of every string in the spec.
func eachString(s *Spec, f func(field, value string)) {
	list := func(field string, vs []string) {
		for i, v := range vs {
			f(fmt.Sprintf("%s[%d]", field, i), v)
		}
	}
	f("name", s.Name)
	f("engine", s.Engine)
	list("envFiles", s.EnvFiles)
	for i, e := range s.Env {
		f(fmt.Sprintf("env[%d].name", i), e.Name)
		f(fmt.Sprintf("env[%d].value", i), e.Value)
		list(fmt.Sprintf("env[%d].recipients", i), e.Recipients)
	}
	for i, v := range s.Volumes {
		p := fmt.Sprintf("volumes[%d]", i)
		f(p+".id", v.ID)
		f(p+".driver", v.Driver)
		f(p+".source", v.Source)
		f(p+".path", v.Path)
		f(p+".options", v.Options)
	}
	f("net", s.Net)
	for i, a := range s.Apps {
		p := fmt.Sprintf("apps[%d]", i)
		f(p+".image", a.Image)
		f(p+".cmd", a.Cmd)
		list(p+".args", a.Args)
		f(p+".pull", a.Pull)
	}
	list("args", s.Args)
	list("machine", s.Machine)
	f("machineId", s.MachineID)
	list("conflicts", s.Conflicts)
	if h := s.Health; h != nil {
		if h.HTTP != nil {
			f("health.http.path", h.HTTP.Path)
		}
		list("health.exec", h.Exec)
		f("health.interval", h.Interval)
		f("health.timeout", h.Timeout)
		f("health.startPeriod", h.StartPeriod)
	}
	if u := s.Update; u != nil {
		f("update.maxSurge", string(u.MaxSurge))
		f("update.minReady", u.MinReady)
		f("update.progressDeadline", u.ProgressDeadline)
		f("update.strategy", u.Strategy)
		f("update.maxUnavailable", string(u.MaxUnavailable))
		f("update.order", u.Order)
	}
	f("onMachineLoss", s.OnMachineLoss)
	if p := s.Primary; p != nil {
		if p.HTTP != nil {
			f("primary.http.path", p.HTTP.Path)
		}
		list("primary.exec", p.Exec)
	}
}

var portNameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$`)

// checkPorts: each port a name (unique), a number and tcp or udp.
func (c *checker) checkPorts(ports []Port) {
	seen := map[string]int{}
	for i, p := range ports {
		field := fmt.Sprintf("ports[%d]", i)
		switch {
		case !portNameRe.MatchString(p.Name):
			c.fail(field+".name", "%q: use 1 to 15 lowercase letters, digits and - (as http or metrics)", p.Name)
		case seen[p.Name] > 0:
			c.fail(field+".name", "%q is also ports[%d]: port names must be unique", p.Name, seen[p.Name]-1)
		}
		seen[p.Name] = i + 1
		if p.Port < 1 || p.Port > 65535 {
			c.fail(field+".port", "%d is not a port: 1 to 65535", p.Port)
		}
		if p.Protocol != "" && p.Protocol != "tcp" && p.Protocol != "udp" {
			c.fail(field+".protocol", "%q: use tcp (the default) or udp", p.Protocol)
		}
	}
}

// checkSpread: a key name, a skew of at least 1, and replicas to spread.
func (c *checker) checkSpread(s *Spec) {
	sp := s.Spread
	switch {
	case s.Global:
		c.fail("spread", "has no effect on a global unit (it runs on every matching machine): remove spread")
	case s.MachineID != "":
		c.fail("spread", "has no effect on a unit with machineId (it runs on that machine): remove spread")
	case !s.Replicated():
		c.fail("spread", "needs replicas: a single instance runs in one place")
	}
	if !metadataKeyRe.MatchString(sp.Key) {
		c.fail("spread.key", "%q is not a machine metadata key: letters, digits, '.', '_' and '-' (as az or rack)", sp.Key)
	}
	if sp.MaxSkew < 0 {
		c.fail("spread.maxSkew", "%d: use at least 1 (the default)", sp.MaxSkew)
	}
	for _, m := range s.Machine {
		if k, _, _ := strings.Cut(m, "="); k == sp.Key {
			c.fail("spread.key", "%q is also constrained by machine (%s): spread over a key the unit leaves free", sp.Key, m)
		}
	}
}
