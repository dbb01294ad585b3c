package deploy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/fleet/schema"
)

// MaxLineLen is the longest unit file line fleet's parser accepts (go-systemd
// drops a unit with a longer one, and it vanishes from fleet's listings).
const MaxLineLen = 2048

// Paths rendered into unit files.
const (
	RktPath         = "/usr/bin/rkt"
	DockerPath      = "/usr/bin/docker"
	BashPath        = "/bin/bash"
	SystemctlPath   = "/usr/bin/systemctl"
	VolumePluginDir = "/var/lib/kaylee/plugins/volumes"
	uuidDir         = "/var/run"
)

const mountServicePrefix = "systemd-mountservice-"

// MountServices are the systemd units that the spec's volumes with driver
// systemd-mountservice-<svc> depend on, <svc>@<id>.service, in volume
// order. A replica starts only once every one of them is active on its
// machine (see the gate in options).
func (s *Spec) MountServices() []string {
	var out []string
	for _, v := range s.Volumes {
		if svc, ok := strings.CutPrefix(v.Driver, mountServicePrefix); ok {
			out = append(out, fmt.Sprintf("%s@%s.service", svc, v.ID))
		}
	}
	return out
}

// RenderOptions are the cluster-wide settings of rendering.
type RenderOptions struct {
	UnitPrefix string // default DefaultUnitPrefix
	Restart    int64  // restart counter: changing it renames every unit
	// Machines are fleet's machines, for a rolling global unit (one fleet
	// unit per matching machine); nil renders it for ExampleMachineID.
	// Other units ignore them.
	Machines []Machine
	// Zones gives, for a unit with spread, the value of its spread key for
	// each replica (see AssignZones), rendered as one more MachineMetadata
	// line; nil renders none (fleet then places replicas as it likes).
	Zones []string
	// Members gives, for a stateful unit, the machine ID each member is
	// placed on, by ordinal: a placed member is pinned there (MachineID);
	// "" or a missing entry is a member not placed yet, rendered as a
	// replica. nil (kaylee render, validation) renders every member
	// unplaced. Other units ignore them.
	Members []string
}

// Render turns a valid spec into the fleet units that run it, in replica
// order, each with desired state "launched". It is deterministic: the same
// spec and options always give the same names and options.
func Render(s *Spec, o RenderOptions) ([]*schema.Unit, error) {
	if o.UnitPrefix == "" {
		o.UnitPrefix = DefaultUnitPrefix
	}
	if err := CheckUnitPrefix(o.UnitPrefix); err != nil {
		return nil, err
	}
	if err := checkRenderable(s); err != nil {
		return nil, err
	}
	hash := s.Hash(o.Restart)
	if s.Rolling() {
		return renderRolling(s, o, hash)
	}
	if s.Stateful {
		return renderMembers(s, o, hash)
	}
	n := s.Instances()
	groups, groupKey := 1, hash
	if s.Replicated() && s.MaxReplicasPerHost > 0 {
		// Group ids of the unit's name: the same for every spec (see
		// fleetSection).
		groups, groupKey = s.MaxReplicasPerHost, s.Name
	}
	units := make([]*schema.Unit, 0, n)
	for i := 0; i < n; i++ {
		name := UnitName{Prefix: o.UnitPrefix, Name: s.Name, SpecHash: hash, Group: groupID(groupKey, i%groups), Index: i}
		r := renderer{spec: s, name: name}
		if s.Global {
			// One fleet unit that fleet runs on every machine: its
			// instance ID ends in the machine's, which systemd fills in.
			r.idSpec = machineIDSpecifier
		}
		if s.Spread != nil && i < len(o.Zones) && o.Zones[i] != "" {
			r.zone = s.Spread.Key + "=" + o.Zones[i]
		}
		u := &schema.Unit{Name: name.String(), DesiredState: "launched", Options: r.options(s.Replicated() && s.MaxReplicasPerHost > 0)}
		if err := checkLines(s, u); err != nil {
			return nil, err
		}
		units = append(units, u)
	}
	return units, nil
}

// checkRenderable refuses what would put an unvalidated word on an Exec
// line, or what the engine cannot run, whether or not the caller
// validated the spec: a pull policy, the health check's words, podman's
// net, args and cmd.
func checkRenderable(s *Spec) error {
	for i, a := range s.Apps {
		if a.Pull != "" && !slices.Contains(pullPolicies, a.Pull) {
			return fmt.Errorf("apps[%d].pull: %q is not a pull policy (missing, always or never)", i, a.Pull)
		}
	}
	if s.Health != nil {
		// The check's words reach the Exec line unquoted: never render
		// one that Validate would refuse.
		c := &checker{lineOf: func(string) int { return 0 }}
		c.checkHealth(s.Health)
		if len(c.errs) > 0 {
			fe := c.errs[0].(*FieldError)
			return fmt.Errorf("%s: %s", fe.Field, fe.Msg)
		}
	}
	if s.EngineName() == EnginePodman {
		// Its net and args must map to podman's options.
		c := &checker{lineOf: func(string) int { return 0 }}
		c.checkPodman(s, true)
		if len(c.errs) > 0 {
			fe := c.errs[0].(*FieldError)
			return fmt.Errorf("%s: %s", fe.Field, fe.Msg)
		}
	}
	return nil
}

type renderer struct {
	spec      *Spec
	name      UnitName
	machineID string // the machine of a rolling global unit's fleet unit
	zone      string // key=value of a spread unit's replica
	// memberMachine is the machine a stateful unit's member is placed on
	// ("": not placed yet).
	memberMachine string
	// idSpec ends the instance ID (KAYLEE_ID, the container's name) with
	// a specifier systemd expands on each machine: "_%m" for a global
	// unit, whose one fleet unit runs on every machine; "" for others.
	idSpec string
	opts   []*schema.UnitOption
}

func (r *renderer) add(section, name, value string) {
	r.opts = append(r.opts, &schema.UnitOption{Section: section, Name: name, Value: value})
}

// options renders the unit file, section by section; grouped says
// whether members of the replica's conflict group must not share a
// machine.
func (r *renderer) options(grouped bool) []*schema.UnitOption {
	mounts := r.spec.MountServices()
	r.unitSection(mounts)
	r.serviceSection(mounts)
	r.fleetSection(grouped)
	return r.opts
}

// unitSection: the description and what the unit waits for.
func (r *renderer) unitSection(mounts []string) {
	s := r.spec
	switch {
	case r.machineID != "":
		r.add("Unit", "Description", fmt.Sprintf("kaylee %s on machine %.8s (spec %s, rolling global)", s.Name, r.machineID, r.name.SpecHash))
	case s.Stateful && r.memberMachine != "":
		r.add("Unit", "Description", fmt.Sprintf("kaylee %s member %d on machine %.8s (spec %s)", s.Name, r.name.Index, r.memberMachine, r.name.SpecHash))
	case s.Stateful:
		r.add("Unit", "Description", fmt.Sprintf("kaylee %s member %d (spec %s)", s.Name, r.name.Index, r.name.SpecHash))
	default:
		// No count: the unit file of a replica does not change with
		// replicas. Replicas count from 0, as in their names.
		r.add("Unit", "Description", fmt.Sprintf("kaylee %s replica %d (spec %s)", s.Name, r.name.Index, r.name.SpecHash))
	}
	r.add("Unit", "Wants", "network-online.target")
	r.add("Unit", "After", "network-online.target")
	for _, dep := range mounts {
		r.add("Unit", "Wants", dep)
		r.add("Unit", "After", dep)
	}
}

// serviceSection: the environment, restarts, the mount gate, volume
// plugins and the engine's Exec lines.
func (r *renderer) serviceSection(mounts []string) {
	s := r.spec
	r.environment()
	r.add("Service", "TimeoutStartSec", "0")
	r.add("Service", "Restart", "always")
	r.add("Service", "RestartSec", "10")
	// The mount gate. systemd starts a unit whose Wants= dependency failed
	// all the same, so without it the pod would run on an unmounted
	// directory. Failing here fails the start, and Restart=always tries
	// again after RestartSec: each restart pulls the mount service in again
	// (Wants=), so a mount that recovers lets the replica start with no one
	// acting. Requires= would not do: a failed dependency fails the start
	// job with result "dependency", which Restart= never retries.
	for _, dep := range mounts {
		r.add("Service", "ExecStartPre", joinArgs(SystemctlPath, "is-active", dep))
	}
	// Volume plugins mount before the engine starts and unmount after it
	// stopped (systemd runs Exec lines of one kind in file order).
	var plugins []Volume
	// The arguments are monder/kaylee's, the only contract script plugins
	// have: <driver> <id> <options> to mount, <driver> -u <id> to unmount.
	// A failed unmount fails the unit (no "-", as there): a volume left
	// mounted must show before anything else mounts it (a stateful member
	// that moves, say).
	for _, v := range s.Volumes {
		if v.Driver != "" && !strings.HasPrefix(v.Driver, mountServicePrefix) {
			plugins = append(plugins, v)
			r.add("Service", "ExecStartPre", joinArgs(VolumePluginDir+"/"+v.Driver, v.ID, v.Options))
		}
	}
	switch s.EngineName() {
	case EngineDocker:
		r.docker()
	case EnginePodman:
		r.podman()
	default:
		r.rkt()
	}
	r.evidence()
	r.secretsCleanup()
	for _, v := range plugins {
		r.add("Service", "ExecStopPost", joinArgs(VolumePluginDir+"/"+v.Driver, "-u", v.ID))
	}
}

// fleetSection: where fleet may run the unit.
func (r *renderer) fleetSection(grouped bool) {
	s := r.spec
	for _, m := range s.Machine {
		r.add("X-Fleet", "MachineMetadata", m)
	}
	if r.zone != "" {
		r.add("X-Fleet", "MachineMetadata", r.zone)
	}
	switch {
	case r.machineID != "":
		r.add("X-Fleet", "MachineID", r.machineID)
		return // validation refuses conflicts on a rolling global unit
	case r.memberMachine != "":
		r.add("X-Fleet", "MachineID", r.memberMachine)
		return // fleet refuses MachineID with Conflicts
	case s.MachineID != "":
		r.add("X-Fleet", "MachineID", s.MachineID)
		return // fleet refuses MachineID with Conflicts
	case s.Global:
		r.add("X-Fleet", "Global", "true")
	case !s.Replicated():
		r.add("X-Fleet", "Conflicts", fmt.Sprintf("%s:%s:*.service", r.name.Prefix, s.Name))
	case grouped && s.Stateful:
		r.add("X-Fleet", "Conflicts", fmt.Sprintf("%s:%s:%s:%s:*.service", r.name.Prefix, s.Name, r.name.SpecHash, r.name.Group))
	case grouped:
		// Every spec's group g has the same id: a replica conflicts with
		// its group's members of every version, so maxReplicasPerHost
		// holds through a rollout too (fleet places a new replica only
		// where no old one of its group runs).
		r.add("X-Fleet", "Conflicts", GroupConflict(r.name.Prefix, s.Name, r.name.Group))
	}
	for _, c := range s.Conflicts {
		r.add("X-Fleet", "Conflicts", fmt.Sprintf("%s:%s:*.service", r.name.Prefix, c))
	}
}

// environment renders the instance's environment: env files, KAYLEE_ID,
// KAYLEE_MEMBER (stateful units) and env.
func (r *renderer) environment() {
	s := r.spec
	for _, f := range s.EnvFiles {
		r.add("Service", "EnvironmentFile", escapeSpecifiers(f))
	}
	r.add("Service", "Environment", strings.TrimSuffix(quoteEnv("KAYLEE_ID", r.name.InstanceID()), `"`)+r.idSpec+`"`)
	if s.Stateful {
		// rkt passes it on with --inherit-env, docker with -e.
		r.add("Service", "Environment", quoteEnv(MemberVar, strconv.Itoa(r.name.Index)))
	}
	for _, e := range s.Env {
		if e.Secret == "" {
			r.add("Service", "Environment", quoteEnv(e.Name, e.Value))
		}
	}
	r.secretFiles()
}

func (r *renderer) rkt() {
	s := r.spec
	uuidFile := func(flag string) string { return r.idWord(flag+uuidDir+"/kaylee_", ".uuid") }
	r.add("Service", "KillMode", "mixed")
	r.add("Service", "ExecStartPre", joinEscaped(joinArgs("-"+RktPath, "stop", "--force=true"), uuidFile("--uuid-file=")))
	r.add("Service", "ExecStartPre", joinEscaped(joinArgs("-"+RktPath, "rm"), uuidFile("--uuid-file=")))
	// rkt run would fetch a missing image itself, but without a policy of
	// ours; fetch each image first with the app's policy instead. An app
	// that must never be fetched gets no fetch line. rkt run's own policy
	// is pod-wide: it is "never" only when every app's is.
	allNever := true
	for _, a := range s.Apps {
		policy := a.PullPolicy(EngineRkt)
		if policy == PullNever {
			continue
		}
		allNever = false
		r.add("Service", "ExecStartPre", joinArgs(RktPath, "fetch", "--insecure-options=image", "--pull-policy="+rktPullPolicy[policy], a.Image))
	}
	head := []string{RktPath, "run"}
	if allNever {
		head = append(head, "--pull-policy=never")
	}
	head = append(head, "--insecure-options=image", "--inherit-env")
	var args []string
	if s.Net != "" {
		args = append(args, "--net="+s.Net)
	}
	args = append(args, s.Args...)
	for i, v := range s.Volumes {
		vol := fmt.Sprintf("kaylee-volume-%d", i)
		args = append(args,
			fmt.Sprintf("--volume=%s,kind=host,source=%s", vol, hostSource(v)),
			fmt.Sprintf("--mount=volume=%s,target=%s", vol, v.Path))
	}
	for _, a := range s.Apps {
		args = append(args, a.Image)
		if a.Cmd != "" {
			args = append(args, "--exec="+a.Cmd)
		}
		if len(a.Args) > 0 {
			args = append(args, "--")
			args = append(args, a.Args...)
		}
		args = append(args, "---")
	}
	r.secretSteps() // last: rkt run passes them on (--inherit-env)
	r.add("Service", "ExecStart", joinEscaped(joinArgs(head...), uuidFile("--uuid-file-save="), joinArgs(args...)))
	r.health("-", r.idWord("", "")) // rkt: the check connects to 127.0.0.1
	r.add("Service", "ExecStop", joinEscaped(joinArgs("-"+RktPath, "stop"), uuidFile("--uuid-file=")))
	r.add("Service", "ExecStopPost", joinEscaped(joinArgs("-"+RktPath, "rm"), uuidFile("--uuid-file=")))
	r.add("Service", "ExecStopPost", joinEscaped(joinArgs("-/bin/rm", "-f"), uuidFile("")))
	// Garbage collection, as monder/kaylee had it: exited pods and the
	// images no pod uses are removed on the host, so that images pulled
	// before every start do not pile up. A failing gc must not fail the
	// stop ("-"); it comes before the volume unmounts, whose failure stops
	// the ExecStopPost lines that follow.
	r.add("Service", "ExecStopPost", joinArgs("-"+RktPath, "gc"))
	r.add("Service", "ExecStopPost", joinArgs("-"+RktPath, "image", "gc"))
}

// rktPullPolicy maps an app's pull policy to rkt fetch's --pull-policy.
var rktPullPolicy = map[string]string{PullMissing: "new", PullAlways: "update"}

// dockerStopStatus is how `docker run --rm` exits when `docker stop` ends
// its container: 128+SIGTERM, or 128+SIGKILL after the stop timeout. Both
// are a clean stop, so a unit Kaylee stops ends inactive, not failed.
const dockerStopStatus = "143 137"

// machineLabel names the machine in a container's labels. %m is systemd's
// machine ID specifier, so it is added to the Exec line unescaped.
const machineLabel = "--label=io.kaylee.machine=%m"

func (r *renderer) docker() {
	s := r.spec
	app := s.Apps[0]
	image := strings.TrimPrefix(app.Image, "docker://")
	id := r.idWord("", "")
	r.add("Service", "SuccessExitStatus", dockerStopStatus)
	r.add("Service", "ExecStartPre", joinEscaped(joinArgs("-"+DockerPath, "rm", "-f"), id))
	// docker run pulls a missing image by itself (policy missing); a pull
	// line would fail on a host that cannot reach the registry even when
	// the image is there, so only policy always has one.
	args := []string{DockerPath, "run"}
	switch app.PullPolicy(EngineDocker) {
	case PullAlways:
		r.add("Service", "ExecStartPre", joinArgs(DockerPath, "pull", image))
	case PullNever:
		args = append(args, "--pull=never") // docker >= 20.10
	}
	head := append(args, "--rm", "--name")
	args = containerEnv(s)
	if s.Net != "" {
		args = append(args, "--net="+s.Net)
	}
	for _, v := range s.Volumes {
		args = append(args, "-v", hostSource(v)+":"+v.Path)
	}
	// Labels tell which Kaylee unit, instance and machine a container
	// belongs to (docker ps --filter label=io.kaylee.unit=NAME).
	args = append(args, "--label=io.kaylee.unit="+s.Name)
	user := append(append([]string{}, s.Args...), image)
	if app.Cmd != "" {
		user = append(user, app.Cmd)
	}
	user = append(user, app.Args...)
	r.secretSteps() // last: docker run takes them (-e NAME)
	r.add("Service", "ExecStart", joinEscaped(joinArgs(head...), id, joinArgs(args...), r.idWord("--label=io.kaylee.instance=", ""), machineLabel, joinArgs(user...)))
	r.health(DockerPath, r.idWord("", ""))
	r.add("Service", "ExecStop", joinEscaped(joinArgs("-"+DockerPath, "stop"), id))
}

// containerEnv are the options that pass a container its environment:
// KAYLEE_ID, KAYLEE_MEMBER (stateful units) and env by name (their values
// come from the unit's Environment= lines, never the Exec line), and the
// env files that must exist (an optional one, "-" first, is read by
// systemd only: EnvironmentFile=).
func containerEnv(s *Spec) []string {
	args := []string{"-e", "KAYLEE_ID"}
	if s.Stateful {
		args = append(args, "-e", MemberVar)
	}
	for _, e := range s.Env {
		args = append(args, "-e", e.Name)
	}
	for _, f := range s.EnvFiles {
		if !strings.HasPrefix(f, "-") {
			args = append(args, "--env-file="+f)
		}
	}
	return args
}

// machineIDSpecifier ends a global unit's instance ID: systemd expands %m
// to the machine ID (32 hex digits), so each machine's instance has an ID
// of its own that is still a valid file and container name.
const machineIDSpecifier = "_%m"

// idWord is a word of an Exec line that holds the instance ID between pre
// and post, escaped: only the ID's specifier (idSpec) is left for systemd
// to expand.
func (r *renderer) idWord(pre, post string) string {
	return escapeSpecifiers(pre+r.name.InstanceID()) + r.idSpec + escapeSpecifiers(post)
}

// health renders the spec's health check as an ExecStartPost line: Kaylee's
// script (healthScript) with the check's values as separate arguments.
// Validation holds every user word to a charset that needs no quoting.
// The script's first word is target, the container whose address the
// check connects to (an escaped word: the instance ID, docker's container;
// <ID>-infra, a podman pod's infra container); docker is the binary that
// finds its address (docker or podman), or "-" for 127.0.0.1.
func (r *renderer) health(docker, target string) {
	r.secretsRemoved() // first: before the check waits for the replica
	h := r.spec.Health
	if h == nil {
		return
	}
	c := check{kind: h.Kind(), exec: h.Exec, every: h.IntervalDuration(), limit: h.TimeoutDuration(),
		start: h.StartPeriodDuration(), failures: h.FailureThreshold(), docker: docker}
	switch c.kind {
	case HealthHTTP:
		c.port, c.path = h.HTTP.Port, h.HTTP.RequestPath()
	case HealthTCP:
		c.port = h.TCP.Port
	}
	r.add("Service", "ExecStartPost", c.line("kaylee-health", target))
}

// check is one run of healthScript: a health check's, or a primary
// probe's (see RenderProbe).
type check struct {
	kind                string // http, tcp or exec
	port                int    // 0: none
	path                string // "": none
	exec                []string
	every, limit, start time.Duration
	failures            int
	docker              string // the docker binary, or "-" for 127.0.0.1
}

// line is the Exec line that runs healthScript for the check, as argv0,
// against the instance id (an escaped word, see idWord).
func (c check) line(argv0, id string) string {
	port, path := "-", "-"
	if c.port > 0 {
		port = strconv.Itoa(c.port)
	}
	if c.path != "" {
		path = c.path
	}
	words := []string{c.kind, port, path, wholeSeconds(c.every), wholeSeconds(c.limit), wholeSeconds(c.start),
		strconv.Itoa(c.failures), c.docker}
	words = append(words, c.exec...)
	return joinEscaped(BashPath+" -c "+healthScriptWord, argv0, id, joinArgs(words...))
}

// wholeSeconds renders a duration as whole seconds, rounded up, at least 1.
func wholeSeconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64((d+time.Second-1)/time.Second)), 10)
}

// healthScript is Kaylee's health check, run by bash on the machine that
// runs the replica as the unit's ExecStartPost. It holds no user value:
// those come as arguments, in this order (short names keep the unit file
// line short):
//
//	n k p u e l s f d [exec words...]
//	name kind port path every limit start failures docker
//
// name is the instance ID (the docker container's name), kind http, tcp or
// exec, port and path "-" where the kind has none, every, limit and start
// the interval, timeout and start period in seconds, failures the
// threshold, docker the docker binary that gives the container's address
// ("-": the check goes to 127.0.0.1, as for rkt).
//
// It probes every $e seconds until a probe passes (exit 0: the unit becomes
// active/running), or $s seconds have passed or the main process is gone
// (exit 1: systemd fails the start, and Restart=always starts it again).
// Then a background subshell probes on, and after $f failures in a row it
// kills the main process ($MAINPID, which systemd sets for ExecStartPost;
// SIGKILL 10s later, for a docker client whose container ignores SIGTERM)
// so that systemd restarts the unit. The subshell ends with the main
// process.
//
// A probe (hp, in a bash of its own) is bounded by timeout(1) as a whole:
// bash's /dev/tcp has no connect timeout. http sends GET path HTTP/1.0
// (the path is validated to hold no % or \) and passes on a 2xx or 3xx
// status line; tcp passes when the connection opens; exec passes when the
// command exits 0 within the timeout.
//
// Written here for bash; healthScriptWord makes it one word of an Exec line.
// It must not hold a single quote.
const healthScript = `
n=$1 k=$2 p=$3 u=$4 e=$5 l=$6 s=$7 f=$8 d=$9
shift 9
export k p u ip
hp() {
	exec 3<>/dev/tcp/$ip/$p || exit
	[ $k = tcp ] && exit
	printf "GET $u HTTP/1.0\r\nHost: $ip\r\n\r\n" >&3
	read -r v c _ <&3
	[[ $v = HTTP/* ]] || exit
	echo ${c:0:3}
	[[ $c = [23]??* ]]
}
export -f hp
probe() {
	if [ $k = exec ]; then
		timeout $l "$@" &>/dev/null </dev/null && return
		why="exit $?"; return 1
	fi
	ip=127.0.0.1
	if [ $d != - ]; then
		o=$($d inspect --type container -f "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}" $n 2>/dev/null) || { why="no container $n"; return 1; }
		read -r ip _ <<<"$o"; ip=${ip:-127.0.0.1}
	fi
	c=$(timeout $l /bin/bash -c hp 2>/dev/null) && return
	why="no answer from $ip:$p"; [ "$c" ] && why="HTTP $c from $ip:$p"; return 1
}
alive() { [ -z "$MAINPID" ] || kill -0 $MAINPID 2>/dev/null; }
m() { echo "kaylee-health: $n $*"; }
t=$SECONDS
until probe "$@"; do
	alive || { m "exited before it was healthy (last: $why)" >&2; exit 1; }
	((SECONDS-t < s)) || { m "not healthy within ${s}s (last: $why)" >&2; exit 1; }
	sleep $e
done
m "healthy after $((SECONDS-t))s"
[ "$MAINPID" ] || exit 0
(
	b=0
	while sleep $e && alive; do
		probe "$@" && b=0 && continue
		((++b < f)) && continue
		m "unhealthy after $b failed checks (last: $why)" >&2
		kill $MAINPID; sleep 10; kill -9 $MAINPID 2>/dev/null; exit
	done
) </dev/null >/dev/null &
`

// healthScriptWord is healthScript as one single-quoted word of an Exec
// line. systemd unquotes it, turns the C escapes \n and \\ back into a
// newline and a backslash, %% into % (specifiers) and $$ into $
// (variables), so bash gets healthScript without its indentation.
var healthScriptWord = "'" + systemdLiteral(healthScript) + "'"

func systemdLiteral(script string) string {
	lines := strings.Split(strings.TrimSpace(script), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimLeft(l, "\t")
	}
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, "$", "$$", "%", "%%").Replace(strings.Join(lines, "\n"))
}

// hostSource is the host directory a volume mounts.
func hostSource(v Volume) string {
	if v.Driver == "" {
		return v.Source
	}
	dir := strings.TrimPrefix(v.Driver, mountServicePrefix)
	return strings.TrimSuffix(fmt.Sprintf("/mnt/%s/%s/%s", dir, v.ID, v.Source), "/")
}

// joinArgs joins command line words for an Exec line. Words are the user's
// command line fragments, as in the seed ("--cidr 10.5.0.0/16", "'$$ip:80'"):
// systemd splits and unquotes them, and expands $VAR (write $$ for a literal
// $). Specifiers are not wanted, so % is escaped.
func joinArgs(words ...string) string {
	out := make([]string, 0, len(words))
	for _, w := range words {
		if w != "" {
			out = append(out, escapeSpecifiers(w))
		}
	}
	return strings.Join(out, " ")
}

// joinEscaped joins parts of an Exec line that are already escaped (by
// joinArgs, or specifiers of ours that systemd must expand).
func joinEscaped(parts ...string) string {
	return strings.Join(slices.DeleteFunc(parts, func(p string) bool { return p == "" }), " ")
}

// escapeSpecifiers makes % literal for systemd.
func escapeSpecifiers(s string) string {
	return strings.ReplaceAll(s, "%", "%%")
}

// quoteEnv renders an Environment= assignment whose value stays literal:
// quoted, with backslash and quote escaped, newline, carriage return and
// tab as the C escapes \n, \r and \t (systemd unescapes them in a quoted
// Environment= value, so a multi-line value stays one line of the unit
// file), and % escaped.
func quoteEnv(name, value string) string {
	return escapeSpecifiers(`"` + name + "=" + envEscaper.Replace(value) + `"`)
}

var envEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
