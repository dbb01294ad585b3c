package etcdtest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
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
	_, err := Start(Config{ClientURL: a.ClientURL(), Dir: t.TempDir()})
	if !errors.Is(err, ErrAddrInUse) || !strings.Contains(err.Error(), strings.TrimPrefix(a.ClientURL(), "http://")) {
		t.Fatalf("want a clear address-in-use error naming the address, got %v", err)
	}
}
