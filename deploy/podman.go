package deploy

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// PodmanPath is the podman binary rendered into unit files.
const PodmanPath = "/usr/bin/podman"

// Engine podman runs a unit's apps as one podman pod per replica: the pod
// is named with the instance ID (KAYLEE_ID), its infra container
// <ID>-infra holds the network namespace every app shares, and app i is
// the container <ID>-<i>. The fleet unit creates the pod and its
// containers (ExecStartPre), runs a supervisor (podSupervisor) that starts
// the pod and ends when any app exits, and removes pod, apps and infra
// after every stop, crash or restart (ExecStopPost).

// podInfraSuffix ends the name of a pod's infra container. A pod and a
// container may not share a name in podman.
const podInfraSuffix = "-infra"

func (r *renderer) podman() {
	s := r.spec
	pod := r.idWord("", "")
	r.add("Service", "KillMode", "mixed")
	// Whatever a crash or a killed machine left behind.
	r.add("Service", "ExecStartPre", joinEscaped(joinArgs("-"+PodmanPath, "pod", "rm", "-f", "--ignore"), pod))
	opts, _ := podOptions(s)
	r.add("Service", "ExecStartPre", joinEscaped(joinArgs(PodmanPath, "pod", "create", "--name"), pod,
		joinArgs("--infra-name"), r.idWord("", podInfraSuffix), r.labels(), joinArgs(opts...)))
	env := containerEnv(s)
	for _, v := range s.Volumes {
		env = append(env, "-v", hostSource(v)+":"+v.Path)
	}
	// The values are read by podman create (-e NAME), not by the
	// supervisor's pod start: the decrypt steps come just before.
	r.secretSteps()
	images := make([]string, 0, len(s.Apps))
	for i, a := range s.Apps {
		app := []string{"--label=io.kaylee.app=" + strconv.Itoa(i)}
		if a.Cmd != "" {
			app = append(app, "--entrypoint", a.Cmd)
		}
		app = append(app, a.Image)
		app = append(app, a.Args...)
		r.add("Service", "ExecStartPre", joinEscaped(joinArgs(PodmanPath, "create", "--pod"), pod,
			"--name", r.idWord("", "-"+strconv.Itoa(i)), joinArgs("--pull="+a.PullPolicy(EnginePodman)),
			joinArgs(env...), r.labels(), joinArgs(app...)))
		images = append(images, a.Image)
	}
	r.add("Service", "ExecStart", joinEscaped(BashPath+" -c "+podSupervisorWord, "kaylee-pod", pod, joinArgs(append([]string{PodmanPath}, images...)...)))
	r.health(PodmanPath, r.idWord("", podInfraSuffix))
	r.add("Service", "ExecStopPost", joinEscaped(joinArgs("-"+PodmanPath, "pod", "rm", "-f", "--ignore"), pod))
}

// labels are the io.kaylee labels of a container (or pod): which Kaylee
// unit, instance and machine it belongs to (podman ps --filter
// label=io.kaylee.unit=NAME).
func (r *renderer) labels() string {
	return joinEscaped(joinArgs("--label=io.kaylee.unit="+r.spec.Name), r.idWord("--label=io.kaylee.instance=", ""), machineLabel)
}

// podSupervisor is the ExecStart of a podman unit, run by bash; it holds
// no user value. Its arguments: the pod's name, the podman binary, then
// each app's image in app order (for the message).
//
// It starts the pod, then waits for any app's container to exit (one
// podman wait per app; wait -n -p needs bash 5.1), says which app exited
// with which code, and exits non-zero (the app's code, or 1 for 0), so
// that Restart=always restarts the whole pod: ExecStopPost removes it and
// the next start creates it afresh. It ends the podman waits left with
// kill 0: systemd runs it as the leader of a process group of its own.
// On SIGTERM (systemd's stop, sent to
// this process only: KillMode=mixed) it stops the pod, giving the apps 10
// seconds before SIGKILL, and exits 0, so a stopped unit ends inactive,
// not failed.
//
// Written here for bash; podSupervisorWord makes it one word of an Exec
// line. It must not hold a single quote.
const podSupervisor = `
n=$1 d=$2
shift 2
m() { echo "kaylee-pod: $n: $*"; }
end() { trap "" TERM; kill 0 2>/dev/null; exit $1; }
stop() { $d pod stop -t 10 $n >/dev/null; end 0; }
trap stop TERM INT
$d pod start $n >/dev/null || { c=$?; m "the pod did not start; it restarts" >&2; exit $c; }
declare -A app
i=0
for a; do
	(c=$($d wait $n-$i) && exit $c; c=$?; m "podman wait for app $i ($a) failed with $c: the exit of the app is not known" >&2; exit 255) &
	app[$!]=$i
	((++i))
done
wait -n -p p
c=$?
i=${app[$p]}
m "app $i (${@:i+1:1}) exited with $c; the pod restarts" >&2
end $((c ? c : 1))
`

// podSupervisorWord is podSupervisor as one single-quoted word of an Exec
// line (see healthScriptWord).
var podSupervisorWord = "'" + systemdLiteral(podSupervisor) + "'"

// rkt's pod options that engine podman maps to podman pod create's, and
// what it maps them to. --net is mapped by podNetworks.
var podOptionMap = map[string]string{
	"--dns":         "--dns",
	"--dns-search":  "--dns-search",
	"--dns-opt":     "--dns-option",
	"--hostname":    "--hostname",
	"--hosts-entry": "--add-host",
	"--net":         "--network",
	"--port":        "--publish",
}

// podOptionNames lists them for messages.
const podOptionNames = "--dns, --dns-search, --dns-opt, --hostname, --hosts-entry, --port and --net"

// podOptionHints name the spec field that does what an rkt option did.
var podOptionHints = map[string]string{
	"--set-env":      "use env",
	"--set-env-file": "use envFiles",
	"--volume":       "use volumes",
	"--mount":        "use volumes",
	"--exec":         "use the app's cmd",
}

// podmanNetworkRe is a podman network name.
var podmanNetworkRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// podmanModes are podman's network modes, which are not network names.
var podmanModes = []string{"bridge", "private", "slirp4netns", "pasta", "container", "ns"}

// podProblem is what keeps a field of a podman unit from rendering.
type podProblem struct{ field, msg string }

// podOptions maps the spec's net and pod args (rkt's options) to podman
// pod create's options, or says why it cannot. Each option is one word.
func podOptions(s *Spec) ([]string, []podProblem) {
	var opts, nets []string
	var probs []podProblem
	netField := ""
	if s.Net != "" {
		netField = "net"
		nets = strings.Split(s.Net, ",")
	}
	hostname := false
	for i, a := range s.Args {
		field := fmt.Sprintf("args[%d]", i)
		words := execWords(a)
		for j := 0; j < len(words); j++ {
			w := words[j]
			name, value, hasValue := strings.Cut(w, "=")
			to, ok := podOptionMap[name]
			if !ok {
				probs = append(probs, podProblem{field, unmappedOption(w)})
				continue
			}
			if !hasValue {
				if j+1 >= len(words) {
					probs = append(probs, podProblem{field, fmt.Sprintf("%q needs a value (%s=VALUE)", w, name)})
					continue
				}
				j++
				value = words[j]
			}
			switch name {
			case "--net":
				if netField != "" {
					probs = append(probs, podProblem{field, fmt.Sprintf("%q: %s names the networks too: name them once", a, netField)})
					continue
				}
				netField, nets = field, strings.Split(value, ",")
				continue
			case "--hostname":
				hostname = true
			case "--port":
				value, msg := publishOf(s, value)
				if msg != "" {
					probs = append(probs, podProblem{field, fmt.Sprintf("%q %s", a, msg)})
					continue
				}
				opts = append(opts, to+"="+value)
				continue
			}
			opt, msg := podOption(name, to, value)
			if msg != "" {
				probs = append(probs, podProblem{field, fmt.Sprintf("%q %s", a, msg)})
				continue
			}
			opts = append(opts, opt)
		}
	}
	if !hostname {
		// The pod's hostname is its name otherwise, which a long
		// instance ID makes longer than the kernel takes (64).
		opts = append(opts, "--hostname="+s.Name)
	}
	netOpts, msg := podNetworks(nets)
	if msg != "" {
		probs = append(probs, podProblem{netField, msg})
	}
	return append(netOpts, opts...), probs
}

// podOption maps one option with its value, or says what is wrong.
func podOption(name, to, value string) (string, string) {
	switch {
	case value == "":
		return "", fmt.Sprintf("needs a value (%s=VALUE)", name)
	case name == "--dns" && value == "host":
		return "", "is rkt's (the host's resolv.conf) and has no podman equivalent: leave it out, podman gives the pod the host's resolvers by default"
	case name == "--hosts-entry" && value == "host":
		return "", "is rkt's (the host's /etc/hosts) and has no podman equivalent"
	case name == "--hosts-entry":
		ip, host, ok := strings.Cut(value, "=")
		if !ok || ip == "" || host == "" {
			return "", "must be --hosts-entry=IP=HOSTNAME"
		}
		value = host + ":" + ip
	}
	return to + "=" + value, ""
}

// hostIPRe is the host address of rkt's --port: an IP address, or a
// variable systemd fills in from the unit's environment (CoreOS's
// ${COREOS_PUBLIC_IPV4} in /etc/environment).
var hostIPRe = regexp.MustCompile(`^(\$\{[A-Za-z_][A-Za-z0-9_]*\}|[0-9.]+|\[[0-9a-fA-F:]+\])$`)

// publishesPorts: a podman unit whose args publish ports (rkt's --port):
// its rendering holds their numbers.
func (s *Spec) publishesPorts() bool {
	if s.EngineName() != EnginePodman {
		return false
	}
	for _, a := range s.Args {
		for _, w := range execWords(a) {
			if w == "--port" || strings.HasPrefix(w, "--port=") {
				return true
			}
		}
	}
	return false
}

// publishOf maps the value of rkt's --port=NAME:[HOSTIP:]HOSTPORT (NAME
// an entry of the unit's ports, where rkt read the image's) to podman's
// --publish=[HOSTIP:]HOSTPORT:PORT[/udp], or says what is wrong.
func publishOf(s *Spec, value string) (string, string) {
	const form = "must be --port=NAME:[HOSTIP:]HOSTPORT, NAME an entry of ports"
	name, rest, ok := strings.Cut(value, ":")
	if !ok || name == "" {
		return "", form
	}
	hostIP, hostPort := "", rest
	if i := strings.LastIndex(rest, ":"); i >= 0 {
		hostIP, hostPort = rest[:i], rest[i+1:]
		if !hostIPRe.MatchString(hostIP) {
			return "", fmt.Sprintf("%s: %q is not an IP address or a ${VARIABLE}", form, hostIP)
		}
		if _, err := netip.ParseAddr(strings.Trim(hostIP, "[]")); !strings.HasPrefix(hostIP, "$") && err != nil {
			return "", fmt.Sprintf("%s: %q is not an IP address", form, hostIP)
		}
	}
	n, err := strconv.Atoi(hostPort)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != hostPort {
		return "", fmt.Sprintf("%s: %q is not a port (1 to 65535)", form, hostPort)
	}
	for _, p := range s.Ports {
		if p.Name != name {
			continue
		}
		if hp, ok := s.HTTPPort(); ok && len(s.Domains) > 0 && hp.Name == name && n != p.Port {
			return "", fmt.Sprintf("publishes port %s on %d, where routers do not look: they reach a replica at its machine's address and port %d (ports), so publish it there (--port=%s:[HOSTIP:]%d)",
				name, n, p.Port, name, p.Port)
		}
		out := fmt.Sprintf("%s:%d", hostPort, p.Port)
		if hostIP != "" {
			out = hostIP + ":" + out
		}
		if p.Protocol == "udp" {
			out += "/udp"
		}
		return out, ""
	}
	return "", fmt.Sprintf("%s: ports has no entry named %q", form, name)
}

// unmappedOption says why an args word has no place in a podman pod.
func unmappedOption(w string) string {
	name, _, _ := strings.Cut(w, "=")
	switch {
	case !strings.HasPrefix(w, "--"):
		return fmt.Sprintf("%q is not an option: engine podman takes only rkt's pod options %s in args", w, podOptionNames)
	case podOptionHints[name] != "":
		return fmt.Sprintf("%q is rkt's and has no podman equivalent here: %s", w, podOptionHints[name])
	}
	return fmt.Sprintf("%q is rkt's and has no podman equivalent: engine podman maps only %s to its pod", w, podOptionNames)
}

// podNetworks maps rkt's networks (net, --net) to podman's --network:
// default, rkt's default network, is podman's default network (bridge);
// host and none are podman's own; any other name is the podman network
// of that name. No networks, or default alone, render nothing.
func podNetworks(nets []string) ([]string, string) {
	var names []string
	def := false
	for _, n := range nets {
		switch {
		case n == "default":
			def = true
			continue
		case strings.Contains(n, ":"):
			return nil, fmt.Sprintf("%q: rkt's NAME:ARGS has no podman equivalent: name the network alone", n)
		case slices.Contains(podmanModes, n):
			return nil, fmt.Sprintf("%q is a podman network mode, not a network: write default for podman's default network", n)
		case !podmanNetworkRe.MatchString(n):
			return nil, fmt.Sprintf("%q is not a network name (letters, digits, _ . and -)", n)
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, only := range []string{"host", "none"} {
		if slices.Contains(names, only) && (len(names) > 1 || def) {
			return nil, fmt.Sprintf("%s cannot be combined with other networks", only)
		}
	}
	var out []string
	if def && len(names) > 0 {
		// podman takes its default network as bridge, before the others.
		out = append(out, "--network=bridge")
	}
	for _, n := range names {
		out = append(out, "--network="+n)
	}
	return out, ""
}

// execWords splits an Exec line fragment into its words as systemd does,
// leaving quotes in place (the fragment is rendered as written).
func execWords(v string) []string {
	var words []string
	var cur strings.Builder
	var quote rune
	for _, r := range v {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == ' ' || r == '\t':
			if cur.Len() > 0 {
				words = append(words, cur.String())
				cur.Reset()
			}
			continue
		}
		cur.WriteRune(r)
	}
	if cur.Len() > 0 {
		words = append(words, cur.String())
	}
	return words
}

// checkPodman checks what engine podman adds: each app's cmd is one path
// (--entrypoint takes one, or JSON), and, when argsOK (net and args are
// safe fragments), net and args are options it can map.
func (c *checker) checkPodman(s *Spec, argsOK bool) {
	for i, a := range s.Apps {
		if strings.ContainsFunc(a.Cmd, unicode.IsSpace) || strings.HasPrefix(a.Cmd, "[") {
			c.fail(fmt.Sprintf("apps[%d].cmd", i), "%q must be one path (podman --entrypoint): put its arguments in args", a.Cmd)
		}
	}
	if !argsOK {
		return
	}
	_, probs := podOptions(s)
	for _, p := range probs {
		c.fail(p.field, "%s", p.msg)
	}
}
