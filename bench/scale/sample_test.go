package scale

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
)

// sampler writes one line every period to samples-<size>.tsv: what the
// agent and etcd did in that window, and what fleet and the machines'
// systemd ran. It shows where time goes in a run that does not finish:
// whether fleet's published states expire (etcd's v2 TTL misses: an agent
// of fleet re-publishes each state every 4/5 of its TTL, and one it is
// late with vanishes until it does), how long etcd takes to answer fleet's
// writes, and how much of the machine the agent uses meanwhile.
type sampler struct {
	phase atomic.Value // string: the run's phase, set by measure
	agent atomic.Pointer[agentProc]
	proxy atomic.Pointer[proxyProc]

	stop chan struct{}
	done sync.WaitGroup
}

// sampleHeader names the columns; per-second figures are over the window.
const sampleHeader = "t_s\tphase\tfleet_up\tfleet_states\tsystemd_up\tv2_expires_per_s\tv2_put_per_s\tv2_put_ms\tv2_get_per_s\tv2_get_ms\tv2_lists_per_s\tv3_unary_per_s\tagent_v2_per_s\tagent_lists_per_s\tagent_cpu\tbench_cpu\n"

// etcdFigures are the cumulative counters of etcd's /metrics read here.
type etcdFigures struct {
	expires, puts, putSecs, gets, getSecs, lists, unary float64
}

func readEtcdFigures(etcdURL string) (etcdFigures, error) {
	resp, err := httpClient.Get(etcdURL + "/metrics")
	if err != nil {
		return etcdFigures{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return etcdFigures{}, err
	}
	m := string(b)
	const d = "etcd_http_successful_duration_seconds"
	put, get := map[string]string{"method": "PUT"}, map[string]string{"method": "GET"}
	return etcdFigures{
		expires: Sum(m, "etcd_debugging_store_expires_total", nil),
		puts:    Sum(m, d+"_count", put), putSecs: Sum(m, d+"_sum", put),
		gets: Sum(m, d+"_count", get), getSecs: Sum(m, d+"_sum", get),
		lists: Sum(m, "etcd_debugging_store_reads_total", map[string]string{"action": "getRecursive"}),
		unary: Sum(m, "grpc_server_handled_total", map[string]string{"grpc_type": "unary"}),
	}, nil
}

// startSampler samples every period until Stop; file "" samples nothing.
func startSampler(tb testing.TB, file string, period time.Duration, etcdURL string, c *fleetsim.Cluster) *sampler {
	tb.Helper()
	s := &sampler{stop: make(chan struct{})}
	s.phase.Store("start")
	if file == "" {
		return s
	}
	f, err := os.Create(file)
	if err != nil {
		tb.Fatal(err)
	}
	_, _ = f.WriteString(sampleHeader)
	api := c.API()
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		defer f.Close()
		t0 := time.Now()
		last, lastAt := etcdFigures{}, time.Time{}
		var lastAgentCPU, lastBenchCPU float64
		var lastV2, lastLists int64
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			now := time.Now()
			ef, err := readEtcdFigures(etcdURL)
			if err != nil {
				continue
			}
			fleetUp, fleetStates := -1, -1
			if states, err := api.UnitStates(); err == nil {
				fleetStates, fleetUp = len(states), 0
				for _, st := range states {
					if running(st.SystemdActiveState, st.SystemdSubState) {
						fleetUp++
					}
				}
			}
			sysUp := 0
			for _, st := range c.UnitStates() {
				if running(st.SystemdActiveState, st.SystemdSubState) {
					sysUp++
				}
			}
			var agentCPU float64
			var v2, lists int64
			if a := s.agent.Load(); a != nil {
				if ps, err := ReadProc(a.cmd.Process.Pid); err == nil {
					agentCPU = ps.CPUSeconds
				}
			}
			if p := s.proxy.Load(); p != nil {
				v2, lists = p.counts()
			}
			bench, _ := ReadProc(os.Getpid())
			if !lastAt.IsZero() {
				w := now.Sub(lastAt).Seconds()
				ms := func(secs, n float64) float64 {
					if n == 0 {
						return 0
					}
					return 1000 * secs / n
				}
				agentShare := 0.0
				if lastAgentCPU > 0 { // a core's share; 0 before the agent runs
					agentShare = (agentCPU - lastAgentCPU) / w
				}
				fmt.Fprintf(f, "%.0f\t%s\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.2f\t%.2f\n",
					now.Sub(t0).Seconds(), s.phase.Load(), fleetUp, fleetStates, sysUp,
					(ef.expires-last.expires)/w,
					(ef.puts-last.puts)/w, ms(ef.putSecs-last.putSecs, ef.puts-last.puts),
					(ef.gets-last.gets)/w, ms(ef.getSecs-last.getSecs, ef.gets-last.gets), (ef.lists-last.lists)/w,
					(ef.unary-last.unary)/w, float64(v2-lastV2)/w, float64(lists-lastLists)/w,
					agentShare, (bench.CPUSeconds-lastBenchCPU)/w)
			}
			last, lastAt, lastAgentCPU, lastV2, lastLists, lastBenchCPU = ef, now, agentCPU, v2, lists, bench.CPUSeconds
		}
	}()
	return s
}

// Stop ends the sampling and waits for its last line.
func (s *sampler) Stop() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.done.Wait()
}
