// Package realfleet is the Go side of the real fleet tier: it brings up
// scripts/real-cluster (systemd-nspawn machines running real systemd and
// fleet v1.0.0's real fleetd, an etcd, docker on the host), builds and
// imports the test image, and reads what fleet, systemd and docker show.
//
// It is for tests only; no other package imports it.
package realfleet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/fleet/client"

	"github.com/kaylee-gitops/kaylee/fleet"
)

// EnvRequired, set to 1, says the real tier must run: a missing part is a
// failure, not a skip (scripts/test sets it when it brings the tier up; CI
// always does).
const EnvRequired = "KAYLEE_REAL_TIER"

// Image is the repository of the test image (testimage, imported locally).
const Image = "kaylee-test"

// Cluster is a running real-cluster.
type Cluster struct {
	Endpoint string    // etcd client URL (v2 API on)
	Machines []Machine // as `real-cluster machines` lists them
	Dir      string    // the cluster's state directory
	Registry string    // the image registry (host:port, plain HTTP on loopback)
	root     string    // the repository
	script   string
}

// Machine is one nspawn machine.
type Machine struct {
	Name string // kaylee-m1
	ID   string // fleet's machine ID (/etc/machine-id)
	IP   string // the public IP it publishes in fleet
}

// Root is the repository's top directory.
func Root() string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", "..")
}

// Missing says what keeps the real tier from running here, or "".
func Missing() string {
	var miss []string
	if os.Geteuid() != 0 {
		miss = append(miss, "root")
	}
	for _, c := range []string{"systemd-nspawn", "debootstrap", "dockerd", "docker-registry", "etcd", "curl", "nsenter"} {
		if _, err := exec.LookPath(c); err != nil {
			miss = append(miss, c)
		}
	}
	if _, err := os.Stat("/usr/bin/docker"); err != nil {
		miss = append(miss, "/usr/bin/docker")
	}
	if len(miss) == 0 {
		return ""
	}
	return "needs " + strings.Join(miss, ", ") + " (apt-get install systemd-container debootstrap docker.io docker-registry etcd-server curl, as root)"
}

// Require returns the real cluster, brought up (or revived) with
// `scripts/real-cluster up`. Without EnvRequired=1 the test is skipped
// with the reason; with it, anything missing fails the test.
func Require(t testing.TB) *Cluster {
	t.Helper()
	if os.Getenv(EnvRequired) != "1" {
		why := Missing()
		if why == "" {
			why = "ready to run"
		}
		t.Skipf("real fleet tier not requested (%s=1; scripts/test sets it): %s", EnvRequired, why)
	}
	if why := Missing(); why != "" {
		t.Fatalf("real fleet tier requested (%s=1) but it %s", EnvRequired, why)
	}
	c := &Cluster{root: Root(), Dir: os.Getenv("KAYLEE_REAL_CLUSTER_DIR")}
	if c.Dir == "" {
		c.Dir = "/var/lib/kaylee/real-cluster"
	}
	c.script = filepath.Join(c.root, "scripts", "real-cluster")
	c.Registry = "127.0.0.1:5000"
	if p := os.Getenv("KAYLEE_REAL_CLUSTER_REGISTRY_PORT"); p != "" {
		c.Registry = "127.0.0.1:" + p
	}
	out, err := c.run(context.Background(), "up", "3")
	if err != nil {
		t.Fatalf("scripts/real-cluster up: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "KAYLEE_ETCD_ENDPOINTS="); ok {
			c.Endpoint = v
		}
	}
	if c.Endpoint == "" {
		t.Fatalf("scripts/real-cluster up printed no KAYLEE_ETCD_ENDPOINTS line:\n%s", out)
	}
	if out, err = c.run(context.Background(), "machines"); err != nil {
		t.Fatalf("scripts/real-cluster machines: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			c.Machines = append(c.Machines, Machine{Name: f[0], ID: f[1], IP: f[2]})
		}
	}
	return c
}

func (c *Cluster) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.script, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

// Machine returns the machine with the given fleet machine ID.
func (c *Cluster) Machine(id string) (Machine, bool) {
	for _, m := range c.Machines {
		if m.ID == id {
			return m, true
		}
	}
	return Machine{}, false
}

// Kill cuts a machine's power: its nspawn and its containers are killed.
func (c *Cluster) Kill(t testing.TB, m Machine) {
	t.Helper()
	if out, err := c.run(context.Background(), "kill", m.Name); err != nil {
		t.Fatalf("killing %s: %v\n%s", m.Name, err, out)
	}
}

// Revive boots every machine that is not running.
func (c *Cluster) Revive(t testing.TB) {
	t.Helper()
	if out, err := c.run(context.Background(), "up", fmt.Sprint(len(c.Machines))); err != nil {
		t.Fatalf("scripts/real-cluster up: %v\n%s", err, out)
	}
}

// Exec runs a command inside a machine and returns its output and
// standard error, together.
//
// It runs nsenter into the machine's namespaces itself, as `real-cluster
// exec` does, without the script's bash around it (the tests exec and run
// podman in the machines many times a second).
func (c *Cluster) Exec(ctx context.Context, m Machine, args ...string) (string, error) {
	cmd, err := c.nsenter(ctx, m, args...)
	if err != nil {
		return "", err
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// nsenter is the command that runs args in machine m's namespaces (all of
// its systemd's, PID 1 in the machine), as `real-cluster exec` runs it.
func (c *Cluster) nsenter(ctx context.Context, m Machine, args ...string) (*exec.Cmd, error) {
	pid, err := c.initPID(m)
	if err != nil {
		return nil, err
	}
	return exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(pid), "-a"}, args...)...), nil
}

// initPID is the host PID of machine m's systemd while its nspawn runs
// (the script's init_pid: both pid files name live processes).
func (c *Cluster) initPID(m Machine) (int, error) {
	dir := c.machineDir(m)
	if !alive(filepath.Join(dir, "pid")) {
		return 0, fmt.Errorf("%s is not running (no live nspawn in %s)", m.Name, dir)
	}
	pid, ok := pidOf(filepath.Join(dir, "init"))
	if !ok {
		return 0, fmt.Errorf("%s is not running (no live systemd in %s)", m.Name, dir)
	}
	return pid, nil
}

// machineDir is machine m's state directory (scripts/real-cluster's
// $dir/machines/mN).
func (c *Cluster) machineDir(m Machine) string {
	return filepath.Join(c.Dir, "machines", strings.TrimPrefix(m.Name, "kaylee-"))
}

// pidOf reads a pid file and reports whether its process lives (the
// script's alive).
func pidOf(file string) (int, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, syscall.Kill(pid, 0) == nil
}

func alive(file string) bool {
	_, ok := pidOf(file)
	return ok
}

// Alive reports whether what `scripts/real-cluster up` started still runs:
// etcd, the registry and every machine (its nspawn and its systemd). A
// test that killed a machine boots it again (Revive); one that failed
// before may not have.
func (c *Cluster) Alive() bool {
	for _, f := range []string{"etcd.pid", "registry.pid"} {
		if !alive(filepath.Join(c.Dir, f)) {
			return false
		}
	}
	for _, m := range c.Machines {
		if _, err := c.initPID(m); err != nil {
			return false
		}
	}
	return len(c.Machines) > 0
}

// Environment is what machine m's /etc/environment holds, as on CoreOS:
// its address, which a unit reads (envFiles: [/etc/environment]) to publish
// a port on it (-p ${COREOS_PUBLIC_IPV4}:8080:8080). The machines share
// the host's network namespace: a port published on every address would
// clash between machines.
func (m Machine) Environment() string {
	return fmt.Sprintf("COREOS_PUBLIC_IPV4=%s\nCOREOS_PRIVATE_IPV4=%s\n", m.IP, m.IP)
}

// WriteEnvironment writes each machine's /etc/environment (Environment),
// as scripts/real-cluster does when it boots one, for machines booted by
// an older script.
func (c *Cluster) WriteEnvironment(t testing.TB) {
	t.Helper()
	for _, m := range c.Machines {
		p := filepath.Join(c.Root(m), "etc", "environment")
		if b, err := os.ReadFile(p); err == nil && string(b) == m.Environment() {
			continue
		}
		if err := os.WriteFile(p, []byte(m.Environment()), 0o644); err != nil {
			t.Fatalf("writing %s's /etc/environment: %v", m.Name, err)
		}
	}
}

// AgentTTL is fleet's agent TTL on the cluster: the --agent-ttl of the
// first machine's fleetd, as scripts/real-cluster wrote it when it booted
// the machine (KAYLEE_REAL_CLUSTER_TTL). fleet drops a machine that stopped
// its heartbeats (every TTL/2) once the TTL has passed.
func (c *Cluster) AgentTTL() (time.Duration, error) {
	if len(c.Machines) == 0 {
		return 0, fmt.Errorf("the cluster has no machines")
	}
	p := filepath.Join(c.Root(c.Machines[0]), "etc", "systemd", "system", "fleetd.service")
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, fmt.Errorf("fleet's agent TTL: %w", err)
	}
	f := strings.Fields(string(b))
	for i, w := range f[:max(len(f)-1, 0)] {
		if w == "--agent-ttl" {
			d, err := time.ParseDuration(f[i+1])
			if err != nil {
				return 0, fmt.Errorf("%s: --agent-ttl %q: %w", p, f[i+1], err)
			}
			return d, nil
		}
	}
	return 0, fmt.Errorf("%s: no --agent-ttl", p)
}

// APIURL is the URL of fleetd's HTTP API on machine m.
func (c *Cluster) APIURL(m Machine) string {
	port := os.Getenv("KAYLEE_REAL_CLUSTER_API_PORT")
	if port == "" {
		port = "49153"
	}
	return "http://" + m.IP + ":" + port
}

// PluginDir is the host directory every machine sees as
// /var/lib/kaylee/plugins/volumes (volume plugins for tests).
func (c *Cluster) PluginDir() string { return filepath.Join(c.Dir, "plugins") }

// API is a fleet client on the cluster's registry.
func (c *Cluster) API(t testing.TB) client.API {
	t.Helper()
	api, err := fleet.NewAPI(fleet.Config{EtcdEndpoints: []string{c.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// Container is one docker container of a Kaylee unit, from its labels.
type Container struct {
	ID       string
	Name     string // the instance ID, e.g. k2_web_36f48c8a_93cd00_0
	Image    string
	Unit     string // io.kaylee.unit
	Machine  string // io.kaylee.machine: the fleet machine ID
	IP       string // on docker's bridge
	Running  bool
	Restarts int
}

// Containers lists the running containers of Kaylee unit name, or of
// every Kaylee unit for "" (every machine's, told apart by Machine).
//
// It asks dockerd's API on its unix socket (what `docker ps -q --filter
// label=…` and `docker inspect` show, without them): the samplers list
// containers several times a second, and the docker CLI, a process each
// time, was about a third of the machine's CPU while they ran.
func Containers(ctx context.Context, unit string) ([]Container, error) {
	label := "io.kaylee.unit"
	if unit != "" {
		label += "=" + unit
	}
	filters, err := json.Marshal(map[string][]string{"label": {label}})
	if err != nil {
		return nil, err
	}
	type inspected struct {
		ID     string `json:"Id"`
		Name   string
		Config struct {
			Image  string
			Labels map[string]string
		}
		State struct {
			Running bool
		}
		RestartCount    int
		NetworkSettings struct{ IPAddress string }
	}
	var raw []inspected
	for try := 1; ; try++ {
		var list []struct {
			ID string `json:"Id"`
		}
		if err := dockerAPI(ctx, "/containers/json?filters="+url.QueryEscape(string(filters)), &list); err != nil {
			return nil, err
		}
		raw = raw[:0]
		gone := false
		for _, l := range list {
			var r inspected
			if err := dockerAPI(ctx, "/containers/"+l.ID+"/json", &r); err != nil {
				if errors.Is(err, errNoSuchContainer) {
					gone = true
					break
				}
				return nil, err
			}
			raw = append(raw, r)
		}
		if !gone {
			break
		}
		// A container went between the list and its inspect (tests that
		// run at once start and remove theirs all the time): look again.
		if try == 5 {
			return nil, fmt.Errorf("docker containers of %q: one went between list and inspect 5 times", label)
		}
	}
	cs := make([]Container, 0, len(raw))
	for _, r := range raw {
		cs = append(cs, Container{ID: r.ID[:12], Name: strings.TrimPrefix(r.Name, "/"), Image: r.Config.Image,
			Unit: r.Config.Labels["io.kaylee.unit"], Machine: r.Config.Labels["io.kaylee.machine"],
			IP: r.NetworkSettings.IPAddress, Running: r.State.Running, Restarts: r.RestartCount})
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
	return cs, nil
}

// errNoSuchContainer is dockerd's 404 for a container path.
var errNoSuchContainer = errors.New("no such container")

// dockerSocket is dockerd's API socket: DOCKER_HOST's when it names a
// unix socket (as the docker CLI takes it), else docker's default, where
// scripts/real-cluster starts dockerd.
func dockerSocket() string {
	if h, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok && h != "" {
		return h
	}
	return "/var/run/docker.sock"
}

// dockerClient talks HTTP to dockerd over its unix socket. It holds no
// state but idle connections, which keeps a sampler's requests cheap.
var dockerClient = &http.Client{Transport: &http.Transport{
	DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", dockerSocket())
	},
	MaxIdleConnsPerHost: 8,
}}

// dockerAPI GETs path from dockerd's API and decodes its JSON answer into
// v; a 404 is errNoSuchContainer.
func dockerAPI(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker"+path, nil)
	if err != nil {
		return err
	}
	resp, err := dockerClient.Do(req)
	if err != nil {
		return fmt.Errorf("docker API GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("docker API GET %s: %w", path, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("docker API GET %s: %w: %s", path, errNoSuchContainer, bytes.TrimSpace(b))
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("docker API GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("docker API GET %s: %w", path, err)
	}
	return nil
}

// Get fetches path from a container's test image server (port 8080).
func (ct Container) Get(ctx context.Context, path string) (int, string, error) {
	return ct.getWithin(ctx, path, 2*time.Second)
}

// getWithin is Get with the given timeout.
func (ct Container) getWithin(ctx context.Context, path string, timeout time.Duration) (int, string, error) {
	return GetURL(ctx, "http://"+ct.IP+":8080"+path, timeout)
}

// GetURL fetches url within timeout: its status code and body.
func GetURL(ctx context.Context, url string, timeout time.Duration) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// Serving reports whether the container answers 200 on /healthz. One
// that has not answered within Get's 2 s is asked once more, for 5 s: on a
// busy 2-core machine a running container was slower than that, and only a
// refusal or an error status says it does not serve (a stopped one refuses
// at once).
func (ct Container) Serving(ctx context.Context) bool {
	code, _, err := ct.Get(ctx, "/healthz")
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		code, _, err = ct.getWithin(ctx, "/healthz", 5*time.Second)
	}
	return err == nil && code == http.StatusOK
}

// RemoveContainers force-removes every container whose name starts with
// prefix (cleanup after a test).
func RemoveContainers(ctx context.Context, prefix string) {
	var list []struct{ Names []string }
	_ = dockerAPI(ctx, "/containers/json?all=1", &list)
	var names []string
	for _, c := range list {
		for _, n := range c.Names {
			if n = strings.TrimPrefix(n, "/"); strings.HasPrefix(n, prefix) {
				names = append(names, n)
			}
		}
	}
	if len(names) > 0 {
		_, _ = dockerOut(ctx, append([]string{"rm", "-f"}, names...)...)
	}
}

// Events returns docker's events for containers of a unit since a time:
// one "action exitCode=N" string each (stop, kill, die, start, ...).
func Events(ctx context.Context, unit string, since time.Time) ([]string, error) {
	out, err := dockerOut(ctx, "events", "--since", fmt.Sprint(since.Unix()), "--until", fmt.Sprint(time.Now().Unix()+1),
		"--filter", "type=container", "--filter", "label=io.kaylee.unit="+unit,
		"--format", `{{.Action}} {{index .Actor.Attributes "name"}} exitCode={{index .Actor.Attributes "exitCode"}} signal={{index .Actor.Attributes "signal"}}`)
	if err != nil {
		return nil, err
	}
	var evs []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		evs = append(evs, sc.Text())
	}
	return evs, nil
}

func dockerOut(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "/usr/bin/docker", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Push pushes a local image to the cluster's registry as registry/ref and
// removes that tag locally again, so that only a pull brings it back.
func (c *Cluster) Push(ctx context.Context, ref string) (string, error) {
	remote := c.Registry + "/" + ref
	for _, args := range [][]string{{"tag", ref, remote}, {"push", remote}, {"rmi", remote}} {
		if _, err := dockerOut(ctx, args...); err != nil {
			return "", err
		}
	}
	return remote, nil
}

// HasImage reports whether the host's docker has the image ref.
func HasImage(ctx context.Context, ref string) bool {
	_, err := dockerOut(ctx, "image", "inspect", ref)
	return err == nil
}

// BuildImage builds the test image's static binary and imports it under
// each tag as Image:tag, with the binary as entrypoint.
func BuildImage(ctx context.Context, dir string, tags ...string) error {
	tar, err := buildTestImage(ctx, dir)
	if err != nil {
		return err
	}
	for _, tag := range tags {
		if _, err := dockerOut(ctx, "import", "--change", `ENTRYPOINT ["/testimage"]`, tar, Image+":"+tag); err != nil {
			return err
		}
	}
	return nil
}

// The pod images, in the cluster's registry under these names: stand-ins
// for the seed's countly sample, docker://monder/countly-docker:latest and
// monder.cc/rkt-sidekick:v0.0.3, made from the test image.
const (
	// CountlyImage is the test image serving on :80, as countly-docker did.
	CountlyImage = "countly:latest"
	// SidekickImage is the test image as the seed's sidekick (entrypoint
	// /rkt-sidekick): it takes the seed's sidekick arguments, calls the
	// pod's main app on localhost and reports what it saw on stdout, a line
	// like SidekickReport's.
	SidekickImage = "rkt-sidekick:v0.0.3"
)

// SidekickReport is the start of the line the sidekick writes on stdout
// when the main app of its pod answered (on start, then every --interval):
// the name is the sidekick's PATH argument without its --expireDir, the
// address its --format with $ip filled in, e.g.
//
//	sidekick: countly/k2_countly_1: 10.5.2.7:80 → GET http://localhost:80/ 200 testimage v1 on :80
func SidekickReport(name, addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		port = "80"
	}
	return fmt.Sprintf("sidekick: %s: %s → GET http://localhost:%s/ 200 ", name, addr, port)
}

// BuildPodImages imports CountlyImage and SidekickImage into the host's
// docker (PushPodImages puts them in the cluster's registry, where the
// machines' podman pulls them).
func BuildPodImages(ctx context.Context, dir string) error {
	tar, err := buildTestImage(ctx, dir)
	if err != nil {
		return err
	}
	for ref, entrypoint := range map[string]string{
		CountlyImage:  `ENTRYPOINT ["/testimage", "--listen", ":80"]`,
		SidekickImage: `ENTRYPOINT ["/rkt-sidekick"]`,
	} {
		if _, err := dockerOut(ctx, "import", "--change", entrypoint, tar, ref); err != nil {
			return err
		}
	}
	return nil
}

// PushPodImages pushes the pod images (BuildPodImages) to the cluster's
// registry and returns their references there (countly, sidekick).
func (c *Cluster) PushPodImages(ctx context.Context) (string, string, error) {
	countly, err := c.Push(ctx, CountlyImage)
	if err != nil {
		return "", "", err
	}
	sidekick, err := c.Push(ctx, SidekickImage)
	return countly, sidekick, err
}

// buildTestImage builds testimage into dir and tars it, with a link
// rkt-sidekick to it (the sidekick mode), for docker import.
func buildTestImage(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "testimage")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./fleet/realfleet/testimage")
	build.Dir = Root()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the test image: %w\n%s", err, out)
	}
	link := filepath.Join(dir, "rkt-sidekick")
	if err := os.Remove(link); err != nil && !os.IsNotExist(err) {
		return "", err
	}
	if err := os.Symlink("testimage", link); err != nil {
		return "", err
	}
	tar := filepath.Join(dir, "testimage.tar")
	if out, err := exec.CommandContext(ctx, "tar", "-C", dir, "-cf", tar, "testimage", "rkt-sidekick").CombinedOutput(); err != nil {
		return "", fmt.Errorf("tar: %w\n%s", err, out)
	}
	return tar, nil
}

// Build builds ./cmd/kaylee into dir and returns the binary's path.
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "kaylee")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/kaylee")
	cmd.Dir = Root()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building kaylee: %w\n%s", err, out)
	}
	return bin, nil
}

// Root is the host path of a machine's root directory (its overlay).
func (c *Cluster) Root(m Machine) string {
	return filepath.Join(c.machineDir(m), "root")
}

// PushImage makes the local image ref from the local image from with
// another entrypoint (docker commit of a container created from it, never
// started) and pushes it to the cluster's registry (Push): a new image
// under ref there, pushed again with another entrypoint to make a new
// version under the same tag. It returns its reference there.
func (c *Cluster) PushImage(ctx context.Context, from, ref string, entrypoint ...string) (string, error) {
	ep, err := json.Marshal(entrypoint)
	if err != nil {
		return "", err
	}
	id, err := dockerOut(ctx, "create", from)
	if err != nil {
		return "", err
	}
	id = strings.TrimSpace(id)
	_, err = dockerOut(ctx, "commit", "--change", "ENTRYPOINT "+string(ep), id, ref)
	if _, rmErr := dockerOut(ctx, "rm", id); err == nil {
		err = rmErr
	}
	if err != nil {
		return "", err
	}
	return c.Push(ctx, ref)
}

// RegistryLog is the cluster's image registry's log (its requests).
func (c *Cluster) RegistryLog() string { return filepath.Join(c.Dir, "registry", "log") }
