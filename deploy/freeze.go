package deploy

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// A freeze window is a recurring time in which a git source applies no
// change: it starts at each time its cron schedule names, in its time
// zone, and lasts Duration. Windows are the shape of Argo CD's sync
// windows. A unit carries them in freeze:, a source in the config file;
// they change no fleet unit and are not part of the spec hash. Which
// windows hold a change of a unit: those of the unit as stored (so that
// a commit cannot lift its own freeze) and those of its source.
type FreezeWindow struct {
	// Schedule is a standard 5-field cron expression (minute hour
	// day-of-month month day-of-week), or @yearly, @monthly, @weekly,
	// @daily, @hourly.
	Schedule string `json:"schedule" yaml:"schedule"`
	// Duration is how long each window lasts, such as 62h or 30m.
	Duration string `json:"duration" yaml:"duration"`
	// TimeZone is an IANA time zone name (Europe/Berlin); empty is UTC.
	TimeZone string `json:"timeZone,omitempty" yaml:"timeZone"`
	// Reason is told with the freeze (status, events, notifications).
	Reason string `json:"reason,omitempty" yaml:"reason"`
}

// MaxFreezeDuration bounds a window's duration: a longer one is a
// permanent freeze in all but name (use suspend: for that).
const MaxFreezeDuration = 31 * 24 * time.Hour

// FreezeProblem is what is wrong with one field of a window.
type FreezeProblem struct {
	Field string // schedule, duration, timeZone or reason
	Msg   string
}

// Check lists what is wrong with the window, nil when nothing is.
func (w FreezeWindow) Check() []FreezeProblem {
	var out []FreezeProblem
	if _, err := w.schedule(); err != nil {
		out = append(out, FreezeProblem{"schedule", err.Error()})
	}
	if _, err := w.duration(); err != nil {
		out = append(out, FreezeProblem{"duration", err.Error()})
	}
	if _, err := w.location(); err != nil {
		out = append(out, FreezeProblem{"timeZone", err.Error()})
	}
	if strings.ContainsAny(w.Reason, "\n\r") {
		out = append(out, FreezeProblem{"reason", "one line: no newline"})
	} else if len(w.Reason) > 200 {
		out = append(out, FreezeProblem{"reason", fmt.Sprintf("is %d bytes; at most 200", len(w.Reason))})
	}
	return out
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func (w FreezeWindow) schedule() (cron.Schedule, error) {
	s := strings.TrimSpace(w.Schedule)
	switch {
	case s == "":
		return nil, fmt.Errorf("required: a cron expression such as \"0 18 * * FRI\" (minute hour day-of-month month day-of-week)")
	case strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ="):
		return nil, fmt.Errorf("%q: give the time zone in timeZone, not in the schedule", w.Schedule)
	case strings.HasPrefix(s, "@every"):
		return nil, fmt.Errorf("%q: @every is not a time of the calendar: use a cron expression such as \"0 18 * * FRI\"", w.Schedule)
	}
	sched, err := cronParser.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a cron expression (%v): use 5 fields, minute hour day-of-month month day-of-week, such as \"0 18 * * FRI\"", w.Schedule, err)
	}
	return sched, nil
}

func (w FreezeWindow) duration() (time.Duration, error) {
	if w.Duration == "" {
		return 0, fmt.Errorf("required: how long each window lasts, such as 62h or 30m")
	}
	d, err := time.ParseDuration(w.Duration)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%q is not a duration: use one such as 62h or 30m", w.Duration)
	case d <= 0:
		return 0, fmt.Errorf("%s: must be more than 0", w.Duration)
	case d > MaxFreezeDuration:
		return 0, fmt.Errorf("%s is more than %s (31 days): split it, or suspend the source instead", w.Duration, MaxFreezeDuration)
	}
	return d, nil
}

func (w FreezeWindow) location() (*time.Location, error) {
	if w.TimeZone == "" {
		return time.UTC, nil
	}
	if w.TimeZone == "Local" {
		return nil, fmt.Errorf("%q: name the zone (Europe/Berlin): Local differs between machines", w.TimeZone)
	}
	loc, err := time.LoadLocation(w.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("%q is not a known time zone: use an IANA name such as Europe/Berlin or America/New_York", w.TimeZone)
	}
	return loc, nil
}

// String is "0 18 * * FRI for 62h (Europe/Berlin): weekend".
func (w FreezeWindow) String() string {
	s := w.Schedule + " for " + w.Duration
	if w.TimeZone != "" {
		s += " (" + w.TimeZone + ")"
	}
	if w.Reason != "" {
		s += ": " + w.Reason
	}
	return s
}

// maxMerge bounds how many windows ActiveFreeze joins into one freeze.
const maxMerge = 1000

// ActiveFreeze reports whether one of the windows holds at now: the
// window that does (the first in the list when several do), and until
// when changes stay frozen, windows that overlap or touch joined (at
// most MaxFreezeDuration from now: windows that chain for ever). A window
// that does not check (see Check) holds nothing. A window starts at each
// wall-clock time its schedule names in its zone (a time a DST change
// skips or repeats is as cron in Go, github.com/robfig/cron/v3, takes
// it) and lasts its duration in real time.
func ActiveFreeze(windows []FreezeWindow, now time.Time) (FreezeWindow, time.Time, bool) {
	ps := parseWindows(windows)
	var active FreezeWindow
	var until time.Time
	found := false
	for _, p := range ps {
		if e, ok := p.end(now); ok {
			if !found {
				active = p.w
			}
			found = true
			if e.After(until) {
				until = e
			}
		}
	}
	if !found {
		return FreezeWindow{}, time.Time{}, false
	}
	return active, joinWindows(ps, until, now.Add(MaxFreezeDuration)).UTC(), true
}

// parsedWindow is a window that checks, parsed.
type parsedWindow struct {
	w     FreezeWindow
	sched cron.Schedule
	dur   time.Duration
	loc   *time.Location
}

// parseWindows parses the windows that check and leaves out the others.
func parseWindows(windows []FreezeWindow) []parsedWindow {
	var ps []parsedWindow
	for _, w := range windows {
		sched, err1 := w.schedule()
		dur, err2 := w.duration()
		loc, err3 := w.location()
		if err1 == nil && err2 == nil && err3 == nil {
			ps = append(ps, parsedWindow{w, sched, dur, loc})
		}
	}
	return ps
}

// end returns the end of the window of p that holds at t, if one does:
// that of the latest start in (t-dur, t]. Cron only goes forward, so it
// looks back from t over steps that double, up to dur.
func (p parsedWindow) end(t time.Time) (time.Time, bool) {
	var start time.Time
	for step := time.Minute; ; step *= 2 {
		step = min(step, p.dur)
		if s := p.sched.Next(t.Add(-step).In(p.loc)); !s.IsZero() && !s.After(t) {
			start = s
			break
		}
		if step == p.dur {
			return time.Time{}, false
		}
	}
	// Later starts up to t hold too, and end later.
	for i := 0; i < maxMerge; i++ {
		next := p.sched.Next(start)
		if next.IsZero() || next.After(t) {
			break
		}
		start = next
	}
	return start.Add(p.dur), true
}

// joinWindows extends a freeze that ends at until by the windows that
// hold at its end, again and again, up to horizon (windows that chain
// for ever).
func joinWindows(ps []parsedWindow, until, horizon time.Time) time.Time {
	for i := 0; i < maxMerge && until.Before(horizon); i++ {
		extended := false
		for _, p := range ps {
			if e, ok := p.end(until); ok && e.After(until) {
				until, extended = e, true
			}
		}
		if !extended {
			break
		}
	}
	if until.After(horizon) {
		return horizon
	}
	return until
}

// checkFreeze checks each window of a unit's freeze:.
func (c *checker) checkFreeze(s *Spec) {
	for i, w := range s.Freeze {
		for _, p := range w.Check() {
			c.fail(fmt.Sprintf("freeze[%d].%s", i, p.Field), "%s", p.Msg)
		}
	}
}
