package deploy

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

var timespanPart = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)`)

var timespanUnits = map[string]time.Duration{
	"": time.Second, "s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
	"ms": time.Millisecond, "msec": time.Millisecond, "us": time.Microsecond, "usec": time.Microsecond,
	"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hour": time.Hour, "hours": time.Hour,
}

// maxTimespan bounds what ParseTimespan accepts (systemd's spans of interest
// here, RestartSec and the like, are seconds to minutes).
const maxTimespan = 1000 * time.Hour

// ParseTimespan reads a systemd time span as in a unit file's RestartSec=:
// "10" (seconds), "500ms", "1min 30s", "2h". It reports false for anything
// else, including spans over 1000 hours.
func ParseTimespan(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	var total time.Duration
	for v != "" {
		m := timespanPart.FindStringSubmatch(v)
		if m == nil {
			return 0, false
		}
		n, err := strconv.ParseFloat(m[1], 64)
		unit, ok := timespanUnits[m[2]]
		if err != nil || !ok || n*float64(unit) > float64(maxTimespan) {
			return 0, false
		}
		total += time.Duration(n * float64(unit))
		if total > maxTimespan {
			return 0, false
		}
		v = strings.TrimSpace(v[len(m[0]):])
	}
	return total, true
}
