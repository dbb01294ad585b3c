package scale

import (
	"strconv"
	"strings"
)

// Sum adds the samples of metric name in Prometheus' text format whose
// labels include every pair of match (a histogram's name_sum and
// name_count are metrics of their own).
func Sum(text, name string, match map[string]string) float64 {
	total := 0.0
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' || !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		labels := map[string]string{}
		switch {
		case strings.HasPrefix(rest, "{"):
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			labels = parseLabels(rest[1:end])
			rest = rest[end+1:]
		case strings.HasPrefix(rest, " "):
		default:
			continue // another metric whose name starts with name
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		ok := true
		for k, want := range match {
			if labels[k] != want {
				ok = false
				break
			}
		}
		if ok {
			total += v
		}
	}
	return total
}

// parseLabels reads `a="x",b="y"` (values without escaped quotes, as the
// series read here have).
func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for s != "" {
		k, rest, ok := strings.Cut(s, `="`)
		if !ok {
			break
		}
		v, rest, _ := strings.Cut(rest, `"`)
		out[strings.TrimSpace(k)] = v
		s = strings.TrimPrefix(rest, ",")
	}
	return out
}
