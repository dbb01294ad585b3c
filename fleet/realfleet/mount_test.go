package realfleet_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/fleet/realfleet"
)

// mountTemplate is a systemd template mount service for the real tier,
// shaped like the seed's ebs@.service (oneshot, RemainAfterExit,
// StopWhenUnneeded, RefuseManualStart): instance %i is "mounted" (active)
// once /run/<name>-%i.ok exists on the machine, and fails until then.
const mountTemplate = `[Unit]
Description=Kaylee real tier mount service %%i (active once /run/%[1]s-%%i.ok exists)
StopWhenUnneeded=true
RefuseManualStart=true
[Service]
Type=oneshot
RemainAfterExit=true
ExecStart=/bin/test -e /run/%[1]s-%%i.ok
`

// installMountTemplate installs <name>@.service on every machine. Its
// cleanup, registered before the env's (cleanups run last first), runs
// after the env's units are stopped and destroyed.
func installMountTemplate(t *testing.T, c *realfleet.Cluster, name string) {
	t.Helper()
	ctx := context.Background()
	for _, m := range c.Machines {
		p := filepath.Join(c.Root(m), "etc", "systemd", "system", name+"@.service")
		if err := os.WriteFile(p, []byte(fmt.Sprintf(mountTemplate, name)), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := c.Exec(ctx, m, "systemctl", "daemon-reload"); err != nil {
			t.Fatalf("daemon-reload on %s: %v\n%s", m.Name, err, out)
		}
	}
}

// removeMountTemplate undoes installMountTemplate and its flag files.
func removeMountTemplate(t *testing.T, c *realfleet.Cluster, name string) {
	ctx := context.Background()
	for _, m := range c.Machines {
		_ = os.Remove(filepath.Join(c.Root(m), "etc", "systemd", "system", name+"@.service"))
		for _, cmd := range [][]string{
			{"systemctl", "stop", name + "@*.service"},
			{"systemctl", "reset-failed", name + "@*.service"},
			{"sh", "-c", "rm -f /run/" + name + "-*.ok"},
			{"systemctl", "daemon-reload"},
		} {
			if out, err := c.Exec(ctx, m, cmd...); err != nil && cmd[1] != "reset-failed" {
				t.Logf("cleanup on %s: %s: %v\n%s", m.Name, strings.Join(cmd, " "), err, out)
			}
		}
	}
	_ = os.RemoveAll("/mnt/" + name) // docker creates the host side of the volume
}

// TestRealMountServiceGate: a volume with driver systemd-mountservice-<svc>
// gates the replica on <svc>@<id>.service. While the mount service fails,
// the replica's container never runs (systemd would start it on the
// unmounted directory with Wants= alone) and kaylee status names the mount
// service; once the mount service can succeed, systemd's own retry
// (Restart=always pulls the mount service in again at each restart) starts
// the replica, with no kaylee command.
//
// The scheduler runs with a high --max-restarts: each gated try is a
// restart, and with the default (2) a first rollout fails after two of
// them and its replica is removed (fleet's TestPlanUnit has that case and
// its message); here the rollout stays open so that systemd's recovery
// shows.
func TestRealMountServiceGate(t *testing.T) {
	shareable(t) // t.Parallel, longest first: see newEnv
	const svc = "kaylee-rtmount"
	var c *realfleet.Cluster
	t.Cleanup(func() {
		if c != nil {
			removeMountTemplate(t, c, svc)
		}
	})
	e := newEnv(t, "rn")
	c = e.c
	removeMountTemplate(t, c, svc) // what an earlier run left
	installMountTemplate(t, c, svc)
	e.server("--max-restarts", "100", "--rollout-timeout", "10m")

	vol := fmt.Sprintf("vol-%x", time.Now().UnixNano()&0xffffff)
	mount := svc + "@" + vol + ".service"
	e.must("run", e.unit("data", webUnit("data", 1, 1, "v1")+fmt.Sprintf(`volumes:
- id: %s
  driver: systemd-mountservice-%s
  source: data
  path: /data
`, vol, svc)))

	// 40s: the first start and at least two of systemd's retries
	// (RestartSec=10).
	start := time.Now()
	var ran []string
	var phase, msg, machine, unit string // the last status seen
	for time.Since(start) < 40*time.Second {
		for _, ct := range e.containers("data") {
			ran = append(ran, fmt.Sprintf("%s (running %v) after %s", ct.Name, ct.Running, time.Since(start).Round(100*time.Millisecond)))
		}
		if s, ok := e.status("data"); ok {
			phase, msg = s.Phase, s.Message
			for _, u := range s.Units {
				if u.MachineID != "" {
					machine, unit = u.MachineID, u.Name
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(ran) > 0 {
		t.Errorf("the replica's container ran while %s was not active (on an unmounted /data): %s", mount, strings.Join(ran[:min(len(ran), 3)], "; "))
	}
	t.Logf("after 40s with %s failing: status %s: %s", mount, phase, msg)
	if phase != "progressing" || !strings.Contains(msg, "is restarting") || !strings.Contains(msg, "it starts only once "+mount+" is active on machine ") {
		t.Errorf("status %s %q: want progressing, the replica restarting, and why: it starts only once %s is active", phase, msg, mount)
	}
	out := e.must("status", "data")
	if !strings.Contains(out, mount) {
		t.Errorf("kaylee status data does not name %s:\n%s", mount, out)
	}
	m, ok := e.c.Machine(machine)
	if !ok {
		t.Fatalf("the replica is on %q, not a machine of the cluster", machine)
	}
	ctx := context.Background()
	show, _ := e.c.Exec(ctx, m, "systemctl", "show", "-p", "ActiveState,Result", mount)
	journal, _ := e.c.Exec(ctx, m, "journalctl", "--no-pager", "-o", "cat", "-u", mount)
	tries := strings.Count(journal, "Starting ")
	t.Logf("on %s: %s: %s, started %d times", m.Name, mount, strings.Join(strings.Fields(show), " "), tries)
	// failed, or activating again: each restart of the replica pulls it in
	// (CI at 712456b found it activating, Result=success as each start
	// resets it, its journal full of failures).
	if !strings.Contains(show, "ActiveState=failed") && !strings.Contains(show, "ActiveState=activating") ||
		!strings.Contains(journal, "Failed") {
		t.Errorf("%s on %s: %s, want failed or activating again after failing; journal:\n%s", mount, m.Name, show, tail(journal, 20))
	}
	if tries < 2 {
		t.Errorf("%s was started %d times on %s in 40s: systemd's restarts of the replica did not pull it in again\n%s", mount, tries, m.Name, tail(journal, 20))
	}

	// The mount can succeed now: systemd starts the replica by itself at
	// its next retry.
	start = time.Now()
	for _, mm := range e.c.Machines {
		if out, err := e.c.Exec(ctx, mm, "touch", "/run/"+svc+"-"+vol+".ok"); err != nil {
			t.Fatalf("touch on %s: %v\n%s", mm.Name, err, out)
		}
	}
	cs := e.waitContainers("data", 1, "v1", 40*time.Second)
	t.Logf("mount service can succeed: the container runs %s later, with no kaylee command", time.Since(start).Round(100*time.Millisecond))
	if cs[0].Machine != m.ID {
		t.Errorf("the container runs on %s; the replica was on %s", cs[0].Machine, m.ID)
	}
	if show, _ := e.c.Exec(ctx, m, "systemctl", "show", "-p", "ActiveState,SubState", mount); !strings.Contains(show, "ActiveState=active") {
		t.Errorf("%s on %s: %s, want active", mount, m.Name, show)
	}
	// The replica that runs is the one systemd kept restarting, not one
	// Kaylee created again.
	restarts, _ := e.c.Exec(ctx, m, "systemctl", "show", "-p", "NRestarts", "--value", unit)
	if n, err := strconv.Atoi(strings.TrimSpace(restarts)); err != nil || n < 2 {
		t.Errorf("%s on %s: NRestarts %q, want the restarts of the gated tries (2 or more)", unit, m.Name, restarts)
	} else {
		t.Logf("%s started by systemd after %d restarts", unit, n)
	}
	e.waitPhase("data", "running", time.Minute)
}
