package etcdtest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/internal/embedetcd"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestServeV3AndV2(t *testing.T) {
	s := New(t)
	c := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, "/kaylee2/units/a", `{"name":"a"}`); err != nil {
		t.Fatal(err)
	}
	r, err := c.Get(ctx, "/kaylee2/units/a")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != `{"name":"a"}` {
		t.Fatalf("get: %v %v", r, err)
	}
	// fleet's registry uses the v2 keys API.
	req, _ := http.NewRequest(http.MethodPut, s.ClientURL()+"/v2/keys/_coreos.com/fleet/x", strings.NewReader("value=1"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || !strings.Contains(string(body), `"value":"1"`) {
		t.Fatalf("v2 put: %d %s", resp.StatusCode, body)
	}
}

func TestStopRestartKeepsData(t *testing.T) {
	s := New(t)
	c := s.Client(t)
	ctx := context.Background()
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err := c.Get(short, "k")
	cancel()
	if err == nil {
		t.Fatal("a stopped server answered")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	long, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	r, err := c.Get(long, "k")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v" {
		t.Fatalf("after restart: %v %v", r, err)
	}
}

func TestSeveralServersAndPortInUse(t *testing.T) {
	a, b := New(t), New(t)
	if a.ClientURL() == b.ClientURL() {
		t.Fatal("two servers share a URL")
	}
	_, err := embedetcd.Start(embedetcd.Config{ClientURL: a.ClientURL(), Dir: t.TempDir()})
	if !errors.Is(err, embedetcd.ErrAddrInUse) || !strings.Contains(err.Error(), strings.TrimPrefix(a.ClientURL(), "http://")) {
		t.Fatalf("want a clear address-in-use error naming the address, got %v", err)
	}
}

// A cluster of three: writes go on through any member's loss and the
// leader's, and a member brought back catches up.
func TestCluster(t *testing.T) {
	c := NewCluster(t, 3)
	cl := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := cl.Put(ctx, "k", "1"); err != nil {
		t.Fatal(err)
	}
	leader := c.Leader()
	if leader < 0 {
		t.Fatal("no raft leader")
	}
	start := time.Now()
	c.Members[leader].Kill()
	t.Logf("the leader was killed in %s", time.Since(start).Round(10*time.Millisecond))
	for {
		if _, err := cl.Put(ctx, "k", "2"); err == nil {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatal("no write within 30s of the leader's loss")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("a write went through %s after the leader's kill began", time.Since(start).Round(10*time.Millisecond))
	if err := c.Members[leader].Restart(); err != nil {
		t.Fatal(err)
	}
	one, err := clientv3.New(clientv3.Config{Endpoints: c.Members[leader].Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	r, err := one.Get(ctx, "k") // linearizable: through the new leader
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "2" {
		t.Fatalf("the restored member reads %v %v", r, err)
	}
}
