package scale

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// BenchmarkScale runs every size of KAYLEE_BENCH_UNITS (100,500,1000) on
// KAYLEE_BENCH_MACHINES (100) machines and prints the table; with
// KAYLEE_BENCH_OUT it writes results.json and table.txt there after each
// size. scripts/bench-scale runs it:
//
//	go test -run '^$' -bench BenchmarkScale -benchtime 1x -timeout 3h ./bench/scale
func BenchmarkScale(b *testing.B) {
	cfg := fromEnv(b, benchDefaults())
	bin := kayleeBinary(b, cfg)
	rep := newReport(cfg)
	for _, n := range cfg.units {
		b.Run(fmt.Sprintf("units=%d/machines=%d", n, cfg.machines), func(b *testing.B) {
			row := measure(b, cfg, bin, n)
			rep.Rows = append(rep.Rows, row)
			writeReport(b, cfg.out, rep)
			b.ReportMetric(row.Kaylee, "s/production")
			b.ReportMetric(row.FleetFloor, "s/fleet-floor")
			b.ReportMetric(row.Overhead(), "s/overhead")
		})
	}
	fmt.Fprint(os.Stdout, "\n"+rep.Table())
}

// The harness end to end, cheaply: 5 units on 3 machines with the tests'
// fleet timings, through every phase; every unit reaches running (measure
// fails otherwise) and the table has its row.
func TestScaleSmoke(t *testing.T) {
	cfg := config{units: []int{5}, machines: 3, ttl: 4 * time.Second, engineInterval: time.Second, startDelay: 100 * time.Millisecond,
		minReady: 500 * time.Millisecond, idle: 2 * time.Second, wait: 2 * time.Minute, workers: 8}
	cfg.bin = os.Getenv("KAYLEE_BENCH_BIN")
	cfg.profileDir = t.TempDir()
	bin := kayleeBinary(t, cfg)
	start := time.Now()
	row := measure(t, cfg, bin, 5)
	rep := newReport(cfg)
	rep.Rows = append(rep.Rows, row)
	table := rep.Table()
	t.Logf("in %s:\n%s", time.Since(start).Round(time.Second), table)
	if row.FleetFloor <= 0 || row.Kaylee <= 0 || row.WebhookAllKeys <= 0 || row.WebhookAllKeys > row.Kaylee || row.NoopPass <= 0 || row.KayleePeakMiB <= 0 {
		t.Errorf("figures missing or out of order: %+v", row)
	}
	if row.MinMachines != 3 {
		t.Errorf("machines flapped: %d of 3 at the fewest", row.MinMachines)
	}
	lines := strings.Split(table, "\n")
	if len(lines) < 4 || !strings.HasPrefix(strings.TrimSpace(lines[3]), "5  ") || !strings.Contains(lines[2], "fleet-floor") {
		t.Errorf("the table lacks its row for 5 units:\n%s", table)
	}
	profiles, _ := os.ReadDir(cfg.profileDir)
	var names []string
	for _, p := range profiles {
		names = append(names, p.Name())
	}
	for _, want := range []string{"push-5-3-000.pb.gz", "heap-5-3.pb.gz", "harness-floor-5-3-000.pb.gz", "harness-kaylee-5-3-000.pb.gz"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("profiles: %v, want %s", names, want)
		}
	}
}
