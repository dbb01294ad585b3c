package realfleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"time"
)

// exitCgroup is systemd's EXIT_CGROUP: a unit's process could not be put
// into its control group, before the command ran.
const exitCgroup = 219

// exitCode is err's process exit status, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// Podman runs podman with args inside machine m and returns its standard
// output; an error carries its standard error.
//
// It runs as a transient service of the machine's systemd (systemd-run),
// not straight from Exec: a fleet unit's podman runs with the machine's
// capability bounding set and nspawn's seccomp filter, and Exec (nsenter)
// has neither, so a configuration that only works with the host's
// privileges would pass here and fail in units. KillMode=process keeps a
// detached container (run -d, pod start): in the machines it has no
// cgroup of its own (cgroups = "disabled", see scripts/real-cluster), so it
// lives in the service's cgroup, which systemd would otherwise empty when
// podman exits. systemd expands $VAR in the command line: a literal $ is
// passed as $$ (as in a unit file; the seed's '$$ip:80').
//
// systemd-run exiting 219 (EXIT_CGROUP: the transient service could not be
// put into its cgroup; seen once in CI while units started on a busy
// machine) means podman never ran: it is tried again, at most 3 times.
func (c *Cluster) Podman(ctx context.Context, m Machine, args ...string) (string, error) {
	cmd := []string{"systemd-run", "--quiet", "--wait", "--pipe", "--collect",
		"--property=KillMode=process", "/usr/bin/podman"}
	for _, a := range args {
		cmd = append(cmd, strings.ReplaceAll(a, "$", "$$"))
	}
	run := func() (string, error) {
		p, err := c.nsenter(ctx, m, cmd...)
		if err != nil {
			return "", err
		}
		var out, errb bytes.Buffer
		p.Stdout, p.Stderr = &out, &errb
		if err := p.Run(); err != nil {
			return out.String() + errb.String(), err
		}
		return out.String(), nil
	}
	out, err := run()
	for try := 1; try < 3 && exitCode(err) == exitCgroup; try++ {
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(try) * 250 * time.Millisecond):
		}
		out, err = run()
	}
	if err != nil {
		return "", fmt.Errorf("podman %s on %s: %w: %s", strings.Join(args, " "), m.Name, err, strings.TrimSpace(out))
	}
	return out, nil
}

// Pod is one of podman's pods in a machine.
type Pod struct {
	ID         string
	Name       string
	Status     string // Running, Exited, Created, Degraded…
	InfraID    string
	Networks   []string
	Labels     map[string]string
	Containers []string // names, the infra container's too
}

// PodmanContainer is one of podman's containers in a machine.
type PodmanContainer struct {
	ID       string
	Name     string
	Image    string
	PodName  string // "" outside a pod
	Infra    bool   // a pod's infra container
	State    string // running, exited, created…
	ExitCode int
	Labels   map[string]string
}

// PodmanState is what podman has in one machine: every pod and every
// container (stopped ones and infra containers too).
type PodmanState struct {
	Pods       []Pod
	Containers []PodmanContainer
}

// Empty reports whether the machine has no pod and no container.
func (s PodmanState) Empty() bool { return len(s.Pods) == 0 && len(s.Containers) == 0 }

// Of is the part of the state that is a unit prefix's: the pods named
// prefix… or labelled with such an instance (Kaylee names a replica's pod
// after the replica, <unit prefix>_<unit>_…), and the containers named so,
// in such a pod or labelled with such an instance. Tests that run at once
// on the cluster each see their own.
func (s PodmanState) Of(prefix string) PodmanState {
	var out PodmanState
	for _, p := range s.Pods {
		if strings.HasPrefix(p.Name, prefix) || strings.HasPrefix(p.Labels["io.kaylee.instance"], prefix) {
			out.Pods = append(out.Pods, p)
		}
	}
	for _, ct := range s.Containers {
		if strings.HasPrefix(ct.Name, prefix) || strings.HasPrefix(ct.PodName, prefix) || strings.HasPrefix(ct.Labels["io.kaylee.instance"], prefix) {
			out.Containers = append(out.Containers, ct)
		}
	}
	return out
}

// String lists the pods and containers, one a line, for test failures.
func (s PodmanState) String() string {
	var b strings.Builder
	for _, p := range s.Pods {
		fmt.Fprintf(&b, "pod %s %s %s containers %s\n", p.Name, p.ID[:min(12, len(p.ID))], p.Status, strings.Join(p.Containers, ","))
	}
	for _, ct := range s.Containers {
		fmt.Fprintf(&b, "container %s %s pod=%q infra=%v %s exit %d\n", ct.Name, ct.Image, ct.PodName, ct.Infra, ct.State, ct.ExitCode)
	}
	if b.Len() == 0 {
		return "no pods, no containers\n"
	}
	return b.String()
}

// Podmans lists machine m's pods and containers (podman pod ps, podman ps
// -a), sorted by name.
func (c *Cluster) Podmans(ctx context.Context, m Machine) (PodmanState, error) {
	var st PodmanState
	out, err := c.Podman(ctx, m, "pod", "ps", "--format", "json")
	if err != nil {
		return st, err
	}
	var pods []struct {
		ID         string `json:"Id"`
		Name       string
		Status     string
		InfraID    string `json:"InfraId"`
		Networks   []string
		Labels     map[string]string
		Containers []struct{ Names string }
	}
	if err := json.Unmarshal([]byte(out), &pods); err != nil {
		return st, fmt.Errorf("podman pod ps on %s: %w: %s", m.Name, err, out)
	}
	for _, p := range pods {
		pod := Pod{ID: p.ID, Name: p.Name, Status: p.Status, InfraID: p.InfraID, Networks: p.Networks, Labels: p.Labels}
		for _, ct := range p.Containers {
			pod.Containers = append(pod.Containers, ct.Names)
		}
		sort.Strings(pod.Containers)
		st.Pods = append(st.Pods, pod)
	}
	if out, err = c.Podman(ctx, m, "ps", "--all", "--pod", "--format", "json"); err != nil {
		return st, err
	}
	var cts []struct {
		ID       string `json:"Id"`
		Names    []string
		Image    string
		PodName  string
		IsInfra  bool
		State    string
		ExitCode int
		Labels   map[string]string
	}
	if err := json.Unmarshal([]byte(out), &cts); err != nil {
		return st, fmt.Errorf("podman ps on %s: %w: %s", m.Name, err, out)
	}
	for _, ct := range cts {
		st.Containers = append(st.Containers, PodmanContainer{ID: ct.ID, Name: strings.Join(ct.Names, ","), Image: ct.Image,
			PodName: ct.PodName, Infra: ct.IsInfra, State: ct.State, ExitCode: ct.ExitCode, Labels: ct.Labels})
	}
	sort.Slice(st.Pods, func(i, j int) bool { return st.Pods[i].Name < st.Pods[j].Name })
	sort.Slice(st.Containers, func(i, j int) bool { return st.Containers[i].Name < st.Containers[j].Name })
	return st, nil
}

// PodIPs are the addresses of a pod's infra container (its network
// namespace, which all its containers share), one per network, as
// podman inspect shows them.
func (c *Cluster) PodIPs(ctx context.Context, m Machine, pod string) ([]string, error) {
	infra, err := c.Podman(ctx, m, "pod", "inspect", "--format", "{{.InfraContainerID}}", pod)
	if err != nil {
		return nil, err
	}
	out, err := c.Podman(ctx, m, "inspect", "--type", "container", "--format",
		"{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", strings.TrimSpace(infra))
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}
