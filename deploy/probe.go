package deploy

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/fleet/schema"
)

// A stateful unit with a primary probe and update.order primary-last or
// primary-first asks its members which is the primary before it updates
// any: one probe fleet unit per member, pinned to the member's machine,
// that runs the probe once against the member's running instance
// (healthScript, as the health check runs) and stays active/exited when
// it passed, failed when not.

// probeTag stands where a member's conflict group stands in a probe's
// name: not hex, so ParseUnitName never takes a probe for a member.
const probeTag = "primary"

// Probe timings: one probe is asked once (tried again a second later if
// it did not pass at once), each try bounded by probeTimeout.
const (
	probeTimeout      = 2 * time.Second
	probeStartTimeout = "30"
)

// ProbeName is the name of the fleet unit that asks member Index of the
// Kaylee unit Name whether it is the primary, for the rollout of spec
// SpecHash: <prefix>:<name>:<spechash>:primary:<index>.service. It
// matches <prefix>:<name>:*.service like the unit's members (the
// Conflicts of a unit without replicas, a `conflicts:` entry), and never
// parses as a member (see ParseUnitName).
type ProbeName struct {
	Prefix   string
	Name     string // the Kaylee unit's name
	SpecHash string // the spec the members are updated to
	Index    int    // the member's ordinal
}

func (p ProbeName) String() string {
	return fmt.Sprintf("%s:%s:%s:%s:%d.service", p.Prefix, p.Name, p.SpecHash, probeTag, p.Index)
}

// ParseProbeName splits a probe's fleet unit name rendered with the given
// prefix; false for every other name.
func ParseProbeName(prefix, s string) (ProbeName, bool) {
	rest, ok := strings.CutSuffix(s, ".service")
	if !ok {
		return ProbeName{}, false
	}
	parts := strings.Split(rest, ":")
	if len(parts) != 5 || parts[0] != prefix || !nameRe.MatchString(parts[1]) ||
		!isHex(parts[2], 8) || parts[3] != probeTag {
		return ProbeName{}, false
	}
	i, err := strconv.Atoi(parts[4])
	if err != nil || i < 0 || strconv.Itoa(i) != parts[4] {
		return ProbeName{}, false
	}
	return ProbeName{Prefix: prefix, Name: parts[1], SpecHash: parts[2], Index: i}, true
}

// RenderProbe renders the primary probe of one member of a stateful unit:
// a Type=oneshot fleet unit named name, pinned to machine (where the
// member runs), that runs s.Primary once against member, the member's
// running fleet unit (its instance ID names its docker container; rkt's
// check goes to 127.0.0.1, as the health check's). With
// RemainAfterExit=yes, fleet shows active/exited when the member answered
// as the primary, failed when not.
func RenderProbe(s *Spec, name ProbeName, member UnitName, machine string) (*schema.Unit, error) {
	p := s.Primary
	if p == nil || p.Kind() == "" {
		return nil, fmt.Errorf("%s has no primary probe (primary: with http or exec)", s.Name)
	}
	c := &checker{lineOf: func(string) int { return 0 }}
	c.checkProbe("primary", p)
	if len(c.errs) > 0 {
		fe := c.errs[0].(*FieldError)
		return nil, fmt.Errorf("%s: %s", fe.Field, fe.Msg)
	}
	if !machineIDRe.MatchString(machine) || len(machine) > 64 {
		return nil, fmt.Errorf("probe of member %d of %s: machine ID %q is not letters and digits", name.Index, s.Name, machine)
	}
	ck := check{kind: p.Kind(), exec: p.Exec, every: time.Second, limit: probeTimeout, start: time.Second, failures: 1, docker: "-"}
	if p.HTTP != nil {
		ck.port, ck.path = p.HTTP.Port, p.HTTP.RequestPath()
	}
	r := renderer{spec: s, name: member}
	target := r.idWord("", "")
	switch s.EngineName() {
	case EngineDocker:
		ck.docker = DockerPath
	case EnginePodman:
		ck.docker, target = PodmanPath, r.idWord("", podInfraSuffix)
	}
	r.add("Unit", "Description", fmt.Sprintf("kaylee %s primary probe of member %d on machine %.8s (spec %s)", s.Name, name.Index, machine, name.SpecHash))
	r.add("Service", "Type", "oneshot")
	r.add("Service", "RemainAfterExit", "yes")
	// The member's environment, as its health check has it (an exec
	// probe finds its container by KAYLEE_ID).
	r.environment()
	r.add("Service", "TimeoutStartSec", probeStartTimeout)
	r.add("Service", "ExecStart", ck.line("kaylee-primary", target))
	r.add("X-Fleet", "MachineID", machine)
	u := &schema.Unit{Name: name.String(), DesiredState: "launched", Options: r.opts}
	if err := checkLines(s, u); err != nil {
		return nil, err
	}
	return u, nil
}
