package scale

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync/atomic"
	"testing"
	"time"
)

// harnessProfiles profiles the harness's own process (etcd, fleet's
// engines and agents, the simulated machines' systemd) into
// dir/harness-<phase>-<tag>-NNN.pb.gz: a new file at each phase and every
// chunk within one, so that a run stopped half way keeps what it has and
// the floor's profile can be set beside Kaylee's run's.
type harnessProfiles struct {
	stop, done chan struct{}
}

func profileHarness(tb testing.TB, dir, tag string, phase *atomic.Value, chunk time.Duration) *harnessProfiles {
	tb.Helper()
	p := &harnessProfiles{stop: make(chan struct{}), done: make(chan struct{})}
	if dir == "" {
		close(p.done)
		return p
	}
	go func() {
		defer close(p.done)
		var (
			f       *os.File
			cur     string
			started time.Time
			seq     int
		)
		end := func() {
			if f != nil {
				pprof.StopCPUProfile()
				f.Close()
				f = nil
			}
		}
		defer end()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			ph, _ := phase.Load().(string)
			if f == nil || ph != cur || time.Since(started) >= chunk {
				end()
				if ph != cur {
					seq = 0
				}
				cur, started = ph, time.Now()
				name := filepath.Join(dir, fmt.Sprintf("harness-%s-%s-%03d.pb.gz", ph, tag, seq))
				seq++
				nf, err := os.Create(name)
				if err != nil {
					tb.Logf("harness profile: %v", err)
					return
				}
				if err := pprof.StartCPUProfile(nf); err != nil { // another profile runs (go test -cpuprofile)
					nf.Close()
					os.Remove(name)
					tb.Logf("harness profile: %v", err)
					return
				}
				f = nf
			}
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// Stop ends the profile under way and writes it.
func (p *harnessProfiles) Stop() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}
