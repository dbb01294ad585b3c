package realfleet_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet/realfleet"
	"github.com/kaylee-gitops/kaylee/internal/original"
)

// originalHere is monder/kaylee's rendering of a unit (internal/original)
// with only what must point at this tier rewritten: rkt is not on the
// machines and there is no flannel, so the rkt lines become docker
// commands running the test image under the name the original gave the
// pod's environment (KAYLEE_ID), labelled as the tier's containers are,
// and Requires/After=flanneld.service go. The original's image and pod
// garbage collection (rkt gc, rkt image gc) have no counterpart on a
// shared docker and are left out. Names, the other options, X-Fleet
// options and conflicts are kept exactly.
func originalHere(t *testing.T, u *schema.Unit, unit, image string) *schema.Unit {
	t.Helper()
	id := ""
	for _, o := range u.Options {
		if v, ok := strings.CutPrefix(o.Value, "KAYLEE_ID="); ok && o.Name == "Environment" {
			id = v
		}
	}
	if id == "" {
		t.Fatalf("%s: no KAYLEE_ID in the original's rendering", u.Name)
	}
	out := &schema.Unit{Name: u.Name, DesiredState: u.DesiredState}
	add := func(section, name, value string) {
		out.Options = append(out.Options, &schema.UnitOption{Section: section, Name: name, Value: value})
	}
	for _, o := range u.Options {
		switch {
		case o.Section == "Unit" && o.Value == "flanneld.service":
		case strings.Contains(o.Value, "rkt fetch"):
			add(o.Section, o.Name, "/usr/bin/docker image inspect "+image)
		case strings.Contains(o.Value, "rkt run"):
			add(o.Section, o.Name, fmt.Sprintf("/usr/bin/docker run --rm --name %s -e KAYLEE_ID --label=io.kaylee.unit=%s --label=io.kaylee.instance=%s --label=io.kaylee.machine=%%m %s --version=original",
				id, unit, id, image))
		case strings.Contains(o.Value, "rkt stop"):
			add(o.Section, o.Name, "-/usr/bin/docker stop "+id)
		case strings.Contains(o.Value, "rkt rm"):
			add(o.Section, o.Name, "-/usr/bin/docker rm -f "+id)
		case strings.Contains(o.Value, "rkt gc"), strings.Contains(o.Value, "rkt image gc"):
		case strings.Contains(o.Value, "rkt"):
			t.Fatalf("%s: an rkt line this test does not know: %s=%s", u.Name, o.Name, o.Value)
		default:
			add(o.Section, o.Name, o.Value)
		}
	}
	return out
}

// countlySampler counts, every 200ms, the running countly containers of
// this env in all and per machine (docker ps on the host, whose dockerd
// every machine uses; the machine is the container's io.kaylee.machine
// label), and keeps the worst sample.
type countlySampler struct {
	stop, done chan struct{}
	mu         sync.Mutex
	samples    int
	maxTotal   int
	maxOnOne   int
	worst      string // the sample with the most on one machine
	worstTotal string
}

func (e *env) sampleCountly(name string) *countlySampler {
	s := &countlySampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			cs, err := realfleet.Containers(context.Background(), name)
			if err != nil {
				continue
			}
			total, on := 0, map[string]int{}
			var desc []string
			for _, c := range cs {
				if !strings.HasPrefix(c.Name, e.unitPrefix+"_") || !c.Running {
					continue
				}
				total++
				on[c.Machine]++
				desc = append(desc, c.Name+"@"+short(c.Machine))
			}
			s.mu.Lock()
			s.samples++
			if total > s.maxTotal {
				s.maxTotal, s.worstTotal = total, strings.Join(desc, " ")
			}
			for _, n := range on {
				if n > s.maxOnOne {
					s.maxOnOne, s.worst = n, strings.Join(desc, " ")
				}
			}
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *countlySampler) finish() {
	close(s.stop)
	<-s.done
}

// Issue 24 on real fleet and systemd: the seed's countly as monder/kaylee
// put it in fleet (its names, options, X-Fleet options and conflicts; its
// rkt lines made docker commands of the test image, see originalHere) runs
// on the 3 machines, 2/1/1; the machines with one replica are loaded with
// other fleet units so that fleet's least-loaded engine would put the next
// replica on the full one. Then countly is stored for Kaylee (engine
// docker, the test image, 4 replicas, at most 2 per machine) and Kaylee's
// scheduler starts. A sampler of docker ps never sees more than 6 countly
// containers (4 + maxSurge 1, and one on its way out) nor more than 2 on a
// machine; at the end 4 containers of Kaylee's rendering serve and no
// fleet unit of the original is left.
func TestRealAdoptOriginal(t *testing.T) {
	// Exclusive (no t.Parallel, see newEnv): its setup relies on fleet's least-
	// loaded engine, which counts every test's units on a machine.
	e := newEnv(t, "ao")
	api := e.c.API(t)
	image := realfleet.Image + ":v1"
	raw, err := os.ReadFile(filepath.Join(realfleet.Root(), "deploy", "testdata", "countly.json"))
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := original.Units(e.unitPrefix, bytes.TrimSpace(raw), rand.New(rand.NewSource(24)))
	if err != nil {
		t.Fatal(err)
	}
	var units []*schema.Unit
	for _, u := range rendered {
		units = append(units, originalHere(t, u, "countly", image))
	}
	start := time.Now()
	original.LaunchAll(t, api, units, 3*time.Minute)
	t.Logf("the original's 4 units run after %s", time.Since(start).Round(100*time.Millisecond))
	cs := e.waitContainers("countly", 4, "original", time.Minute)
	on := perMachine(cs)
	e.loadOtherMachines(on, 2, 3)

	s := e.sampleCountly("countly")
	e.must("run", e.unit("countly", fmt.Sprintf(`name: countly
engine: docker
replicas: 4
maxReplicasPerHost: 2
env:
- name: MONGO_URL
  value: mongodb://mongo-1.lan,mongo-2.lan,mongo-3.lan/countly?replicaSet=main
machine:
- ssd=false
apps:
- image: %s
  args: [--version=kaylee]
`, image)))
	start = time.Now()
	e.server()
	st, took := e.waitPhase("countly", "running", 6*time.Minute)
	t.Logf("countly running %s after the scheduler started: %s", took.Round(100*time.Millisecond), st.Message)
	e.waitFor("the original's fleet units gone", 2*time.Minute, func() (bool, string) {
		fus, err := api.Units()
		if err != nil {
			return false, err.Error()
		}
		var left []string
		for _, u := range fus {
			if _, ok := deploy.ParseOriginalUnitName(e.unitPrefix, u.Name); ok {
				left = append(left, u.Name)
			}
		}
		return len(left) == 0, strings.Join(left, " ")
	})
	cs = e.waitContainers("countly", 4, "kaylee", time.Minute)
	s.finish()
	t.Logf("adopted in %s; %d samples: at most %d countly containers, at most %d on a machine",
		time.Since(start).Round(100*time.Millisecond), s.samples, s.maxTotal, s.maxOnOne)
	if s.samples < 20 {
		t.Fatalf("only %d samples taken", s.samples)
	}
	if s.maxOnOne > 2 {
		t.Errorf("%d countly containers ran on one machine (maxReplicasPerHost 2): %s", s.maxOnOne, s.worst)
	}
	if s.maxTotal > 6 {
		t.Errorf("%d countly containers ran at once (want <= 6: 4 + maxSurge 1, and one on its way out): %s", s.maxTotal, s.worstTotal)
	}
	for m, n := range perMachine(cs) {
		if n > 2 {
			t.Errorf("at the end machine %s runs %d countly containers", short(m), n)
		}
	}
	for _, c := range cs {
		if id, ok := deploy.ParseUnitName(e.unitPrefix, strings.ReplaceAll(c.Name, "_", ":")+".service"); !ok || id.Name != "countly" {
			t.Errorf("container %s is not of Kaylee's rendering", c.Name)
		}
	}
}

// loadOtherMachines gives every machine that runs fewer than full of the
// unit's containers n other fleet units (pinned there, named with this
// env's unit prefix so that its cleanup removes them), so that fleet's
// least-loaded engine puts the next replica on a machine that runs full.
func (e *env) loadOtherMachines(on map[string]int, full, n int) {
	e.t.Helper()
	var fillers []*schema.Unit
	loaded := false
	for _, m := range e.c.Machines {
		if on[m.ID] >= full {
			e.t.Logf("machine %s runs %d countly containers", short(m.ID), on[m.ID])
			loaded = true
			continue
		}
		for i := range n {
			fillers = append(fillers, &schema.Unit{Name: fmt.Sprintf("%s:other-%s-%d.service", e.unitPrefix, short(m.ID), i), DesiredState: "launched",
				Options: []*schema.UnitOption{{Section: "Service", Name: "ExecStart", Value: "/bin/sleep infinity"},
					{Section: "X-Fleet", Name: "MachineID", Value: m.ID}}})
		}
	}
	if !loaded {
		e.t.Fatalf("no machine runs %d countly containers: %v", full, on)
	}
	original.LaunchAll(e.t, e.c.API(e.t), fillers, 2*time.Minute)
}
