package faults

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kaylee-gitops/kaylee/internal/testutil"
)

// etcdProc is one member of a cluster of Debian's etcd, run as a process.
type etcdProc struct {
	t    *testing.T
	args []string
	log  *os.File
	cmd  *exec.Cmd
}

func (p *etcdProc) start() error {
	p.cmd = exec.Command("etcd", p.args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	return p.cmd.Start()
}

// Kill kills the member (SIGKILL): a crash.
func (p *etcdProc) Kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
		p.cmd = nil
	}
}

// Restart starts the member again on its data.
func (p *etcdProc) Restart() error { return p.start() }

// startEtcdCluster starts n members of Debian's etcd (the etcd-server
// package) with the v2 API on.
func startEtcdCluster(t *testing.T, n int) ([]string, []member) {
	dir := t.TempDir()
	var peers, clients []string
	for i := range n {
		peers = append(peers, fmt.Sprintf("e%d=http://%s", i, testutil.FreeAddr(t)))
		clients = append(clients, "http://"+testutil.FreeAddr(t))
	}
	var members []member
	for i := range n {
		log, err := os.Create(filepath.Join(dir, fmt.Sprintf("e%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		peer := strings.SplitN(peers[i], "=", 2)[1]
		p := &etcdProc{t: t, log: log, args: []string{"--name", fmt.Sprintf("e%d", i), "--data-dir", filepath.Join(dir, fmt.Sprintf("e%d", i)),
			"--enable-v2=true", "--listen-client-urls", clients[i], "--advertise-client-urls", clients[i],
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(peers, ","), "--initial-cluster-token", "kaylee-faults",
			"--heartbeat-interval", "50", "--election-timeout", "500"}}
		if err := p.start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			p.Kill()
			log.Close()
			if t.Failed() {
				b, _ := os.ReadFile(log.Name())
				t.Logf("--- etcd e%d's log (last 2 KiB):\n%s", i, b[max(0, len(b)-2048):])
			}
		})
		members = append(members, p)
	}
	return clients, members
}

// The member-loss test on three processes of Debian's etcd (the
// etcd-server package), killed with SIGKILL. Without the etcd binary it
// is skipped, except in CI (CI=true), where that is a failure.
func TestExternalEtcdClusterMemberLoss(t *testing.T) {
	if _, err := exec.LookPath("etcd"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI must run this test: no etcd binary (apt-get install etcd-server)")
		}
		t.Skip("no etcd binary (apt-get install etcd-server)")
	}
	endpoints, members := startEtcdCluster(t, 3)
	client, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	waitFor(t, 30*time.Second, "the etcd cluster has a leader", func() bool { return leaderOf(t, endpoints) >= 0 })
	memberLoss(t, endpoints, members, client)
}
