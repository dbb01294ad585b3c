package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

func newStore(t *testing.T) (*Store, *etcdtest.Server) {
	t.Helper()
	e := etcdtest.New(t)
	return New(e.Client(t), "/kaylee2"), e
}

func spec(name string, replicas int) *deploy.Spec {
	return &deploy.Spec{Name: name, Replicas: replicas, Apps: []deploy.App{{Image: "docker://nginx"}}}
}

func TestUnitsCRUD(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	changed, err := s.PutUnit(ctx, spec("web", 2), Fence{})
	if err != nil || !changed {
		t.Fatalf("first put: changed=%v err=%v", changed, err)
	}
	// Stored as canonical JSON at the contract key.
	r, err := s.Client().Get(ctx, "/kaylee2/units/web")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != `{"name":"web","replicas":2,"apps":[{"image":"docker://nginx"}]}` {
		t.Fatalf("stored value: %v %v", r.Kvs, err)
	}
	if changed, _ := s.PutUnit(ctx, spec("web", 2), Fence{}); changed {
		t.Fatal("an identical put reported a change")
	}
	if changed, _ := s.PutUnit(ctx, spec("web", 3), Fence{}); !changed {
		t.Fatal("an update reported no change")
	}
	u, err := s.GetUnit(ctx, "web")
	if err != nil || u.Spec.Replicas != 3 || u.Err != nil {
		t.Fatalf("get: %+v %v", u, err)
	}
	if _, err := s.PutUnit(ctx, &deploy.Spec{Name: "Bad"}, Fence{}); err == nil {
		t.Fatal("an invalid spec was stored")
	}
	if _, err := s.GetUnit(ctx, "nope"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("missing unit: %v", err)
	}
	existed, err := s.DeleteUnit(ctx, "web", Fence{})
	if err != nil || !existed {
		t.Fatalf("delete: %v %v", existed, err)
	}
	if existed, _ := s.DeleteUnit(ctx, "web", Fence{}); existed {
		t.Fatal("second delete says the unit existed")
	}
}

func TestListReportsBadValues(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	c := s.Client()
	// Written by hand, as the seed README allows.
	if _, err := c.Put(ctx, "/kaylee2/units/countly", `{"name":"countly","replicas":4,"apps":[{"image":"x"}]}`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "/kaylee2/units/broken", `{"name":"broken",`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "/kaylee2/units/typo", `{"name":"typo","replcas":2,"apps":[{"image":"x"}]}`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "/kaylee2/units/other", `{"name":"misnamed","apps":[{"image":"x"}]}`); err != nil {
		t.Fatal(err)
	}
	units, rev, err := s.ListUnits(ctx)
	if err != nil || rev == 0 {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, u := range units {
		if u.Err != nil {
			got[u.Name] = u.Err.Error()
		} else {
			got[u.Name] = "ok"
		}
	}
	want := map[string]string{
		"broken":  "/kaylee2/units/broken: invalid JSON",
		"countly": "ok",
		"other":   `the unit inside is named "misnamed"`,
		"typo":    `unknown field "replcas" (did you mean "replicas"?)`,
	}
	for name, w := range want {
		if !strings.Contains(got[name], w) {
			t.Errorf("%s: %q, want %q", name, got[name], w)
		}
	}
}

func TestWatchUnits(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, rev, err := s.ListUnits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events := s.WatchUnits(ctx, rev)
	if _, err := s.PutUnit(ctx, spec("a", 1), Fence{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteUnit(ctx, "a", Fence{}); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for len(seen) < 2 {
		select {
		case evs := <-events:
			for _, e := range evs {
				if e.Deleted {
					seen = append(seen, "delete "+e.Name)
				} else {
					seen = append(seen, "put "+e.Unit.Spec.Name)
				}
			}
		case <-ctx.Done():
			t.Fatalf("events: %v", seen)
		}
	}
	if strings.Join(seen, ",") != "put a,delete a" {
		t.Fatalf("events %v", seen)
	}
}

func TestRestartCounter(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if _, err := s.Restart(ctx, "ghost"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("restart of a missing unit: %v", err)
	}
	if _, err := s.PutUnit(ctx, spec("web", 2), Fence{}); err != nil {
		t.Fatal(err)
	}
	for want := int64(1); want <= 3; want++ {
		if n, err := s.Restart(ctx, "web"); err != nil || n != want {
			t.Fatalf("restart: %d %v, want %d", n, err, want)
		}
	}
	if c, _ := s.RestartCounters(ctx); c["web"] != 3 {
		t.Fatalf("counters %v", c)
	}
}

func TestDeposedLeaderCannotWrite(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := s.NewLeader(ctx, "agent-a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Campaign(ctx); err != nil {
		t.Fatal(err)
	}
	fence := a.Fence()
	if _, err := s.PutUnit(ctx, spec("x", 1), fence); err != nil {
		t.Fatalf("leader's write: %v", err)
	}
	b, err := s.NewLeader(ctx, "agent-b", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if who, _ := b.Current(ctx); who != "agent-a" {
		t.Fatalf("leader is %q", who)
	}
	// a is deposed: its session ends, b takes over.
	if err := a.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Campaign(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutUnit(ctx, spec("x", 2), fence); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("deposed leader's write: %v, want ErrNotLeader", err)
	}
	if _, err := s.DeleteUnit(ctx, "x", fence); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("deposed leader's delete: %v", err)
	}
	if u, _ := s.GetUnit(ctx, "x"); u == nil || u.Spec.Replicas != 1 {
		t.Fatalf("unit changed by a deposed leader: %+v", u)
	}
	if _, err := s.PutUnit(ctx, spec("x", 2), b.Fence()); err != nil {
		t.Fatalf("new leader's write: %v", err)
	}
}

func TestDialErrors(t *testing.T) {
	ctx := context.Background()
	_, err := Dial(ctx, DialConfig{Endpoints: []string{"http://127.0.0.1:1"}, DialTimeout: 500 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "does not answer") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("unreachable etcd: %v", err)
	}
	_, err = Dial(ctx, DialConfig{Endpoints: []string{"http://127.0.0.1:1"}, CAFile: "/nonexistent/ca.pem"})
	if err == nil || !strings.Contains(err.Error(), "--etcd-ca") {
		t.Fatalf("bad CA file: %v", err)
	}
}
