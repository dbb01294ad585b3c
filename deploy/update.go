package deploy

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Update is a unit's rollout policy. Every field is optional and overrides
// the scheduler's flag of the same meaning. The policy is not part of the
// spec hash (changing it rolls nothing out), except Strategy, which
// changes how a global unit is rendered.
type Update struct {
	// MaxSurge: how many new replicas may run on top of the desired count
	// during a rollout of a replicated unit: a count ("2") or a percentage
	// of the replicas ("25%", rounded up). Default 1. Kaylee never has
	// fewer serving replicas than desired, so there is no maxUnavailable
	// for replicated units.
	MaxSurge Amount `json:"maxSurge,omitempty" yaml:"maxSurge"`
	// MinReady: how long a new replica must run (and pass its health
	// check) before it counts as ready and an old one goes.
	MinReady string `json:"minReady,omitempty" yaml:"minReady"`
	// ProgressDeadline: a rollout in which no new replica became ready for
	// this long fails.
	ProgressDeadline string `json:"progressDeadline,omitempty" yaml:"progressDeadline"`
	// Strategy of a global unit: "rolling" runs it as one fleet unit per
	// matching machine and replaces it on MaxUnavailable machines at a
	// time; empty keeps fleet's single Global=true unit, replaced on every
	// machine at once.
	Strategy string `json:"strategy,omitempty" yaml:"strategy"`
	// MaxUnavailable: with strategy rolling, on how many machines at a
	// time a global unit is being replaced: a count or a percentage of the
	// machines (rounded down, at least 1). Default 1.
	//
	// For a stateful unit: how many members may be down (stopped for their
	// update) at a time, a count or a percentage of the members (rounded
	// down, at least 1). Default 1.
	MaxUnavailable Amount `json:"maxUnavailable,omitempty" yaml:"maxUnavailable"`
	// Order in which a stateful unit's members are updated: highest-first
	// (the default), primary-last or primary-first (these two need the
	// unit's primary probe). See OrderOf.
	Order string `json:"order,omitempty" yaml:"order"`
}

// StrategyRolling is the strategy of a global unit replaced machine by
// machine.
const StrategyRolling = "rolling"

// Limits of the update policy.
const (
	MaxUpdateDuration = 24 * time.Hour
)

// Amount is a count ("2") or a percentage ("25%") of a unit's replicas or
// machines. In JSON a count is a number and a percentage a string.
type Amount string

var (
	countRe   = regexp.MustCompile(`^[0-9]{1,7}$`)
	percentRe = regexp.MustCompile(`^[0-9]{1,3}%$`)
)

// MarshalJSON writes a count as a number and a percentage as a string.
func (a Amount) MarshalJSON() ([]byte, error) {
	if countRe.MatchString(string(a)) {
		n, _ := strconv.Atoi(string(a))
		return []byte(strconv.Itoa(n)), nil
	}
	return []byte(strconv.Quote(string(a))), nil
}

// UnmarshalJSON reads a number or a string.
func (a *Amount) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		s, err := strconv.Unquote(string(b))
		if err != nil {
			return err
		}
		*a = Amount(s)
		return nil
	}
	*a = Amount(b)
	return nil
}

// Of resolves the amount against a total: a count as it is, a percentage
// of total rounded up (roundUp) or down, never below floor. ok is false for
// an amount that is neither (see Validate).
func (a Amount) Of(total int, roundUp bool, floor int) (n int, ok bool) {
	s := string(a)
	switch {
	case countRe.MatchString(s):
		n, _ = strconv.Atoi(s)
	case percentRe.MatchString(s):
		p, _ := strconv.Atoi(strings.TrimSuffix(s, "%"))
		f := float64(total) * float64(p) / 100
		if roundUp {
			n = int(math.Ceil(f))
		} else {
			n = int(math.Floor(f))
		}
	default:
		return floor, false
	}
	return max(n, floor), true
}

// SurgeOf returns how many new replicas may run on top of desired ones
// during a rollout of a unit of n replicas (default 1).
func (u *Update) SurgeOf(n int) int {
	if u == nil || u.MaxSurge == "" {
		return 1
	}
	s, _ := u.MaxSurge.Of(n, true, 1)
	return s
}

// UnavailableOf returns on how many of n machines a rolling global unit
// may be replaced at once, or how many of a stateful unit's n members may
// be down for their update at once (default 1).
func (u *Update) UnavailableOf(n int) int {
	if u == nil || u.MaxUnavailable == "" {
		return 1
	}
	s, _ := u.MaxUnavailable.Of(n, false, 1)
	return s
}

// MinReadyDuration returns the unit's minReady, or def when it has none.
func (u *Update) MinReadyDuration(def time.Duration) time.Duration {
	if u == nil {
		return def
	}
	if d, ok := parseUpdateDuration(u.MinReady, true); ok {
		return d
	}
	return def
}

// ProgressDeadlineDuration returns the unit's progressDeadline, or def
// when it has none.
func (u *Update) ProgressDeadlineDuration(def time.Duration) time.Duration {
	if u == nil {
		return def
	}
	if d, ok := parseUpdateDuration(u.ProgressDeadline, false); ok {
		return d
	}
	return def
}

// Rolling reports whether the spec is a global unit rolled machine by
// machine.
func (s *Spec) Rolling() bool {
	return s.Global && s.Update != nil && s.Update.Strategy == StrategyRolling
}

// parseUpdateDuration reads a duration of the update block: Go syntax, at
// most MaxUpdateDuration, and more than 0 (or 0 too, with zeroOK).
func parseUpdateDuration(v string, zeroOK bool) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d == 0 && !zeroOK || d > MaxUpdateDuration {
		return 0, false
	}
	return d, true
}

// checkUpdate checks an update block against the unit it belongs to.
func (c *checker) checkUpdate(s *Spec) {
	c.checkStrategy(s)
	c.checkPace(s)
	c.checkOrder(s)
	c.checkUpdateDurations(s.Update)
}

// checkStrategy checks update.strategy.
func (c *checker) checkStrategy(s *Spec) {
	u := s.Update
	switch u.Strategy {
	case "":
	case StrategyRolling:
		if !s.Global {
			c.fail("update.strategy", "rolling applies to a global unit (global: true); a unit with replicas always rolls, within maxSurge")
		}
		if len(s.Conflicts) > 0 {
			c.fail("update.strategy", "a rolling global unit runs as one fleet unit pinned to each machine (MachineID), which fleet does not allow with conflicts: drop conflicts or the strategy")
		}
	default:
		msg := fmt.Sprintf("%q is not a strategy", u.Strategy)
		if sg := suggest(u.Strategy, []string{StrategyRolling}); sg != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", sg)
		}
		c.fail("update.strategy", "%s: use rolling (a global unit replaced machine by machine) or leave it out", msg)
	}
}

// checkPace checks update.maxSurge and update.maxUnavailable against the
// kind of unit each applies to.
func (c *checker) checkPace(s *Spec) {
	u := s.Update
	if u.MaxSurge != "" {
		c.checkAmount("update.maxSurge", u.MaxSurge, "1")
		if s.Stateful {
			c.fail("update.maxSurge", "a member never has two copies: stateful units are updated stop-then-start, see update.maxUnavailable")
		} else if !s.Replicated() {
			c.fail("update.maxSurge", "applies to a unit with replicas (not global, not pinned with machineId): this unit's old fleet unit stops before the new one starts")
		}
	}
	if u.MaxUnavailable != "" {
		c.checkAmount("update.maxUnavailable", u.MaxUnavailable, "1")
		if !s.Rolling() && !s.Stateful {
			c.fail("update.maxUnavailable", "applies to a global unit with strategy: rolling, or to a stateful unit; a unit with replicas never has fewer serving than desired (use maxSurge to go faster)")
		}
	}
}

// checkOrder checks update.order.
func (c *checker) checkOrder(s *Spec) {
	u := s.Update
	switch {
	case u.Order == "":
	case !s.Stateful:
		c.fail("update.order", "applies to a stateful unit (stateful: true), whose members are updated one after the other")
	case !slices.Contains(updateOrders, u.Order):
		c.fail("update.order", "%s: use highest-first (the default), primary-last or primary-first", notOneOf(u.Order, "an update order", updateOrders))
	case u.Order != OrderHighestFirst && s.Primary == nil:
		c.fail("update.order", "%s needs a primary probe (primary: with http or exec) to tell which member is the primary", u.Order)
	}
}

// checkUpdateDurations checks update.minReady and update.progressDeadline.
func (c *checker) checkUpdateDurations(u *Update) {
	for _, d := range []struct {
		field, value, def string
		zeroOK            bool
	}{
		{"update.minReady", u.MinReady, "the scheduler's minimum, 10s", true},
		{"update.progressDeadline", u.ProgressDeadline, "the scheduler's rollout timeout, 5m", false},
	} {
		if d.value == "" {
			continue
		}
		if _, err := time.ParseDuration(d.value); err != nil {
			c.fail(d.field, "%q is not a duration: use a number with a unit, such as 30s or 10m (default %s)", d.value, d.def)
		} else if _, ok := parseUpdateDuration(d.value, d.zeroOK); !ok {
			low := "more than 0"
			if d.zeroOK {
				low = "0"
			}
			c.fail(d.field, "%q is out of range: %s to %s (default %s)", d.value, low, "24h", d.def)
		}
	}
}

// checkAmount checks a count or percentage: a count from 1 to MaxReplicas,
// a percentage from 1% to 100%.
func (c *checker) checkAmount(field string, a Amount, def string) {
	s := string(a)
	switch {
	case countRe.MatchString(s):
		if n, _ := strconv.Atoi(s); n < 1 || n > MaxReplicas {
			c.fail(field, "%s is out of range: 1 to %d, or a percentage such as 25%% (default %s)", s, MaxReplicas, def)
		}
	case percentRe.MatchString(s):
		if p, _ := strconv.Atoi(strings.TrimSuffix(s, "%")); p < 1 || p > 100 {
			c.fail(field, "%s is out of range: 1%% to 100%% (default %s)", s, def)
		}
	default:
		c.fail(field, "%q is neither a count nor a percentage: use a whole number such as 2 or a percentage such as 25%% (default %s)", s, def)
	}
}
