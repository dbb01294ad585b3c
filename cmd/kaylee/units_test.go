package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

func TestRunLsRmRestart(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	seedJSON, _ := os.ReadFile("../../deploy/testdata/countly.json")
	dir := writeFiles(t, map[string]string{
		"two.yaml": "name: web\napps:\n- image: nginx\n---\nname: api\nreplicas: 2\napps:\n- image: api\n",
		"bad.yaml": "name: bad\nreplcas: 2\napps:\n- image: x\n",
	})
	steps := []struct {
		args       []string
		code       int
		out, errTx string
	}{
		{[]string{"run", "../../deploy/testdata/countly.yaml", filepath.Join(dir, "two.yaml")}, 0, "countly stored\nweb stored\napi stored\n", ""},
		{[]string{"run", "../../deploy/testdata/countly.yaml"}, 0, "countly unchanged\n", ""},
		{[]string{"run", filepath.Join(dir, "two.yaml"), filepath.Join(dir, "bad.yaml")}, 1, "", "bad.yaml:2: unknown field \"replcas\""},
		{[]string{"ls"}, 0, "api\ncountly\nweb\n", ""},
		{[]string{"ls", "-o", "json"}, 0, "[\n  \"api\",\n  \"countly\",\n  \"web\"\n]\n", ""},
		{[]string{"restart", "web"}, 0, "web restart 1 requested\n", ""},
		{[]string{"restart", "ghost"}, 1, "", `no unit named "ghost"`},
		{[]string{"rm", "web"}, 0, "web removed\n", ""},
		{[]string{"rm", "web"}, 1, "", "no unit named web"},
		{[]string{"ls"}, 0, "api\ncountly\n", ""},
	}
	for _, s := range steps {
		r := kaylee(t, env, s.args...)
		if r.code != s.code || (s.out != "" && r.stdout != s.out) || !strings.Contains(r.err, s.errTx) {
			t.Fatalf("kaylee %v: exit %d\nstdout %q\nstderr %q\nwant exit %d, stdout %q, stderr containing %q", s.args, r.code, r.stdout, r.err, s.code, s.out, s.errTx)
		}
	}
	// The seed's contract: the unit is its canonical JSON at /kaylee2/units/<name>.
	got, err := e.Client(t).Get(context.Background(), "/kaylee2/units/countly")
	if err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != strings.TrimSpace(string(seedJSON)) {
		t.Fatalf("stored countly: %v %v", got.Kvs, err)
	}
	// A failed run stored nothing, not even its good file's changes.
	if u, _ := e.Client(t).Get(context.Background(), "/kaylee2/units/bad"); len(u.Kvs) != 0 {
		t.Fatal("a unit from a failed run was stored")
	}
}

func TestUnreachableEtcd(t *testing.T) {
	t.Parallel()
	r := kaylee(t, map[string]string{"KAYLEE_ETCD_ENDPOINTS": "http://127.0.0.1:1"}, "ls")
	if r.code != 1 || !strings.Contains(r.err, "etcd at http://127.0.0.1:1 does not answer") || !strings.Contains(r.err, "(check --etcd-endpoints, and that etcd runs there)") {
		t.Fatalf("%+v", r)
	}
	r = kaylee(t, map[string]string{"KAYLEE_ETCD_ENDPOINTS": "http://127.0.0.1:1"}, "ls", "--etcd-ca", "/nonexistent/ca.pem")
	if r.code != 1 || !strings.Contains(r.err, "kaylee: --etcd-ca: etcd TLS CA (/nonexistent/ca.pem): open /nonexistent/ca.pem") {
		t.Fatalf("bad CA file: %+v", r)
	}
}
