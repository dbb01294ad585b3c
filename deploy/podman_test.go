package deploy

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRenderPodman pins the lines of a podman unit that the seed's fields
// become: {id} stands for the instance ID.
func TestRenderPodman(t *testing.T) {
	const (
		rm     = "-/usr/bin/podman pod rm -f --ignore {id}"
		labels = "--label=io.kaylee.unit=web --label=io.kaylee.instance={id} --label=io.kaylee.machine=%m"
		pod    = "/usr/bin/podman pod create --name {id} --infra-name {id}-infra " + labels
		app    = "/usr/bin/podman create --pod {id} --name {id}-"
	)
	tests := []struct {
		name string
		spec Spec
		want []string // ExecStartPre lines, in order
	}{
		{"one app: podman's default pull is missing, the hostname the unit's name",
			Spec{Apps: []App{{Image: "docker://nginx:1.25"}}},
			[]string{rm, pod + " --hostname=web", app + "0 --pull=missing -e KAYLEE_ID " + labels + " --label=io.kaylee.app=0 docker://nginx:1.25"}},
		{"cmd is the entrypoint, args its arguments, pull as written",
			Spec{Apps: []App{{Image: "busybox", Cmd: "/bin/sh", Args: []string{"-c", "'date +%s'"}, Pull: PullNever}}},
			[]string{rm, pod + " --hostname=web", app + "0 --pull=never -e KAYLEE_ID " + labels + " --label=io.kaylee.app=0 --entrypoint /bin/sh busybox -c 'date +%%s'"}},
		{"rkt's pod options map to the pod's",
			Spec{Net: "host", Args: []string{"--dns=10.0.0.2", "--dns-search lan", "--dns-opt=ndots:2", "--hostname=w1", "--hosts-entry=10.0.0.9=db.lan"}, Apps: []App{{Image: "a"}}},
			[]string{rm, pod + " --network=host --dns=10.0.0.2 --dns-search=lan --dns-option=ndots:2 --hostname=w1 --add-host=db.lan:10.0.0.9", app + "0 --pull=missing -e KAYLEE_ID " + labels + " --label=io.kaylee.app=0 a"}},
		{"the seed's --net=flannel,default: podman's default network first",
			Spec{Args: []string{"--dns=10.0.0.2", "--net=flannel,default"}, Apps: []App{{Image: "a"}}},
			[]string{rm, pod + " --network=bridge --network=flannel --dns=10.0.0.2 --hostname=web", app + "0 --pull=missing -e KAYLEE_ID " + labels + " --label=io.kaylee.app=0 a"}},
		{"default alone is podman's default network",
			Spec{Net: "default", Apps: []App{{Image: "a"}}},
			[]string{rm, pod + " --hostname=web", app + "0 --pull=missing -e KAYLEE_ID " + labels + " --label=io.kaylee.app=0 a"}},
		{"env by name, env files, every volume in every app",
			Spec{EnvFiles: []string{"/etc/env", "-/etc/opt.env"}, Env: []EnvVar{{Name: "A", Value: "secret value"}},
				Volumes: []Volume{{Source: "/srv", Path: "/data"}, {ID: "v1", Driver: "blocker", Path: "/b"}},
				Apps:    []App{{Image: "a"}, {Image: "b", Pull: PullAlways}}},
			[]string{VolumePluginDir + "/blocker v1", rm, pod + " --hostname=web",
				app + "0 --pull=missing -e KAYLEE_ID -e A --env-file=/etc/env -v /srv:/data -v /mnt/blocker/v1:/b " + labels + " --label=io.kaylee.app=0 a",
				app + "1 --pull=always -e KAYLEE_ID -e A --env-file=/etc/env -v /srv:/data -v /mnt/blocker/v1:/b " + labels + " --label=io.kaylee.app=1 b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.spec
			s.Name, s.Engine = "web", EnginePodman
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			units, err := Render(&s, RenderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			u := units[0]
			n, _ := ParseUnitName("k2", u.Name)
			expand := strings.NewReplacer("{id}", n.InstanceID()).Replace
			var want []string
			for _, w := range tt.want {
				want = append(want, expand(w))
			}
			if got := options(u, "Service", "ExecStartPre"); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("ExecStartPre:\n got %q\nwant %q", got, want)
			}
			if got := optionValue(u, "Service", "Environment"); strings.Contains(strings.Join(options(u, "Service", "ExecStartPre"), " "), "secret") || got == "" {
				t.Errorf("an env value is on an Exec line")
			}
			// The pod goes after every stop, crash and restart, before
			// the volumes are unmounted; a stop ends the supervisor.
			post := options(u, "Service", "ExecStopPost")
			if len(post) == 0 || post[0] != expand(rm) {
				t.Errorf("ExecStopPost %q, want %q first", post, expand(rm))
			}
			if got := options(u, "Service", "KillMode"); len(got) != 1 || got[0] != "mixed" {
				t.Errorf("KillMode %q", got)
			}
			if got := options(u, "Service", "ExecStop"); got != nil {
				t.Errorf("ExecStop %q: the supervisor stops the pod on SIGTERM", got)
			}
			argv := execArgv(t, options(u, "Service", "ExecStart")[0])
			wantArgv := []string{BashPath, "-c", plainScript(podSupervisor), "kaylee-pod", n.InstanceID(), PodmanPath}
			for _, a := range s.Apps {
				wantArgv = append(wantArgv, a.Image)
			}
			if strings.Join(argv, "\x00") != strings.Join(wantArgv, "\x00") {
				t.Errorf("ExecStart runs %q", argv[3:])
			}
		})
	}
}

// TestRenderPodmanHealthAndProbe: the check and the primary probe ask
// podman for the address of the pod's infra container.
func TestRenderPodmanHealthAndProbe(t *testing.T) {
	s := &Spec{Name: "db", Engine: EnginePodman, Replicas: 2, Stateful: true, Apps: []App{{Image: "pg"}},
		Health: &Health{TCP: &TCPCheck{Port: 5432}}, Primary: &Probe{HTTP: &HTTPCheck{Port: 8008}}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	units, err := Render(s, RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, _ := ParseUnitName("k2", units[1].Name)
	argv := execArgv(t, options(units[1], "Service", "ExecStartPost")[0])
	if argv[4] != n.InstanceID()+"-infra" || argv[12] != PodmanPath {
		t.Errorf("health checks %s with %s", argv[4], argv[12])
	}
	if got := strings.Join(options(units[1], "Service", "ExecStartPre"), "\n"); !strings.Contains(got, " -e KAYLEE_ID -e KAYLEE_MEMBER ") {
		t.Errorf("member's apps do not get KAYLEE_MEMBER:\n%s", got)
	}
	p, err := RenderProbe(s, ProbeName{Prefix: "k2", Name: "db", SpecHash: n.SpecHash, Index: 1}, n, "0123456789abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	argv = execArgv(t, options(p, "Service", "ExecStart")[0])
	if argv[4] != n.InstanceID()+"-infra" || argv[12] != PodmanPath {
		t.Errorf("probe checks %s with %s", argv[4], argv[12])
	}
}

// TestValidatePodmanRefuses: what podman cannot do is refused at
// validation, with the file, line and field, for a unit that names
// podman and for one that runs on a cluster whose default is podman.
func TestValidatePodmanRefuses(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // the whole error
	}{
		{"rkt's stage1", "args:\n- --dns=10.0.0.2\n- --net=default\n- --stage1-name=coreos.com/rkt/stage1-fly\n",
			`u.yaml:7: args[2]: "--stage1-name=coreos.com/rkt/stage1-fly" is rkt's and has no podman equivalent: engine podman maps only --dns, --dns-search, --dns-opt, --hostname, --hosts-entry, --port and --net to its pod`},
		{"a hint", "args:\n- --volume=data,kind=host,source=/srv\n",
			`u.yaml:5: args[0]: "--volume=data,kind=host,source=/srv" is rkt's and has no podman equivalent here: use volumes`},
		{"not an option", "args:\n- docker://busybox\n",
			`u.yaml:5: args[0]: "docker://busybox" is not an option: engine podman takes only rkt's pod options --dns, --dns-search, --dns-opt, --hostname, --hosts-entry, --port and --net in args`},
		{"no value", "args:\n- --dns\n", `u.yaml:5: args[0]: "--dns" needs a value (--dns=VALUE)`},
		{"dns host", "args:\n- --dns=host\n",
			`u.yaml:5: args[0]: "--dns=host" is rkt's (the host's resolv.conf) and has no podman equivalent: leave it out, podman gives the pod the host's resolvers by default`},
		{"hosts entry", "args:\n- --hosts-entry=db.lan\n", `u.yaml:5: args[0]: "--hosts-entry=db.lan" must be --hosts-entry=IP=HOSTNAME`},
		{"host and default", "net: host,default\n", `u.yaml:4: net: host cannot be combined with other networks`},
		{"rkt's CNI args", "args:\n- --net=flannel:IP=10.1.0.5\n", `u.yaml:5: args[0]: "flannel:IP=10.1.0.5": rkt's NAME:ARGS has no podman equivalent: name the network alone`},
		{"a podman mode", "net: slirp4netns\n", `u.yaml:4: net: "slirp4netns" is a podman network mode, not a network: write default for podman's default network`},
		{"networks twice", "net: flannel\nargs:\n- --net=default\n", `u.yaml:6: args[0]: "--net=default": net names the networks too: name them once`},
		{"port of no entry", "ports:\n- {name: http, port: 8080}\nargs:\n- --port=web:18500\n",
			`u.yaml:7: args[0]: "--port=web:18500" must be --port=NAME:[HOSTIP:]HOSTPORT, NAME an entry of ports: ports has no entry named "web"`},
		{"port out of range", "ports:\n- {name: http, port: 8080}\nargs:\n- --port=http:70000\n",
			`u.yaml:7: args[0]: "--port=http:70000" must be --port=NAME:[HOSTIP:]HOSTPORT, NAME an entry of ports: "70000" is not a port (1 to 65535)`},
		{"port's host not an address", "ports:\n- {name: http, port: 8080}\nargs:\n- --port=http:shop.lan:80\n",
			`u.yaml:7: args[0]: "--port=http:shop.lan:80" must be --port=NAME:[HOSTIP:]HOSTPORT, NAME an entry of ports: "shop.lan" is not an IP address or a ${VARIABLE}`},
		{"routed port published elsewhere", "ports:\n- {name: http, port: 8080}\ndomains: [shop.example.com]\nargs:\n- --port=http:18500\n",
			`u.yaml:8: args[0]: "--port=http:18500" publishes port http on 18500, where routers do not look: they reach a replica at its machine's address and port 8080 (ports), so publish it there (--port=http:[HOSTIP:]8080)`},
		{"port without a host port", "ports:\n- {name: http, port: 8080}\nargs:\n- --port=http\n",
			`u.yaml:7: args[0]: "--port=http" must be --port=NAME:[HOSTIP:]HOSTPORT, NAME an entry of ports`},
		{"cmd as JSON", "apps:\n- image: x\n  cmd: '[\"/bin/sh\"]'\n", `u.yaml:4: apps[0].cmd: "[\"/bin/sh\"]" must be one path (podman --entrypoint): put its arguments in args`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := "name: api\n"
			if !strings.Contains(tt.in, "apps:") {
				in += "apps:\n- image: x\n"
			}
			in += tt.in
			// Named in the unit.
			_, err := Load("u.yaml", []byte(strings.Replace(in, "name: api\n", "name: api\nengine: podman\n", 1)))
			// engine: podman is one more line before the field.
			line, rest, _ := strings.Cut(strings.TrimPrefix(tt.want, "u.yaml:"), ":")
			l, _ := strconv.Atoi(line)
			want := "u.yaml:" + strconv.Itoa(l+1) + ":" + rest
			if err == nil || err.Error() != want {
				t.Errorf("engine: podman:\n got %v\nwant %s", err, want)
			}
			// The cluster's default: the unit as written is valid for
			// rkt, and refused for podman.
			docs, err := Decode("u.yaml", []byte(in))
			if err != nil {
				t.Fatal(err)
			}
			if err := docs[0].ValidateWithDefaultEngine(EngineRkt); err != nil {
				t.Fatalf("valid for rkt: %v", err)
			}
			if err := docs[0].ValidateWithDefaultEngine(EnginePodman); err == nil || err.Error() != tt.want {
				t.Errorf("default engine podman:\n got %v\nwant %s", err, tt.want)
			}
			if _, err := Render(docs[0].Spec.WithDefaultEngine(EnginePodman), RenderOptions{}); err == nil {
				t.Error("Render takes it")
			}
		})
	}
	// docker still runs one app; podman runs several.
	two := "name: a\nengine: %s\napps:\n- image: x\n- image: y\n"
	if _, err := Load("u.yaml", []byte(strings.Replace(two, "%s", "docker", 1))); err == nil || !strings.Contains(err.Error(), "u.yaml:3: apps: engine docker runs one app per unit, found 2: split them into units, or use engine podman, which runs them as one pod") {
		t.Errorf("docker with two apps: %v", err)
	}
	if _, err := Load("u.yaml", []byte(strings.Replace(two, "%s", "podman", 1))); err != nil {
		t.Errorf("podman with two apps: %v", err)
	}
}

// needPodSupervisor skips the supervisor's tests where bash 5.1 (wait -n
// -p) is missing, but in CI.
func needPodSupervisor(t *testing.T) {
	t.Helper()
	needBash(t)
	out, err := exec.Command(BashPath, "-c", "sleep 0 & wait -n -p p").CombinedOutput()
	if err != nil {
		skipOutsideCI(t, "%s has no wait -n -p (bash 5.1): %v %s", BashPath, err, out)
	}
}

// fakePodman is a podman stand-in for the supervisor: it logs its
// arguments; pod start exits with $START; wait of app i prints $EXIT_i
// after $AFTER_i seconds when both are set, or waits for pod stop and
// prints 137.
const fakePodman = `#!/bin/bash
echo "$*" >>"$DIR/log"
case "$1 $2" in
"pod start") exit ${START:-0} ;;
"pod stop") touch "$DIR/stopped"; exit 0 ;;
esac
[ "$1" = wait ] || exit 2
i=${2##*-}
w=WAITFAIL_$i
if [ -n "${!w}" ]; then sleep 0.2; echo "Error: no container with name or ID $2 found" >&2; exit ${!w}; fi
e=EXIT_$i a=AFTER_$i
if [ -n "${!e}" ]; then sleep ${!a}; echo ${!e}; exit 0; fi
until [ -e "$DIR/stopped" ]; do sleep 0.05; done
echo 137
`

// TestPodSupervisor runs the podman unit's ExecStart with a stand-in
// podman: any app's exit ends it non-zero with a line saying which app
// (Restart=always restarts the pod), SIGTERM stops the pod and ends it 0
// (a stop ends inactive), and a pod that does not start ends it with
// podman's code.
func TestPodSupervisor(t *testing.T) {
	needPodSupervisor(t)
	t.Parallel()
	s := &Spec{Name: "countly", Engine: EnginePodman, Apps: []App{{Image: "docker://countly:1"}, {Image: "sidekick:2"}}}
	units, err := Render(s, RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	argv := execArgv(t, options(units[0], "Service", "ExecStart")[0])
	id := argv[4]
	tests := []struct {
		name   string
		env    []string
		term   bool // send SIGTERM once the pod runs
		code   int
		stderr string
		log    string // podman's calls after pod start
	}{
		{"the sidekick fails", []string{"EXIT_1=3", "AFTER_1=0.2"}, false, 3,
			"kaylee-pod: {id}: app 1 (sidekick:2) exited with 3; the pod restarts\n", "wait {id}-0\nwait {id}-1\n"},
		{"the main app ends cleanly", []string{"EXIT_0=0", "AFTER_0=0.2"}, false, 1,
			"kaylee-pod: {id}: app 0 (docker://countly:1) exited with 0; the pod restarts\n", "wait {id}-0\nwait {id}-1\n"},
		{"killed by the OOM killer", []string{"EXIT_0=137", "AFTER_0=0.2", "EXIT_1=1", "AFTER_1=5"}, false, 137,
			"kaylee-pod: {id}: app 0 (docker://countly:1) exited with 137; the pod restarts\n", "wait {id}-0\nwait {id}-1\n"},
		{"systemd stops it", nil, true, 0, "", "wait {id}-0\nwait {id}-1\npod stop -t 10 {id}\n"},
		{"the pod does not start", []string{"START=125"}, false, 125, "kaylee-pod: {id}: the pod did not start; it restarts\n", ""},
		{"podman wait fails", []string{"WAITFAIL_1=125"}, false, 255,
			"Error: no container with name or ID {id}-1 found\nkaylee-pod: {id}: podman wait for app 1 (sidekick:2) failed with 125: the exit of the app is not known\n" +
				"kaylee-pod: {id}: app 1 (sidekick:2) exited with 255; the pod restarts\n", "wait {id}-0\nwait {id}-1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			fake := filepath.Join(dir, "podman")
			if err := os.WriteFile(fake, []byte(fakePodman), 0o755); err != nil {
				t.Fatal(err)
			}
			args := append([]string{}, argv...)
			args[5] = fake
			cmd := exec.Command(args[0], args[1:]...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			cmd.Env = append(append(os.Environ(), "DIR="+dir), tt.env...)
			// systemd runs it as a process group's leader: its kill 0
			// must not reach the test.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if tt.term {
				deadline := time.Now().Add(5 * time.Second)
				for {
					b, _ := os.ReadFile(filepath.Join(dir, "log"))
					if strings.Count(string(b), "wait ") == 2 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("the supervisor does not wait for its apps: %q", b)
					}
					time.Sleep(20 * time.Millisecond)
				}
				cmd.Process.Signal(syscall.SIGTERM)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var werr error
			select {
			case werr = <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Fatal("the supervisor did not end")
			}
			code := 0
			var ee *exec.ExitError
			if errors.As(werr, &ee) {
				code = ee.ExitCode()
			}
			expand := strings.NewReplacer("{id}", id).Replace
			if code != tt.code || stderr.String() != expand(tt.stderr) {
				t.Errorf("exit %d, stderr %q; want exit %d, stderr %q", code, stderr.String(), tt.code, expand(tt.stderr))
			}
			b, _ := os.ReadFile(filepath.Join(dir, "log"))
			first, rest, _ := strings.Cut(string(b), "\n")
			if first != expand("pod start {id}") {
				t.Fatalf("first call %q", first)
			}
			// The waits run in parallel: their order is free.
			if got := sortLines(rest); got != sortLines(expand(tt.log)) {
				t.Errorf("podman called with\n%s\nwant\n%s", rest, expand(tt.log))
			}
		})
	}
}

func sortLines(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// TestPodmanGoldenUnitsVerify runs systemd's own check on the rendered
// podman units (their ExecStart is bash: podman itself is not needed).
func TestPodmanGoldenUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		skipOutsideCI(t, "systemd-analyze is not installed")
	}
	verifyGoldenUnits(t, analyze, "testdata/render/podman-*.golden", 6)
}

// TestRenderPodmanRollingAndPlaced: a rolling global unit's fleet units
// (one per machine) and a stateful unit's placed members run pods too,
// each named with its own instance ID.
func TestRenderPodmanRollingAndPlaced(t *testing.T) {
	rolling := &Spec{Name: "agent", Engine: EnginePodman, Global: true, Update: &Update{Strategy: StrategyRolling}, Apps: []App{{Image: "a"}, {Image: "b"}}}
	placed := &Spec{Name: "db", Engine: EnginePodman, Replicas: 2, Stateful: true, Apps: []App{{Image: "pg"}}}
	for _, tt := range []struct {
		spec  *Spec
		o     RenderOptions
		units int
	}{
		{rolling, RenderOptions{Machines: []Machine{{ID: "aaaa"}, {ID: "bbbb"}}}, 2},
		{placed, RenderOptions{Members: []string{"cccc", ""}}, 2},
	} {
		if err := tt.spec.Validate(); err != nil {
			t.Fatal(err)
		}
		units, err := Render(tt.spec, tt.o)
		if err != nil || len(units) != tt.units {
			t.Fatalf("%s: %d units, %v", tt.spec.Name, len(units), err)
		}
		for _, u := range units {
			n, _ := ParseUnitName("k2", u.Name)
			id := n.InstanceID()
			pre := strings.Join(options(u, "Service", "ExecStartPre"), "\n")
			for _, want := range []string{"/usr/bin/podman pod create --name " + id + " --infra-name " + id + "-infra ", "/usr/bin/podman create --pod " + id + " --name " + id + "-0 "} {
				if !strings.Contains(pre, want) {
					t.Errorf("%s: no %q in\n%s", u.Name, want, pre)
				}
			}
		}
	}
}

// A podman unit that publishes its ports (rkt's --port) renders their
// numbers: a change of ports is a new spec hash (a rolling update), as a
// change of any rendered field; without --port, ports stay out of it.
func TestPublishedPortsInHash(t *testing.T) {
	spec := func(args []string, port int) *Spec {
		return &Spec{Name: "shop", Engine: EnginePodman, Replicas: 2, Apps: []App{{Image: "x"}}, Args: args,
			Ports: []Port{{Name: "http", Port: port}}}
	}
	publish := []string{"--port=http:8081"}
	if spec(publish, 8080).Hash(0) == spec(publish, 9090).Hash(0) {
		t.Error("a podman unit publishing its ports keeps its hash when a port changes")
	}
	if spec(nil, 8080).Hash(0) != spec(nil, 9090).Hash(0) {
		t.Error("a unit that publishes no port changes its hash with ports")
	}
	rkt := spec(publish, 8080)
	rkt.Engine = EngineRkt
	other := spec(publish, 9090)
	other.Engine = EngineRkt
	if rkt.Hash(0) != other.Hash(0) {
		t.Error("an rkt unit's --port is rkt's own (the image's port names): ports stay out of its hash")
	}
}
