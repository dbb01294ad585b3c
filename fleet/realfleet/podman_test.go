package realfleet_test

import (
	"context"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/fleet/realfleet"
)

// TestRealPodmanPodBasics drives podman in a machine by hand, the way a
// podman unit will: the seed's countly pod (its two apps, its pod
// arguments --dns and --net=flannel,default) from the cluster's registry.
// It shows that the machines run pods: the sidekick reaches the main app
// on localhost (from what it reports), the machine reaches the pod on its
// addresses, and removing the pod leaves no pod and no container.
func TestRealPodmanPodBasics(t *testing.T) {
	// Exclusive (no t.Parallel, see newEnv): it removes the countly and sidekick
	// images from a machine's podman with rmi --force (and the containers of other
	// tests that use them), and counts that machine's pods and containers.
	c := requireCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	m := c.Machines[0]
	n := strings.TrimPrefix(m.Name, "kaylee-m") // the machine's number: its subnets
	const pod, id = "rt-podbasics", "k2_countly_rt_0"
	t.Cleanup(func() {
		if _, err := c.Podman(context.Background(), m, "pod", "rm", "--force", "--ignore", pod); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if _, err := c.Podman(ctx, m, "pod", "rm", "--force", "--ignore", pod); err != nil {
		t.Fatal(err) // what a failed run left
	}

	// The images come from the cluster's registry, pulled for real.
	countly, sidekick, err := c.PushPodImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range []string{countly, sidekick} {
		if _, err := c.Podman(ctx, m, "rmi", "--force", "--ignore", img); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Podman(ctx, m, "pull", "--quiet", img); err != nil {
			t.Fatal(err)
		}
	}

	startCountlyPod(ctx, t, c, m, pod, id, countly, sidekick)
	st, err := c.Podmans(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Pods) != 1 || st.Pods[0].Name != pod || st.Pods[0].Status != "Running" || len(st.Pods[0].Containers) != 3 {
		t.Fatalf("podman on %s, want pod %s Running with %s-countly, %s-sidekick and an infra container:\n%s", m.Name, pod, pod, pod, st)
	}

	// One address per network: flannel's on 10.5.<n>.0/24, podman's on
	// 10.88.<n>.0/24.
	ips, err := c.PodIPs(ctx, m, pod)
	if err != nil {
		t.Fatal(err)
	}
	var flannel, dflt string
	for _, ip := range ips {
		switch {
		case strings.HasPrefix(ip, "10.5."+n+"."):
			flannel = ip
		case strings.HasPrefix(ip, "10.88."+n+"."):
			dflt = ip
		}
	}
	if len(ips) != 2 || flannel == "" || dflt == "" {
		t.Fatalf("pod %s's addresses %q, want one in 10.5.%s.0/24 (flannel) and one in 10.88.%s.0/24 (podman)", pod, ips, n, n)
	}

	// The sidekick found its flannel address and reached countly on
	// localhost.
	report := realfleet.SidekickReport("countly/"+id, flannel+":80") + "testimage v1 on :80"
	var logs string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		if logs, err = c.Podman(ctx, m, "logs", pod+"-sidekick"); err != nil {
			t.Fatal(err)
		}
		if strings.Contains("\n"+logs, "\n"+report+"\n") || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains("\n"+logs, "\n"+report+"\n") {
		t.Errorf("the sidekick's log has no line\n%s\nit has:\n%s", report, logs)
	}

	// The machine (its network is the host's) reaches the pod on both
	// addresses.
	for _, ip := range ips {
		code, body, err := get(ctx, "http://"+net.JoinHostPort(ip, "80")+"/")
		if err != nil || code != http.StatusOK || body != "testimage v1 on :80\n" {
			t.Errorf("GET http://%s:80/ from the machine: %d %q %v, want 200 \"testimage v1 on :80\"", ip, code, body, err)
		}
	}

	// Removing the pod removes its containers, the infra container too.
	if _, err := c.Podman(ctx, m, "pod", "rm", "--force", pod); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"pod", "ps", "-q"}, {"ps", "-aq"}} {
		out, err := c.Podman(ctx, m, args...)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(out) != "" {
			t.Errorf("podman %s on %s after pod rm: %q, want nothing", strings.Join(args, " "), m.Name, out)
		}
	}
	if serves(ctx, flannel) {
		t.Errorf("the pod still serves on %s:80 after pod rm", flannel)
	}
}

// startCountlyPod starts the seed's countly pod on machine m by hand:
// its pod arguments --dns=10.0.0.2 --net=flannel,default (podman's default
// network is named podman), countly and the sidekick with the seed's
// arguments.
func startCountlyPod(ctx context.Context, t *testing.T, c *realfleet.Cluster, m realfleet.Machine, pod, id, countly, sidekick string) {
	t.Helper()
	for _, args := range [][]string{
		// Labelled as Kaylee's: a boot removes what a kill left of it
		// (contrib/systemd/kaylee-podman-clean.service).
		{"pod", "create", "--name", pod, "--label", "io.kaylee.unit=countly", "--dns", "10.0.0.2", "--network", "flannel,podman"},
		{"run", "--detach", "--pod", pod, "--label", "io.kaylee.unit=countly", "--name", pod + "-countly", countly},
		{"run", "--detach", "--pod", pod, "--label", "io.kaylee.unit=countly", "--name", pod + "-sidekick", sidekick,
			"--cidr", "10.5.0.0/16", "--interval", "10m", "--expireDir", "/services", "--format", "$ip:80", "/services/countly/" + id},
	} {
		if _, err := c.Podman(ctx, m, args...); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRealPodmanMachineKill cuts the power of a machine running a pod:
// nothing of podman stays on the host (the machines share its network, so
// their pods' bridges and veths are the host's), and the machine boots
// again without the pod and containers its storage still held.
func TestRealPodmanMachineKill(t *testing.T) {
	// Exclusive (no t.Parallel, see newEnv): it kills a machine.
	c := requireCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	m := c.Machines[len(c.Machines)-1]
	n := strings.TrimPrefix(m.Name, "kaylee-m")
	countly, sidekick, err := c.PushPodImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const pod = "rt-podkill"
	t.Cleanup(func() {
		c.Revive(t)
		_, _ = c.Podman(context.Background(), m, "pod", "rm", "--force", "--ignore", pod)
	})
	if _, err := c.Podman(ctx, m, "pod", "rm", "--force", "--ignore", pod); err != nil {
		t.Fatal(err)
	}
	startCountlyPod(ctx, t, c, m, pod, "k2_countly_rt_1", countly, sidekick)
	ips, err := c.PodIPs(ctx, m, pod)
	if err != nil {
		t.Fatal(err)
	}
	bridges := []string{"kpod" + n, "kflan" + n}
	if links := podmanLinks(t, bridges); len(links) != 4 {
		t.Fatalf("host links of %s's pod: %q, want its 2 bridges and 2 veths", m.Name, links)
	}

	c.Kill(t, m)
	if links := podmanLinks(t, bridges); len(links) != 0 {
		t.Errorf("host links of %s's podman after a kill: %q, want none", m.Name, links)
	}
	for _, ip := range ips {
		if serves(ctx, ip) {
			t.Errorf("the pod still serves on %s:80 after %s was killed", ip, m.Name)
		}
	}

	c.Revive(t)
	st, err := c.Podmans(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Empty() {
		t.Errorf("podman on %s after a kill and a boot:\n%swant no pods, no containers", m.Name, st)
	}
	if links := podmanLinks(t, bridges); len(links) != 0 {
		t.Errorf("host links of %s's podman after a boot: %q, want none", m.Name, links)
	}
}

// podmanLinks lists the host's network links that are one of bridges or
// attached to one.
func podmanLinks(t *testing.T, bridges []string) []string {
	t.Helper()
	var links []string
	for _, b := range bridges {
		if _, err := net.InterfaceByName(b); err != nil {
			continue
		}
		links = append(links, b)
		out, err := exec.Command("ip", "-o", "link", "show", "master", b).Output()
		if err != nil {
			t.Fatalf("ip link show master %s: %v", b, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if f := strings.Fields(line); len(f) > 1 {
				links = append(links, strings.TrimSuffix(f[1], ":"))
			}
		}
	}
	return links
}

// serves reports whether countly answers on ip:80. Any other answer is
// not it: without a pod's bridge, its address is routed to the host's
// gateway, and whatever is there may answer.
func serves(ctx context.Context, ip string) bool {
	code, body, err := get(ctx, "http://"+net.JoinHostPort(ip, "80")+"/")
	return err == nil && code == http.StatusOK && body == "testimage v1 on :80\n"
}

func get(ctx context.Context, url string) (int, string, error) {
	return realfleet.GetURL(ctx, url, 3*time.Second)
}
