package deploy

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/coreos/fleet/schema"
)

// A stateful unit (stateful: true, with replicas) runs its replicas as
// members: member i has the stable ordinal i (0..replicas-1), keeps its
// machine and its data, and renders as one fleet unit named
// <prefix>:<name>:<hash>:<group>:<i>.service whatever its placement. The
// scheduler places members (RenderOptions.Members) and updates them
// stop-then-start in update.order, at most update.maxUnavailable at a time.

// Policies of onMachineLoss: what the scheduler does with a member whose
// machine is gone.
const (
	MachineLossWait = "wait" // the default: the member waits for its machine (and its data) to come back
	MachineLossMove = "move" // the member starts again on another machine
)

// machineLossPolicies are the values onMachineLoss accepts, the default first.
var machineLossPolicies = []string{MachineLossWait, MachineLossMove}

// Orders of update.order: in which order a stateful unit's members are
// updated.
const (
	OrderHighestFirst = "highest-first" // the default: ordinal replicas-1 down to 0
	OrderPrimaryLast  = "primary-last"  // highest-first, the primary last
	OrderPrimaryFirst = "primary-first" // the primary first, then highest-first
)

// updateOrders are the values update.order accepts, the default first.
var updateOrders = []string{OrderHighestFirst, OrderPrimaryLast, OrderPrimaryFirst}

// MemberVar is the variable a stateful unit's members get their ordinal
// in (Environment=KAYLEE_MEMBER=<i>, passed into the container), and
// MemberRef its reference, replaced by the ordinal in a volume's id and
// source at render time.
const (
	MemberVar = "KAYLEE_MEMBER"
	MemberRef = "${" + MemberVar + "}"
)

// Probe is a stateful unit's primary probe: it passes (an http check
// answers 2xx or 3xx, an exec check exits 0) on the member that is the
// primary. Exactly one of HTTP and Exec is set; they are the health
// check's kinds and follow its rules.
type Probe struct {
	HTTP *HTTPCheck `json:"http,omitempty" yaml:"http"`
	Exec []string   `json:"exec,omitempty" yaml:"exec"` // a command run on the member's machine, absolute path first
}

// Kind returns which check the probe holds: http, exec, or "" when it
// holds none or both (see Validate).
func (p *Probe) Kind() string {
	switch {
	case p.HTTP != nil && len(p.Exec) == 0:
		return HealthHTTP
	case p.HTTP == nil && len(p.Exec) > 0:
		return HealthExec
	}
	return ""
}

// Members returns how many members a stateful unit has (its replicas), or
// 0 for a unit that is not stateful.
func (s *Spec) Members() int {
	if !s.Stateful {
		return 0
	}
	return s.Replicas
}

// MachineLoss returns the unit's onMachineLoss policy, applying the
// default (wait).
func (s *Spec) MachineLoss() string {
	if s.OnMachineLoss == "" {
		return MachineLossWait
	}
	return s.OnMachineLoss
}

// OrderName returns the update order of a stateful unit's members,
// applying the default (highest-first). u may be nil.
func (u *Update) OrderName() string {
	if u == nil || u.Order == "" {
		return OrderHighestFirst
	}
	return u.Order
}

// OrderOf returns the ordinals of n members in the order they are
// updated. primary is the ordinal of the member that is the primary now,
// or -1 when none is known (then primary-first and primary-last are
// highest-first). u may be nil.
func (u *Update) OrderOf(n, primary int) []int {
	out := make([]int, 0, n)
	for i := n - 1; i >= 0; i-- {
		out = append(out, i)
	}
	if primary < 0 || primary >= n {
		return out
	}
	switch u.OrderName() {
	case OrderPrimaryLast:
		out = append(slices.DeleteFunc(out, func(i int) bool { return i == primary }), primary)
	case OrderPrimaryFirst:
		out = append([]int{primary}, slices.DeleteFunc(out, func(i int) bool { return i == primary })...)
	}
	return out
}

// MemberVolumes returns the spec's volumes as member ordinal renders
// them: MemberRef in each id and source replaced by the ordinal.
func (s *Spec) MemberVolumes(ordinal int) []Volume {
	out := slices.Clone(s.Volumes)
	o := strconv.Itoa(ordinal)
	for i := range out {
		out[i].ID = strings.ReplaceAll(out[i].ID, MemberRef, o)
		out[i].Source = strings.ReplaceAll(out[i].Source, MemberRef, o)
	}
	return out
}

// varRefRe finds ${NAME} references (and unterminated ones) in a value.
var varRefRe = regexp.MustCompile(`\$\{[^}]*\}?`)

// checkStateful checks stateful, onMachineLoss and primary against the
// rest of the spec.
func (c *checker) checkStateful(s *Spec) {
	if s.Stateful {
		switch {
		case s.Global:
			c.fail("stateful", "a global unit runs on every matching machine and has no members: remove stateful or global")
		case s.MachineID != "":
			c.fail("stateful", "a unit pinned with machineId is one instance on that machine, not members: remove stateful or machineId")
		case s.Replicas < 1:
			c.fail("stateful", "needs replicas (at least 1): the number of members")
		}
		if len(s.Conflicts) > 0 {
			c.fail("conflicts", "a placed member is pinned to its machine (MachineID), which fleet does not allow with conflicts: remove conflicts or stateful")
		}
	}
	if s.OnMachineLoss != "" {
		if !s.Stateful {
			c.fail("onMachineLoss", "applies to a stateful unit (stateful: true)")
		} else if !slices.Contains(machineLossPolicies, s.OnMachineLoss) {
			c.fail("onMachineLoss", "%s: use wait (the default: the member waits for its machine to come back, with its data) or move (it starts again on another machine)", notOneOf(s.OnMachineLoss, "an onMachineLoss policy", machineLossPolicies))
		}
	}
	if p := s.Primary; p != nil {
		if !s.Stateful {
			c.fail("primary", "applies to a stateful unit (stateful: true)")
		}
		c.checkProbe("primary", p)
	}
	c.checkMemberRefs(s)
}

// checkProbe checks a primary probe with the health check's rules.
func (c *checker) checkProbe(field string, p *Probe) {
	if p.HTTP != nil {
		c.checkHealthPort(field+".http.port", p.HTTP.Port)
		c.checkHealthPath(field+".http.path", p.HTTP.Path)
	}
	if len(p.Exec) > 0 {
		c.checkHealthExec(field+".exec", p.Exec)
	}
	switch {
	case p.HTTP == nil && len(p.Exec) == 0:
		c.fail(field, "needs one check: http (port and path) or exec (a command)")
	case p.HTTP != nil && len(p.Exec) > 0:
		c.fail(field, "has http and exec: give exactly one check")
	}
}

// checkMemberRefs: MemberRef only in a volume's id and source, only in a
// stateful unit, and no other ${...} there.
func (c *checker) checkMemberRefs(s *Spec) {
	eachString(s, func(field, v string) {
		if !strings.Contains(v, "${") {
			return
		}
		if !isMemberField(field) {
			if strings.Contains(v, MemberRef) {
				c.fail(field, "%s is replaced only in a volume's id and source", MemberRef)
			}
			return
		}
		for _, ref := range varRefRe.FindAllString(v, -1) {
			if ref != MemberRef {
				c.fail(field, "%q: only %s is replaced in a volume's id and source", ref, MemberRef)
				return
			}
		}
		if !s.Stateful {
			c.fail(field, "%s is the ordinal of a stateful unit's member: this unit is not stateful (stateful: true)", MemberRef)
		}
	})
}

// isMemberField reports whether field is a volume's id or source, where
// MemberRef is replaced.
func isMemberField(field string) bool {
	return strings.HasPrefix(field, "volumes[") && (strings.HasSuffix(field, "].id") || strings.HasSuffix(field, "].source"))
}

// statefulWarnings warns of a stateful unit's volumes that every member
// shares: a driver's volume whose id, or a host directory whose source,
// does not hold MemberRef.
func statefulWarnings(d *Document) []*FieldError {
	s := &d.Spec
	if !s.Stateful {
		return nil
	}
	var out []*FieldError
	for i, v := range s.Volumes {
		field := fmt.Sprintf("volumes[%d].id", i)
		msg := fmt.Sprintf("all members of %s share one volume id (%q): write %s in it (as %s-%s) to give each member its own", s.Name, v.ID, MemberRef, v.ID, MemberRef)
		shared := !strings.Contains(v.ID, MemberRef)
		if v.Driver == "" {
			// A host directory: its source is what members share.
			field = fmt.Sprintf("volumes[%d].source", i)
			msg = fmt.Sprintf("all members of %s share one volume id: each mounts the host directory %s, which a member that moves finds another's data in; write %s in it (as %s/%s) to give each member its own", s.Name, v.Source, MemberRef, v.Source, MemberRef)
			shared = !strings.Contains(v.Source, MemberRef)
		}
		if shared {
			out = append(out, &FieldError{File: d.File, Line: d.LineOf(field), Field: field, Msg: msg})
		}
	}
	return out
}

// notOneOf says that v is not one of values, with a "did you mean".
func notOneOf(v, what string, values []string) string {
	msg := fmt.Sprintf("%q is not %s", v, what)
	if sg := suggest(v, values); sg != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", sg)
	}
	return msg
}

// renderMembers renders a stateful unit: one fleet unit per member, in
// ordinal order. A member's name does not depend on its placement; its
// group is a replica's (derived from the hash and the ordinal), so
// maxReplicasPerHost works as for replicas. A member placed on a machine
// (o.Members[i] != "") is pinned there with MachineID and has no
// Conflicts (fleet refuses the pair); one not placed renders as a replica.
func renderMembers(s *Spec, o RenderOptions, hash string) ([]*schema.Unit, error) {
	groups := 1
	if s.MaxReplicasPerHost > 0 {
		groups = s.MaxReplicasPerHost
	}
	units := make([]*schema.Unit, 0, s.Replicas)
	for i := 0; i < s.Replicas; i++ {
		machine := ""
		if i < len(o.Members) {
			machine = o.Members[i]
		}
		if machine != "" && (!machineIDRe.MatchString(machine) || len(machine) > 64) {
			return nil, fmt.Errorf("member %d of %s: machine ID %q is not letters and digits", i, s.Name, machine)
		}
		member := *s
		member.Volumes = s.MemberVolumes(i)
		name := UnitName{Prefix: o.UnitPrefix, Name: s.Name, SpecHash: hash, Group: groupID(hash, i%groups), Index: i}
		r := renderer{spec: &member, name: name, memberMachine: machine}
		if machine == "" && s.Spread != nil && i < len(o.Zones) && o.Zones[i] != "" {
			r.zone = s.Spread.Key + "=" + o.Zones[i]
		}
		u := &schema.Unit{Name: name.String(), DesiredState: "launched", Options: r.options(s.MaxReplicasPerHost > 0)}
		if err := checkLines(s, u); err != nil {
			return nil, err
		}
		units = append(units, u)
	}
	return units, nil
}
