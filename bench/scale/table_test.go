package scale

import (
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	rep := Report{Commit: "abc1234", CPU: "Some CPU", NProc: 2, Go: "go1.25", TTL: "30s", EngineInterval: "2s", StartDelay: "300ms", MinReady: "1s",
		Rows: []Row{
			{Units: 100, Machines: 100, MinMachines: 100, FleetFloor: 8, Kaylee: 10, KayleeFleet: 9.5, WebhookFirstKey: 0.042, WebhookAllKeys: 0.5, NoopPass: 0.2,
				NoopEtcdV3: 12, NoopEtcdV2: 3, IdleCPU: 0.015, KayleeCPU: 12.34, KayleePeakMiB: 80.4, BenchCPU: 100},
			{Units: 500, Machines: 100, MinMachines: 97, FleetFloor: 40, Kaylee: 60},
		}}
	got := rep.Table()
	lines := strings.Split(got, "\n")
	want := []string{
		"kaylee scale benchmark, commit abc1234, 2 CPUs (Some CPU), go1.25",
		"fleet: TTL 30s, engine interval 2s, start delay 300ms; kaylee agent --min-ready 1s",
		"units machines fleet-floor kaylee overhead ratio fleet-ran webhook->first-key webhook->all-keys noop-pass etcd-req/noop idle-cpu% kaylee-cpu-s kaylee-peak-MiB bench-cpu-s",
		"100 100 8.000s 10.0s 2.000s 1.25 9.500s 0.042s 0.500s 0.200s 12+3 1.5 12.3 80 100",
		"500 100(min 97) 40.0s 60.0s 20.0s 1.50 0.000s 0.000s 0.000s 0.000s 0+0 0.0 0.0 0 0",
		"fleet-ran: in Kaylee's run, the webhook until fleet reported all its fleet units running",
		"times in seconds; etcd-req/noop: v3 requests + the agent's v2 (fleet registry) requests; idle-cpu%: of one core",
	}
	if len(lines) < len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), got)
	}
	for i, w := range want {
		if g := strings.Join(strings.Fields(lines[i]), " "); g != w {
			t.Errorf("line %d: %q, want %q", i, g, w)
		}
	}
}

func TestSum(t *testing.T) {
	text := `# HELP grpc_server_handled_total x
grpc_server_handled_total{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 7
grpc_server_handled_total{grpc_code="OK",grpc_method="Txn",grpc_service="etcdserverpb.KV",grpc_type="unary"} 5
grpc_server_handled_total{grpc_code="Canceled",grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} 2
grpc_server_handled_total_other 100
kaylee_sync_duration_seconds_sum{source="units"} 1.5
kaylee_sync_duration_seconds_count{source="units"} 3
kaylee_sync_duration_seconds_count{source="other"} 9
`
	tests := []struct {
		name  string
		match map[string]string
		want  float64
	}{
		{"grpc_server_handled_total", map[string]string{"grpc_type": "unary"}, 12},
		{"grpc_server_handled_total", nil, 14},
		{"kaylee_sync_duration_seconds_count", map[string]string{"source": "units"}, 3},
		{"kaylee_sync_duration_seconds_sum", map[string]string{"source": "units"}, 1.5},
		{"kaylee_sync_duration_seconds", nil, 0},
	}
	for _, tt := range tests {
		if got := Sum(text, tt.name, tt.match); got != tt.want {
			t.Errorf("Sum(%s, %v) = %v, want %v", tt.name, tt.match, got, tt.want)
		}
	}
}

func TestParseProc(t *testing.T) {
	stat := "4242 (kay lee) S 1 4242 4242 0 -1 4194560 2620 0 0 0 250 130 0 0 20 0 12 0 1000 1000000 5000 18446744073709551615"
	status := "Name:\tkaylee\nVmPeak:\t 2000 kB\nVmHWM:\t   81920 kB\nVmRSS:\t   40960 kB\n"
	p, err := parseProc(stat, status)
	if err != nil {
		t.Fatal(err)
	}
	if p.CPUSeconds != 3.8 || p.PeakRSS != 80<<20 || p.RSS != 40<<20 {
		t.Errorf("%+v, want 3.8 s, 80 MiB peak, 40 MiB", p)
	}
	if _, err := parseProc("4242 kaylee", status); err == nil {
		t.Error("a stat without (command) parsed")
	}
}
