package realfleet_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/fleet/realfleet"
)

// The fields test's names: its unit prefix, units, volume plugin and the
// files it writes on every machine.
const (
	pfPrefix  = "pf"
	pfPlugin  = "kaylee-rtpf"
	pfEnvFile = "/etc/kaylee-rtpf.env"
	pfHostDir = "/srv/kaylee-rtpf"
	pfPlugLog = "/var/log/kaylee-rtpf.log" // on the machine's tree, not its /run (a tmpfs)
	// pfGreeting reaches the apps byte for byte: spaces, quotes, $ and %.
	pfGreeting = `say "hi" at 100% \ $HOME ${KAYLEE_ID} $$x 'y'`
)

// pfPluginScript is the volume plugin: called <id> <options> before the
// pod is created, it makes the volume's directory, leaves a marker in it
// and logs whether the pod exists yet; called -u <id> after the stop, it
// logs how many containers and whether the pod are left. KAYLEE_ID comes
// from the unit's environment.
const pfPluginScript = `#!/bin/sh
log=` + pfPlugLog + `
pods() { /usr/bin/podman pod exists "$KAYLEE_ID" && echo yes || echo no; }
if [ "$1" = -u ]; then
	echo "unmount $2 $KAYLEE_ID containers=$(/usr/bin/podman ps -aq --filter label=io.kaylee.instance=$KAYLEE_ID | wc -l) pod=$(pods)" >>$log
	exit 0
fi
mkdir -p /mnt/` + pfPlugin + `/$1/data
echo "mounted $1 ($2) for $KAYLEE_ID" >/mnt/` + pfPlugin + `/$1/data/marker
echo "mount $1 $2 $KAYLEE_ID pod=$(pods)" >>$log
`

// pfUnit is the fields test's unit: engine podman, both apps of image,
// app 0 the image's entrypoint (:80) starting 5s late, app 1 /testimage
// on :8081 by cmd and args; env, envFiles, a host volume and a plugin
// volume; an HTTP health check on :80 at path.
func pfUnit(image, path string) string {
	return fmt.Sprintf(`name: fields
engine: podman
replicas: 1
envFiles:
- %s
env:
- name: GREETING
  value: %s
volumes:
- source: %s
  path: /data
- id: pfvol
  driver: %s
  source: data
  path: /plug
  options: opt=1
health:
  http: {port: 80, path: %s}
  interval: 1s
  timeout: 1s
  startPeriod: 12s
  failures: 2
apps:
- image: %s
  pull: always
  args: [--start-delay=5s]
- image: %s
  cmd: /testimage
  args: ['--listen :8081', --version=app1]
`, pfEnvFile, strconv.Quote(pfGreeting), pfHostDir, pfPlugin, path, image, image)
}

// TestRealPodmanFields runs one unit with engine podman and every field of
// the seed's format it has not run elsewhere, checked from inside the pod
// (the test image's /getenv, /file, / on the pod's address) and from the
// machine (podman, journal, the plugin's log, the registry's log):
//   - health: the status is running only after the check passed (the
//     journal's "healthy after"); a spec whose path answers 404 fails its
//     rollout with the health message and the old pod keeps serving;
//   - volumes: a host path and a plugin's, seen by both apps; the plugin
//     mounts before the pod exists and unmounts once no container is left;
//   - envFiles, env (spaces, quotes, $ and % literal), KAYLEE_ID the pod's
//     name in both apps;
//   - cmd and args per app (podman inspect, and what the process serves);
//   - pull: always fetches a new image under the same tag on kaylee
//     restart; never, for an image only the registry has, fails with
//     podman's error and no request to the registry;
//   - the io.kaylee labels on the pod and its containers.
func TestRealPodmanFields(t *testing.T) {
	shareable(t) // t.Parallel, longest first: see newEnv
	c := requireCluster(t)
	t.Cleanup(func() { removePods(t, c, pfPrefix+"_") }) // after the env's cleanup (LIFO)
	t.Cleanup(func() { pfRemoveFiles(c) })
	e := newEnv(t, pfPrefix)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	removePods(t, c, pfPrefix+"_")
	pfRemoveFiles(c)
	pfWriteFiles(t, c)
	entry := func(version string) []string { return []string{"/testimage", "--listen", ":80", "--version", version} }
	image, err := c.PushImage(ctx, realfleet.CountlyImage, "countly:pf", entry("v1")...)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Machines { // pull always must fetch it
		if _, err := c.Podman(ctx, m, "rmi", "--force", "--ignore", image); err != nil {
			t.Fatal(err)
		}
	}
	e.server("--rollout-timeout", "5m")

	// Health-gated start.
	start := time.Now()
	e.must("run", e.unit("fields", pfUnit(image, "/healthz")))
	waited := e.waitHealthGated("fields", 3*time.Minute)
	p := e.onePod(ctx, "fields")
	t.Logf("fields: running %s after kaylee run; pod %s on %s (status said it waited for its health check %s)",
		time.Since(start).Round(100*time.Millisecond), p.Name, p.Machine.Name, waited)
	e.wantJournal(ctx, p, start, "kaylee-health: "+p.Name+"-infra healthy after ", func(line string) string {
		var n int
		if _, err := fmt.Sscanf(strings.TrimPrefix(line, "kaylee-health: "+p.Name+"-infra healthy after "), "%ds", &n); err != nil || n < 3 {
			return "want healthy after 3s or more (app 0 serves 5s after its start)"
		}
		return ""
	})
	ip := e.podIP(ctx, p)
	e.wantPodFields(ctx, p, ip, "v1")

	// pull: always on kaylee restart fetches the image pushed again
	// under the same tag: every machine has the old one, so whichever
	// the new pod lands on, missing would run it.
	for _, m := range c.Machines {
		if _, err := c.Podman(ctx, m, "pull", "--quiet", image); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.PushImage(ctx, realfleet.CountlyImage, "countly:pf", entry("v2")...); err != nil {
		t.Fatal(err)
	}
	regLog := fileSize(t, c.RegistryLog())
	old := p
	before, _ := e.status("fields")
	start = time.Now()
	e.must("restart", "fields")
	e.waitFor("fields restarted under a new spec hash and running", 3*time.Minute, func() (bool, string) {
		st, _ := e.status("fields")
		return st.SpecHash != before.SpecHash && st.Phase == "running", st.Phase + ": " + st.Message
	})
	p = e.onePod(ctx, "fields")
	t.Logf("kaylee restart: pod %s on %s running %s later", p.Name, p.Machine.Name, time.Since(start).Round(100*time.Millisecond))
	if p.Name == old.Name {
		t.Fatalf("kaylee restart kept pod %s", p.Name)
	}
	if reqs := registryRequests(t, c, regLog, "/v2/countly/manifests/pf"); len(reqs) == 0 {
		t.Errorf("the registry's log has no request for countly:pf after kaylee restart: pull always did not pull")
	} else {
		t.Logf("registry requests for countly:pf after kaylee restart: %d, e.g. %s", len(reqs), reqs[0])
	}
	ip = e.podIP(ctx, p)
	e.wantPodFields(ctx, p, ip, "v2")
	e.wantPluginLog(ctx, old, "unmount pfvol "+old.Name+" containers=0 pod=no")

	// A spec whose health path answers 404 fails; the pod keeps serving.
	ids := e.podContainers(ctx, p)
	start = time.Now()
	out, errs, code := e.kaylee("run", "--wait", "--timeout", "4m", e.unit("fields", pfUnit(image, "/nothere")))
	st, _ := e.status("fields")
	t.Logf("health path answering 404: rollout %s after kaylee run: %s: %s", time.Since(start).Round(100*time.Millisecond), st.Phase, st.Message)
	if code != 1 || st.Phase != "failed" || !strings.Contains(st.Message, "did not become healthy (its health check did not pass within startPeriod") {
		t.Errorf("kaylee run --wait of a spec whose health path answers 404: exit %d, status %s %q; want exit 1, failed, did not become healthy\n%s%s",
			code, st.Phase, st.Message, out, errs)
	}
	e.wantHealth404(ctx, st.SpecHash, start)
	if now := e.podContainers(ctx, p); fmt.Sprint(now) != fmt.Sprint(ids) {
		t.Errorf("pod %s's containers were %v before the failed rollout, %v after", p.Name, ids, now)
	}
	if code, body, err := getPod(ctx, ip, "80", "/version"); err != nil || code != 200 || body != "v2\n" {
		t.Errorf("pod %s after the failed rollout: GET /version: %d %q %v, want v2", p.Name, code, body, err)
	}

	// pull: never, an image the registry has and the machines do not.
	e.pullNever(ctx)

	// kaylee rm: no pod, no container; the plugin unmounted after.
	start = time.Now()
	e.must("rm", "fields")
	e.must("rm", "never")
	e.waitFor("fields and never removed", 2*time.Minute, func() (bool, string) {
		var left strings.Builder
		for _, m := range c.Machines {
			st, err := c.Podmans(ctx, m)
			if err != nil {
				return false, err.Error()
			}
			// This test's pods and containers: other tests' run beside.
			if st = st.Of(pfPrefix + "_"); !st.Empty() {
				fmt.Fprintf(&left, "%s:\n%s", m.Name, st)
			}
		}
		units := e.fleetMachines(pfPrefix + ":")
		return left.Len() == 0 && len(units) == 0, fmt.Sprintf("fleet units %v; podman:\n%s", units, left.String())
	})
	t.Logf("kaylee rm: no pod and no container %s after", time.Since(start).Round(100*time.Millisecond))
	e.wantPluginLog(ctx, p, "unmount pfvol "+p.Name+" containers=0 pod=no")
}

// pfWriteFiles writes, on every machine, the env file, the host volume's
// file (naming the machine) and the volume plugin.
func pfWriteFiles(t *testing.T, c *realfleet.Cluster) {
	t.Helper()
	for _, m := range c.Machines {
		root := c.Root(m)
		if err := os.MkdirAll(filepath.Join(root, pfHostDir), 0o755); err != nil {
			t.Fatal(err)
		}
		for p, body := range map[string]string{
			pfEnvFile:                "PF_FILE=from the env file of " + m.Name + "\n",
			pfHostDir + "/hello.txt": "hello from " + m.Name + "\n",
		} {
			if err := os.WriteFile(filepath.Join(root, p), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.MkdirAll(c.PluginDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.PluginDir(), pfPlugin), []byte(pfPluginScript), 0o755); err != nil {
		t.Fatal(err)
	}
}

// pfRemoveFiles undoes pfWriteFiles, and the plugin's log and volumes.
func pfRemoveFiles(c *realfleet.Cluster) {
	for _, m := range c.Machines {
		root := c.Root(m)
		for _, p := range []string{pfEnvFile, pfHostDir, pfPlugLog, "/mnt/" + pfPlugin} {
			_ = os.RemoveAll(filepath.Join(root, p))
		}
	}
	_ = os.Remove(filepath.Join(c.PluginDir(), pfPlugin))
}

// waitHealthGated waits until the unit is running, and checks that the
// status said it waited for its health check first and that the check
// passes when it says running. It returns how long it was seen waiting.
func (e *env) waitHealthGated(name string, timeout time.Duration) time.Duration {
	e.t.Helper()
	var first, last time.Time
	e.waitFor(name+" running", timeout, func() (bool, string) {
		st, _ := e.status(name)
		if strings.Contains(st.Message, "waiting for its health check") {
			if first.IsZero() {
				first = time.Now()
			}
			last = time.Now()
		}
		return st.Phase == "running", st.Phase + ": " + st.Message
	})
	if first.IsZero() {
		e.t.Errorf("%s reached running without its status ever saying it waited for its health check", name)
	}
	return last.Sub(first).Round(100 * time.Millisecond)
}

// onePod waits for the unit's one pod of its current spec, Running, and
// returns it.
func (e *env) onePod(ctx context.Context, name string) seedPod {
	e.t.Helper()
	st, _ := e.status(name)
	return e.onePodOf(ctx, name, st.SpecHash)
}

func (e *env) onePodOf(ctx context.Context, name, hash string) seedPod {
	e.t.Helper()
	want := pfPrefix + "_" + name + "_" + short(hash) + "_"
	var pod seedPod
	e.waitFor("the pod of "+name+" at "+short(hash), time.Minute, func() (bool, string) {
		var pods []seedPod
		var desc strings.Builder
		for _, m := range e.c.Machines {
			st, err := e.c.Podmans(ctx, m)
			if err != nil {
				return false, err.Error()
			}
			fmt.Fprintf(&desc, "%s:\n%s", m.Name, st)
			for _, p := range st.Pods {
				if strings.HasPrefix(p.Name, want) && p.Status == "Running" {
					pods = append(pods, seedPod{Pod: p, Machine: m})
				}
			}
		}
		if len(pods) == 1 {
			pod = pods[0]
		}
		return len(pods) == 1, desc.String()
	})
	return pod
}

// podIP is the pod's address in podman's default network.
func (e *env) podIP(ctx context.Context, p seedPod) string {
	e.t.Helper()
	ips, err := e.c.PodIPs(ctx, p.Machine, p.Name)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(ips) != 1 {
		e.t.Fatalf("pod %s on %s has addresses %q, want one (podman's default network)", p.Name, p.Machine.Name, ips)
	}
	return ips[0]
}

// getPod fetches path from the pod's app on port.
func getPod(ctx context.Context, ip, port, path string) (int, string, error) {
	return realfleet.GetURL(ctx, "http://"+net.JoinHostPort(ip, port)+path, 3*time.Second)
}

// wantPodFields checks pod p from inside (both apps, through the pod's
// address) and from its machine: labels, env, envFiles, KAYLEE_ID,
// volumes, cmd and args, the image's version on app 0.
func (e *env) wantPodFields(ctx context.Context, p seedPod, ip, version string) {
	e.t.Helper()
	t := e.t
	apps := map[string]string{"80": "testimage " + version + " on :80\n", "8081": "testimage app1 on :8081\n"}
	for port, want := range apps {
		if code, body, err := getPod(ctx, ip, port, "/"); err != nil || code != 200 || body != want {
			t.Errorf("GET / on %s:%s (pod %s): %d %q %v, want 200 %q", ip, port, p.Name, code, body, err, want)
		}
		for _, v := range [][2]string{
			{"/getenv?name=GREETING", pfGreeting},
			{"/getenv?name=PF_FILE", "from the env file of " + p.Machine.Name},
			{"/getenv?name=KAYLEE_ID", p.Name},
			{"/file?path=/data/hello.txt", "hello from " + p.Machine.Name + "\n"},
			{"/file?path=/plug/marker", "mounted pfvol (opt=1) for " + p.Name + "\n"},
		} {
			if code, body, err := getPod(ctx, ip, port, v[0]); err != nil || code != 200 || body != v[1] {
				t.Errorf("app on :%s of pod %s: GET %s: %d %q %v, want 200 %q", port, p.Name, v[0], code, body, err, v[1])
			}
		}
	}
	// What podman gave each app: app 1's entrypoint is its cmd, its
	// arguments its args split as systemd splits them. (podman 4.3 shows
	// the entrypoint as one string, the words joined.)
	for i, want := range []string{
		`"/testimage --listen :80 --version ` + version + `" ["--start-delay=5s"]`,
		`"/testimage" ["--listen",":8081","--version=app1"]`,
	} {
		out, err := e.c.Podman(ctx, p.Machine, "inspect", "--type", "container", "--format",
			"{{json .Config.Entrypoint}} {{json .Config.Cmd}}", fmt.Sprintf("%s-%d", p.Name, i))
		if got := strings.TrimSpace(out); err != nil || got != want {
			t.Errorf("podman inspect %s-%d on %s: entrypoint and cmd %s (%v), want %s", p.Name, i, p.Machine.Name, got, err, want)
		}
	}
	e.wantLabels(ctx, p)
	e.wantPluginLog(ctx, p, "mount pfvol opt=1 "+p.Name+" pod=no")
}

// wantLabels checks the io.kaylee labels of the pod and its apps (the
// infra container has the pod's), and that podman's label filters find
// them.
func (e *env) wantLabels(ctx context.Context, p seedPod) {
	e.t.Helper()
	t := e.t
	want := map[string]string{"io.kaylee.unit": "fields", "io.kaylee.instance": p.Name, "io.kaylee.machine": p.Machine.ID}
	for k, v := range want {
		if p.Labels[k] != v {
			t.Errorf("pod %s: label %s=%q, want %q (labels %v)", p.Name, k, p.Labels[k], v, p.Labels)
		}
	}
	for _, f := range [][2]string{
		{"pod ps --filter label=io.kaylee.unit=fields --format {{.Name}}", p.Name},
		{"pod ps --filter label=io.kaylee.instance=" + p.Name + " --format {{.Name}}", p.Name},
		{"ps --filter label=io.kaylee.instance=" + p.Name + " --filter label=io.kaylee.machine=" + p.Machine.ID + " --format {{.Names}}", p.Name + "-0 " + p.Name + "-1 " + p.Name + "-infra"},
		{"ps --filter label=io.kaylee.unit=fields --filter label=io.kaylee.app=1 --format {{.Names}}", p.Name + "-1"},
	} {
		out, err := e.c.Podman(ctx, p.Machine, strings.Fields(f[0])...)
		if got := strings.Join(sortedFields(out), " "); err != nil || got != f[1] {
			t.Errorf("podman %s on %s: %q (%v), want %q", f[0], p.Machine.Name, got, err, f[1])
		}
	}
}

func sortedFields(s string) []string {
	f := strings.Fields(s)
	sort.Strings(f)
	return f
}

// wantPluginLog waits for a line of the volume plugin's log on p's machine.
func (e *env) wantPluginLog(ctx context.Context, p seedPod, line string) {
	e.t.Helper()
	e.waitFor("plugin log line "+line, 30*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(filepath.Join(e.c.Root(p.Machine), pfPlugLog))
		return strings.Contains("\n"+string(b), "\n"+line+"\n"), fmt.Sprintf("%s on %s:\n%s", pfPlugLog, p.Machine.Name, b)
	})
}

// wantJournal finds the line starting with prefix in the journal of pod
// p's fleet unit; check says what is wrong with it, or "".
func (e *env) wantJournal(ctx context.Context, p seedPod, since time.Time, prefix string, check func(string) string) {
	e.t.Helper()
	unit := strings.ReplaceAll(p.Name, "_", ":") + ".service"
	out, err := e.c.Exec(ctx, p.Machine, "journalctl", "--no-pager", "-o", "cat", "--since", sinceArg(since), "-u", unit)
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, prefix) {
			if msg := check(line); msg != "" {
				e.t.Errorf("journal of %s on %s: %q: %s", unit, p.Machine.Name, line, msg)
			}
			e.t.Logf("journal of %s: %s", unit, line)
			return
		}
	}
	e.t.Errorf("journal of %s on %s has no line %q… (%v):\n%s", unit, p.Machine.Name, prefix, err, tail(out, 20))
}

// wantHealth404 finds, in the journals of the failed spec's units on every
// machine, the health check's message.
func (e *env) wantHealth404(ctx context.Context, hash string, since time.Time) {
	e.t.Helper()
	all := e.journals(ctx, pfPrefix+":fields:"+short(hash)+":*", since)
	for _, line := range strings.Split(all, "\n") {
		if strings.Contains(line, "kaylee-health: ") && strings.Contains(line, "-infra not healthy within 12s (last: HTTP 404 from ") {
			e.t.Logf("journal: %s", line)
			return
		}
	}
	e.t.Errorf("no journal of spec %s says its check got 404:\n%s", short(hash), tail(all, 30))
}

// journals is journalctl -u pattern on every machine since a time (a
// spec renders the same unit names in every run of the test).
func (e *env) journals(ctx context.Context, pattern string, since time.Time) string {
	var all strings.Builder
	for _, m := range e.c.Machines {
		out, _ := e.c.Exec(ctx, m, "journalctl", "--no-pager", "-o", "cat", "--since", sinceArg(since), "-u", pattern)
		fmt.Fprintf(&all, "--- %s:\n%s", m.Name, out)
	}
	return all.String()
}

// podContainers maps pod p's running containers to their IDs.
func (e *env) podContainers(ctx context.Context, p seedPod) map[string]string {
	e.t.Helper()
	st, err := e.c.Podmans(ctx, p.Machine)
	if err != nil {
		e.t.Fatal(err)
	}
	ids := map[string]string{}
	for _, ct := range st.Containers {
		if ct.PodName == p.Name && ct.State == "running" {
			ids[ct.Name] = ct.ID
		}
	}
	return ids
}

// pullNever runs unit never: pull never of an image the registry has and
// no machine has. Its rollout fails on the restart loop, the journal has
// podman's error, and nothing asked the registry for it.
func (e *env) pullNever(ctx context.Context) {
	e.t.Helper()
	t := e.t
	image, err := e.c.PushImage(ctx, realfleet.CountlyImage, "countly:pf-never", "/testimage", "--listen", ":80")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range e.c.Machines {
		if _, err := e.c.Podman(ctx, m, "rmi", "--force", "--ignore", image); err != nil {
			t.Fatal(err)
		}
	}
	off := fileSize(t, e.c.RegistryLog())
	start := time.Now()
	out, errs, code := e.kaylee("run", "--wait", "--timeout", "3m",
		e.unit("never", "name: never\nengine: podman\nreplicas: 1\napps:\n- image: "+image+"\n  pull: never\n"))
	st, _ := e.status("never")
	t.Logf("pull never of an image only the registry has: %s after kaylee run: %s: %s", time.Since(start).Round(100*time.Millisecond), st.Phase, st.Message)
	if code != 1 || st.Phase != "failed" || !strings.Contains(st.Message, "is in a restart loop") {
		t.Errorf("kaylee run --wait: exit %d, status %s %q; want exit 1, failed in a restart loop\n%s%s", code, st.Phase, st.Message, out, errs)
	}
	journal := e.journals(ctx, pfPrefix+":never:*", start)
	want := "Error: " + image + ": image not known"
	found := ""
	for _, line := range strings.Split(journal, "\n") {
		if strings.Contains(line, want) {
			found = line
		}
	}
	if found == "" {
		t.Errorf("no journal of never's units has podman's %q:\n%s", want, tail(journal, 30))
	} else {
		t.Logf("journal: %s", found)
	}
	if reqs := registryRequests(t, e.c, off, "/v2/countly/manifests/pf-never"); len(reqs) > 0 {
		t.Errorf("pull never asked the registry for %s: %s", image, strings.Join(reqs, "\n"))
	}
	for _, m := range e.c.Machines {
		out, err := e.c.Podman(ctx, m, "images", "--format", "{{.Repository}}:{{.Tag}}")
		if err != nil || strings.Contains(out, image) {
			t.Errorf("podman images on %s after pull never: %v\n%s", m.Name, err, out)
		}
	}
}

// fileSize is the size of a file (where new lines of a log start).
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// registryRequests are the registry log's lines written after offset
// that hold path.
func registryRequests(t *testing.T, c *realfleet.Cluster, offset int64, path string) []string {
	t.Helper()
	b, err := os.ReadFile(c.RegistryLog())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b[min(offset, int64(len(b))):]), "\n") {
		if strings.Contains(line, path+" ") || strings.Contains(line, path+`"`) {
			out = append(out, line)
		}
	}
	return out
}

// sinceArg is journalctl's --since for t: the machines share the host's
// clock.
func sinceArg(t time.Time) string { return "@" + strconv.FormatInt(t.Unix()-1, 10) }
