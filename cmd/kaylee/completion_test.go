package main

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// Shell completion, through cobra's hidden __complete command as the
// shells call it: unit names from etcd (flags or KAYLEE_* as on the line),
// source names from etcd and from sync's --config, the values of -o; no
// files offered (":4"), and never a hang on an etcd that does not answer.
func TestCompletion(t *testing.T) {
	// Not parallel: each completion is bounded in time (3s).
	e := etcdtest.New(t)
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	units := writeFiles(t, map[string]string{
		"u.yaml": "name: web\napps:\n- image: x\n---\nname: api\napps:\n- image: x\n---\nname: countly\napps:\n- image: x\n",
	})
	if r := kaylee(t, env, "run", units); r.code != 0 {
		t.Fatalf("run: exit %d %s", r.code, r.err)
	}
	if r := kaylee(t, map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_ETCD_PREFIX": "/other"}, "run", filepath.Join(units, "u.yaml")); r.code != 0 {
		t.Fatalf("run: exit %d %s", r.code, r.err)
	}
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"units/db.yaml": "name: db\napps:\n- image: x\n"})
	repo.Commit("db")
	if r := kaylee(t, env, "sync", "--once", "--repo", repo.Dir, "--path", "units", "--source", "team-a", "--cache-dir", t.TempDir()); r.code != 0 {
		t.Fatalf("sync: exit %d %s %s", r.code, r.stdout, r.err)
	}
	cfg := filepath.Join(t.TempDir(), "kaylee.yaml")
	if err := os.WriteFile(cfg, []byte("sources:\n- name: team-a\n  repo: "+repo.Dir+"\n- name: team-b\n  repo: "+repo.Dir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{env, []string{"status", ""}, "api\ncountly\ndb\nweb\n:4\n"},
		{env, []string{"status", "c"}, "countly\n:4\n"},
		{env, []string{"status", "api", ""}, ":4\n"},
		{env, []string{"history", ""}, "api\ncountly\ndb\nweb\n:4\n"},
		{env, []string{"rollback", "w"}, "web\n:4\n"},
		{env, []string{"suspend", "a"}, "api\n:4\n"},
		{env, []string{"resume", "d"}, "db\n:4\n"},
		{env, []string{"restart", "--force", ""}, "api\ncountly\ndb\nweb\n:4\n"},
		{env, []string{"endpoints", "x"}, ":4\n"},
		{env, []string{"rm", "api", "web", ""}, "countly\ndb\n:4\n"},
		{nil, []string{"--etcd-endpoints", e.ClientURL(), "--etcd-prefix", "/other", "restart", ""}, "api\ncountly\nweb\n:4\n"},
		{env, []string{"sources", ""}, "rm\tForget a git source no process follows any more (its record, last attempt and trigger)\nteam-a\n:4\n"},
		{env, []string{"sources", "rm", ""}, "team-a\n:4\n"},
		{env, []string{"sources", "team-a", ""}, ":4\n"},
		{env, []string{"sync", "--once", "--config", cfg, ""}, "team-a\nteam-b\n:4\n"},
		{env, []string{"sync", "--once", "--config", cfg, "team-a", ""}, "team-b\n:4\n"},
		{env, []string{"sync", "--config", cfg, ""}, ":4\n"},
		{nil, []string{"status", "-o", ""}, "text\njson\n:4\n"},
		{nil, []string{"ls", "--output", "j"}, "text\njson\n:4\n"}, // the shell filters
		{nil, []string{"render", "-o", ""}, "text\njson\n:4\n"},
		{nil, []string{"sync", "-o", ""}, "text\njson\n:4\n"},
		{nil, []string{"history", "web", "-o", ""}, "text\njson\n:4\n"},
	}
	for _, tt := range tests {
		r := kaylee(t, tt.env, append([]string{"__complete"}, tt.args...)...)
		if r.code != 0 || r.stdout != tt.want {
			t.Errorf("kaylee __complete %q: exit %d\nstdout %q\nwant   %q\nstderr %s", tt.args, r.code, r.stdout, tt.want, r.err)
		}
	}

	// An etcd that accepts connections and never answers, and none at all.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for _, endpoint := range []string{"http://" + ln.Addr().String(), "http://" + freePort(t)} {
		began := time.Now()
		r := kaylee(t, nil, "__complete", "--etcd-endpoints", endpoint, "status", "")
		if took := time.Since(began); r.stdout != ":4\n" || took > 3*time.Second {
			t.Errorf("completion against %s: stdout %q after %s", endpoint, r.stdout, took)
		}
	}
}
