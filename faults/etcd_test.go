package faults

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// world is Kaylee on an etcd: fleet's engine and agents (simulated
// systemd), two kaylee servers and a kaylee sync loop following a git
// repository, every process given every etcd endpoint.
type world struct {
	t       *testing.T
	st      *store.Store
	cluster *fleetsim.Cluster
	repo    *gittest.Repo
	servers []*proc
	syncer  *proc
}

// worldOptions change a world; the zero value is the usual one.
type worldOptions struct {
	// serverEndpoints, when set, gives each server its own etcd endpoints
	// (a proxy the test can cut, say).
	serverEndpoints [][]string
}

func newWorld(t *testing.T, endpoints []string, st *store.Store, opts ...worldOptions) *world {
	t.Helper()
	cluster, err := fleetsim.Start(context.Background(), fleetsim.Config{Endpoints: endpoints, Machines: fleetsim.Machines(3),
		TTL: 4 * time.Second, EngineInterval: time.Second, StartDelay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	w := &world{t: t, st: st, cluster: cluster, repo: gittest.NewRepo(t)}
	w.repo.Write(map[string]string{"web.yaml": webFile("web:1")})
	w.repo.Commit("v1")
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": strings.Join(endpoints, ",")}
	for i, name := range []string{"server a", "server b"} {
		senv := env
		if len(opts) > 0 && opts[0].serverEndpoints != nil {
			senv = map[string]string{"KAYLEE_ETCD_ENDPOINTS": strings.Join(opts[0].serverEndpoints[i], ",")}
		}
		w.servers = append(w.servers, start(t, name, senv, "server", "--lease-ttl", leaseTTL.String(), "--min-ready", "300ms"))
		if i == 0 {
			waitFor(t, 20*time.Second, name+" leads", func() bool { return strings.Contains(w.servers[0].stderr.String(), `msg="became leader"`) })
		}
	}
	w.syncer = start(t, "sync", env, "sync", "--repo", w.repo.Dir, "--source", "units", "--interval", "1s",
		"--lease-ttl", leaseTTL.String(), "--cache-dir", t.TempDir())
	return w
}

func webFile(image string) string {
	return "name: web\nreplicas: 2\nupdate: {maxSurge: 1}\napps:\n- image: docker://" + image + "\n"
}

// commit puts web at image in git and returns the commit.
func (w *world) commit(image string) string {
	w.repo.Write(map[string]string{"web.yaml": webFile(image)})
	return w.repo.Commit(image)
}

// status is web's status, or nil.
func (w *world) status() *store.Status {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := w.st.GetStatus(ctx, "web")
	if err != nil {
		return nil
	}
	return st
}

// synced waits until the sync loop applied rev and web runs it everywhere;
// it returns how long each took since start.
func (w *world) synced(rev, image string, timeout time.Duration, start time.Time) (sync, running time.Duration) {
	w.t.Helper()
	waitFor(w.t, timeout, "git revision "+rev[:7]+" synced", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := w.st.GetSyncRecord(ctx, "units")
		return err == nil && r.Revision == rev
	})
	sync = time.Since(start)
	waitFor(w.t, timeout, "web running "+image, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		u, err := w.st.GetUnit(ctx, "web")
		st := w.status()
		return err == nil && st != nil && strings.Contains(string(u.Raw), image) && st.Phase == store.PhaseRunning &&
			st.SpecHash == u.Spec.Hash(0) && st.Running == 2
	})
	return sync, time.Since(start)
}

// fleetUnits lists web's fleet units: name → desired state.
func (w *world) fleetUnits() map[string]string {
	w.t.Helper()
	units, err := w.cluster.API().Units()
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[string]string{}
	for _, u := range units {
		if strings.HasPrefix(u.Name, "k2:web:") {
			out[u.Name] = u.DesiredState
		}
	}
	return out
}

// settled checks that nothing is lost or doubled: one unit in etcd, and
// exactly two fleet units of web, both launched, of the current spec.
func (w *world) settled() map[string]string {
	w.t.Helper()
	ctx := context.Background()
	units, _, err := w.st.ListUnits(ctx)
	if err != nil || len(units) != 1 || units[0].Name != "web" {
		w.t.Fatalf("units in etcd: %v %v", units, err)
	}
	hash := units[0].Spec.Hash(0)
	var fu map[string]string
	waitFor(w.t, 30*time.Second, "exactly two launched fleet units of the current spec", func() bool {
		fu = w.fleetUnits()
		n := 0
		for name, state := range fu {
			if strings.Contains(name, ":"+hash+":") && state == "launched" {
				n++
			}
		}
		return n == 2 && len(fu) == 2
	})
	return fu
}

func names(m map[string]string) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// member is one etcd cluster member a test can kill and bring back.
type member interface {
	Kill()
	Restart() error
}

// leaderOf is the index of the endpoint whose member is the raft leader,
// or -1.
func leaderOf(t *testing.T, endpoints []string) int {
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, ep := range endpoints {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := c.Status(ctx, ep)
		cancel()
		if err == nil && st.Leader == st.Header.MemberId {
			return i
		}
	}
	return -1
}

// A three-member etcd loses the member listed first during a sync, then
// its raft leader during a rollout: the sync and the rollout complete,
// nothing is lost or doubled, and bringing the members back changes
// nothing. The recovery times are logged (FAULTS.md).
func TestEtcdMemberLoss(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	members := make([]member, len(c.Members))
	for i, m := range c.Members {
		members[i] = m
	}
	memberLoss(t, c.Endpoints(), members, c.Client(t))
}

func memberLoss(t *testing.T, endpoints []string, members []member, client *clientv3.Client) {
	w := newWorld(t, endpoints, store.New(client, store.DefaultPrefix))
	w.synced(w.repo.Git("rev-parse", "HEAD"), "web:1", 60*time.Second, time.Now())
	smp := sampleFleet(w.cluster)
	defer smp.stop()

	// During a sync: a commit, and the first member goes.
	rev := w.commit("web:2")
	killed := time.Now()
	members[0].Kill()
	s, r := w.synced(rev, "web:2", 90*time.Second, killed)
	t.Logf("member 0 killed as a commit landed: synced %s later, rolled out %s later", s.Round(100*time.Millisecond), r.Round(100*time.Millisecond))
	if err := members[0].Restart(); err != nil {
		t.Fatal(err)
	}

	// During a rollout: the raft leader goes.
	rev = w.commit("web:3")
	waitFor(t, 30*time.Second, "web:3's rollout under way", func() bool {
		st := w.status()
		return st != nil && st.Phase == store.PhaseProgressing
	})
	var leader int
	waitFor(t, 30*time.Second, "a raft leader", func() bool { leader = leaderOf(t, endpoints); return leader >= 0 })
	killed = time.Now()
	members[leader].Kill()
	_, r = w.synced(rev, "web:3", 90*time.Second, killed)
	t.Logf("raft leader (member %d) killed mid-rollout: rollout complete %s later", leader, r.Round(100*time.Millisecond))
	before := w.settled()

	// The member comes back: nothing changes.
	if err := members[leader].Restart(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	if after := w.settled(); names(after) != names(before) {
		t.Fatalf("restoring the member changed fleet: %s → %s", names(before), names(after))
	}
	smp.stop()
	if n := smp.maxLaunched(); n > 3 {
		t.Errorf("fleet had %d web replicas launched at once; desired 2 + maxSurge 1 = 3", n)
	}
}

// etcd entirely down for 30 s in the middle of a rollout, then back: the
// servers, the sync loop and fleet's agents resume and converge, with no
// crash and no unit lost or doubled.
func TestEtcdDownMidRollout(t *testing.T) {
	e := etcdtest.New(t)
	w := newWorld(t, e.Endpoints(), store.New(e.Client(t), store.DefaultPrefix))
	w.synced(w.repo.Git("rev-parse", "HEAD"), "web:1", 60*time.Second, time.Now())
	rev := w.commit("web:2")
	waitFor(t, 30*time.Second, "web:2's rollout under way", func() bool {
		st := w.status()
		return st != nil && st.Phase == store.PhaseProgressing
	})
	e.Stop()
	time.Sleep(30 * time.Second)
	if err := e.Restart(); err != nil {
		t.Fatal(err)
	}
	s, r := w.synced(rev, "web:2", 120*time.Second, time.Now())
	t.Logf("etcd down 30s mid-rollout: after it came back, synced in %s, rollout complete in %s", s.Round(100*time.Millisecond), r.Round(100*time.Millisecond))
	w.settled()
	for _, p := range append([]*proc{w.syncer}, w.servers...) {
		select {
		case <-p.done:
			t.Errorf("%s exited while etcd was down: %s", p.name, p.cmd.ProcessState)
		default:
		}
		if out := p.stderr.String(); strings.Contains(out, "panic:") {
			t.Errorf("%s panicked", p.name)
		}
	}
}
