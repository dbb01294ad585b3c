package scale

import (
	"fmt"
	"strings"
	"text/tabwriter"
)

// Row is one size's figures. Times are seconds.
type Row struct {
	Units    int `json:"units"`
	Machines int `json:"machines"`
	// MinMachines is the fewest machines fleet listed while the size ran,
	// and HeartbeatFailures how often a machine failed to renew its
	// presence: fewer than Machines means machines flapped (the
	// simulation did not keep up).
	MinMachines       int `json:"minMachines"`
	HeartbeatFailures int `json:"heartbeatFailures"`

	// FleetFloor: the fleet units created through fleet's API until fleet
	// reports (its published unit states) every one active/running;
	// FleetFloorSystemd until the machines' systemd runs them all.
	FleetFloor        float64 `json:"fleetFloorSeconds"`
	FleetFloorSystemd float64 `json:"fleetFloorSystemdSeconds"`
	// FleetFloorAgain: the floor run a second time, under another prefix,
	// before Kaylee's run (KAYLEE_BENCH_FLOOR_AGAIN=1; 0 when not run).
	FleetFloorAgain float64 `json:"fleetFloorAgainSeconds,omitempty"`
	// Kaylee: the push webhook until every unit's status is running at
	// its spec and the machines' systemd runs all its fleet units.
	Kaylee float64 `json:"kayleeSeconds"`
	// KayleeSystemd and KayleeFleet: the webhook until the machines'
	// systemd, and fleet's published unit states, had every replica of
	// Kaylee's fleet units running; Kaylee - KayleeFleet is how long
	// Kaylee took to notice.
	KayleeSystemd   float64 `json:"kayleeRunSystemdSeconds"`
	KayleeFleet     float64 `json:"kayleeRunFleetSeconds"`
	WebhookFirstKey float64 `json:"webhookToFirstKeySeconds"`
	WebhookAllKeys  float64 `json:"webhookToAllKeysSeconds"`

	// NoopPass is the no-op sync pass's own duration (the agent's
	// kaylee_sync_duration_seconds), NoopWall the webhook until it was
	// counted; NoopEtcdV3 the etcd v3 requests (unary gRPC calls, every
	// client's: only the agent's run then) from the webhook until a
	// second after the pass, NoopEtcdV2 the agent's v2 requests (fleet's
	// registry) in that window.
	NoopPass   float64 `json:"noopPassSeconds"`
	NoopWall   float64 `json:"noopWallSeconds"`
	NoopWindow float64 `json:"noopWindowSeconds"`
	NoopEtcdV3 int64   `json:"noopEtcdV3Requests"`
	NoopEtcdV2 int64   `json:"noopEtcdV2Requests"`

	// Idle: the agent's CPU (share of one core) and etcd requests per
	// second over IdleSeconds with nothing changing.
	IdleSeconds    float64 `json:"idleSeconds"`
	IdleCPU        float64 `json:"idleCPUShare"`
	IdleEtcdV3PerS float64 `json:"idleEtcdV3PerSecond"`
	IdleEtcdV2PerS float64 `json:"idleEtcdV2PerSecond"`

	// The agent's CPU seconds from the webhook until production, and
	// from its start to its end (push, no-op, idle); its peak resident
	// memory (VmHWM). BenchCPU is the benchmark process's (etcd, fleet's
	// engine and agents, git's server, the harness) over the whole size,
	// floor included, BenchCPUPush over the push.
	KayleeCPUPush float64 `json:"kayleeCPUPushSeconds"`
	KayleeCPU     float64 `json:"kayleeCPUSeconds"`
	KayleePeakMiB float64 `json:"kayleePeakMiB"`
	BenchCPU      float64 `json:"benchCPUSeconds"`
	BenchCPUPush  float64 `json:"benchCPUPushSeconds"`
}

// Overhead is Kaylee's time to production minus fleet's floor.
func (r Row) Overhead() float64 { return r.Kaylee - r.FleetFloor }

// Ratio is Kaylee's time to production over fleet's floor.
func (r Row) Ratio() float64 {
	if r.FleetFloor <= 0 {
		return 0
	}
	return r.Kaylee / r.FleetFloor
}

// Report is a run: where it ran, with what settings, and its rows.
type Report struct {
	Commit  string `json:"commit"`
	CPU     string `json:"cpu"`
	NProc   int    `json:"nproc"`
	Go      string `json:"go"`
	Started string `json:"started"`
	// Settings of the world: fleet's TTL and engine interval, the
	// machines' start delay, the agent's --min-ready.
	TTL            string `json:"fleetTTL"`
	EngineInterval string `json:"fleetEngineInterval"`
	StartDelay     string `json:"startDelay"`
	MinReady       string `json:"minReady"`
	Rows           []Row  `json:"rows"`
}

// Table is the report as people read it: a header naming the commit and
// the machine, one line per size.
func (rep Report) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kaylee scale benchmark, commit %s, %d CPUs (%s), %s\n", rep.Commit, rep.NProc, rep.CPU, rep.Go)
	fmt.Fprintf(&b, "fleet: TTL %s, engine interval %s, start delay %s; kaylee agent --min-ready %s\n", rep.TTL, rep.EngineInterval, rep.StartDelay, rep.MinReady)
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "units\tmachines\tfleet-floor\tkaylee\toverhead\tratio\tfleet-ran\twebhook->first-key\twebhook->all-keys\tnoop-pass\tetcd-req/noop\tidle-cpu%\tkaylee-cpu-s\tkaylee-peak-MiB\tbench-cpu-s\t")
	for _, r := range rep.Rows {
		machines := fmt.Sprint(r.Machines)
		if r.MinMachines < r.Machines {
			machines = fmt.Sprintf("%d(min %d)", r.Machines, r.MinMachines)
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%.2f\t%s\t%s\t%s\t%s\t%d+%d\t%.1f\t%.1f\t%.0f\t%.0f\t\n",
			r.Units, machines, secs(r.FleetFloor), secs(r.Kaylee), secs(r.Overhead()), r.Ratio(), secs(r.KayleeFleet), secs(r.WebhookFirstKey), secs(r.WebhookAllKeys),
			secs(r.NoopPass), r.NoopEtcdV3, r.NoopEtcdV2, 100*r.IdleCPU, r.KayleeCPU, r.KayleePeakMiB, r.BenchCPU)
	}
	w.Flush()
	b.WriteString("fleet-ran: in Kaylee's run, the webhook until fleet reported all its fleet units running\n")
	b.WriteString("times in seconds; etcd-req/noop: v3 requests + the agent's v2 (fleet registry) requests; idle-cpu%: of one core\n")
	return b.String()
}

// secs formats seconds: milliseconds under 10 s.
func secs(s float64) string {
	if s < 10 {
		return fmt.Sprintf("%.3fs", s)
	}
	return fmt.Sprintf("%.1fs", s)
}
