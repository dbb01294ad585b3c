package scale

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go runs on.
const clockTicks = 100

// ProcStat is what /proc says of a process.
type ProcStat struct {
	CPUSeconds float64 // utime + stime
	PeakRSS    int64   // VmHWM, bytes
	RSS        int64   // VmRSS, bytes
}

// ReadProc reads /proc/PID/stat and /proc/PID/status.
func ReadProc(pid int) (ProcStat, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcStat{}, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcStat{}, err
	}
	return parseProc(string(stat), string(status))
}

// parseProc reads utime and stime (fields 14 and 15 of stat, counted
// after the command's closing parenthesis) and VmHWM and VmRSS of status.
func parseProc(stat, status string) (ProcStat, error) {
	var p ProcStat
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return p, fmt.Errorf("/proc stat %.40q: no command", stat)
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3, the state
	if len(f) < 13 {
		return p, fmt.Errorf("/proc stat %.40q: %d fields", stat, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return p, fmt.Errorf("/proc stat: utime %q, stime %q", f[11], f[12])
	}
	p.CPUSeconds = float64(utime+stime) / clockTicks
	for _, line := range strings.Split(status, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmHWM" && k != "VmRSS") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return p, fmt.Errorf("/proc status %s: %q", k, v)
		}
		if k == "VmHWM" {
			p.PeakRSS = kb << 10
		} else {
			p.RSS = kb << 10
		}
	}
	return p, nil
}
