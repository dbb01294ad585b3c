package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// Issue 25: validate and render take --default-engine, say which engine
// each unit runs with, validate a unit that names no engine as that
// engine runs it, and do not warn that it runs with rkt when it does not.
func TestValidateAndRenderWithDefaultEngine(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{
		"units/web.yaml": "name: web\napps:\n- image: nginx\n",
		"units/old.yaml": "name: old\nengine: rkt\napps:\n- image: quay.io/old\n",
		"pods/pod.yaml":  "name: pod\napps:\n- image: a\n- image: b\n",
	})
	pod := filepath.Join(dir, "pods")
	units := filepath.Join(dir, "units")
	tests := []struct {
		args        []string
		code        int
		stdout      string // exactly; "-" for anything
		stderr      string // exactly
		stdoutHas   string
		stdoutLacks string
	}{
		{[]string{"validate", "--default-engine", "docker", units}, 0,
			"old: engine rkt (its own)\nweb: engine docker (the cluster default)\n", "", "", ""},
		{[]string{"validate", units}, 0,
			"old: engine rkt (its own)\nweb: engine rkt (the cluster default)\n",
			"warning: units/web.yaml:2: engine: none given, so web runs with rkt (the seed format's default), which is archived and on no current host; write engine: docker, or engine: rkt to keep it\n", "", ""},
		{[]string{"validate", "--json", "--default-engine", "docker", units}, 0,
			"{\"name\":\"old\",\"engine\":\"rkt\",\"apps\":[{\"image\":\"quay.io/old\"}]}\n{\"name\":\"web\",\"apps\":[{\"image\":\"nginx\"}]}\n", "", "", ""},
		{[]string{"validate", "--default-engine", "docker", pod}, 1, "",
			"pods/pod.yaml:2: apps: engine docker runs one app per unit, found 2: split them into units, or use engine podman, which runs them as one pod (pod names no engine: it runs with the default engine docker)\n", "", ""},
		{[]string{"validate", "--default-engine", "lxc", units}, 1, "",
			"kaylee: --default-engine: \"lxc\" is not an engine: use rkt, docker, podman\n", "", ""},
		{[]string{"render", "--default-engine", "docker", units}, 0, "-",
			"units/old.yaml: old: engine rkt (its own)\nunits/web.yaml: web: engine docker (the cluster default)\n", "/usr/bin/docker run", ""},
		{[]string{"validate", "--default-engine", "podman", pod}, 0, "pod: engine podman (the cluster default)\n", "", "", ""},
		{[]string{"render", "--default-engine", "podman", pod}, 0, "-",
			"pods/pod.yaml: pod: engine podman (the cluster default)\n", "podman pod create", ""},
		{[]string{"render", units}, 0, "-",
			"warning: units/web.yaml:2: engine: none given, so web runs with rkt (the seed format's default), which is archived and on no current host; write engine: docker, or engine: rkt to keep it\n", "", "/usr/bin/docker"},
	}
	for _, tt := range tests {
		r := kaylee(t, nil, tt.args...)
		out := strings.ReplaceAll(r.stdout, dir+"/", "")
		errb := strings.ReplaceAll(r.err, dir+"/", "")
		if r.code != tt.code || tt.stdout != "-" && out != tt.stdout || errb != tt.stderr ||
			!strings.Contains(out, tt.stdoutHas) || tt.stdoutLacks != "" && strings.Contains(out, tt.stdoutLacks) {
			t.Errorf("kaylee %s: exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(tt.args, " "), r.code, out, errb, tt.code, tt.stdout, tt.stderr)
		}
	}
}

// Issue 25: against a server whose default engine is docker, run --wait
// and rollback --wait wait for the spec hash the scheduler rolls out (a
// unit that names no engine hashes with docker) and finish; the history
// records the engine.
func TestWaitWithDefaultEngine(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	startFleet(t, e, 2)
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	srv := startKaylee(t, env, "server", "--default-engine", "docker", "--min-ready", "300ms", "--lease-ttl", "2s")
	dir := writeFiles(t, map[string]string{
		"v1.yaml": "name: web\nreplicas: 2\napps:\n- image: docker://web:1\n",
		"v2.yaml": "name: web\nreplicas: 2\napps:\n- image: docker://web:2\n",
	})
	must := func(want string, args ...string) string {
		t.Helper()
		r := kaylee(t, env, args...)
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("kaylee %v: exit %d\nstdout %q\nstderr %q\nwant stdout containing %q\nserver:\n%s", args, r.code, r.stdout, r.err, want, srv.errb.String())
		}
		return r.stdout
	}
	must("web: running, 2/2", "run", "--wait", "--timeout", "30s", filepath.Join(dir, "v1.yaml"))
	must("web: running, 2/2", "run", "--wait", "--timeout", "30s", filepath.Join(dir, "v2.yaml"))
	must("web: running, 2/2", "rollback", "web", "--wait", "--timeout", "30s")
	var hist []struct {
		Revision int64
		Engine   string
	}
	if err := json.Unmarshal([]byte(must("", "history", "web", "-o", "json")), &hist); err != nil || len(hist) < 2 || hist[0].Engine != "docker" {
		t.Fatalf("history: %+v (%v)", hist, err)
	}
	must("Engine:    docker (the spec names none: the scheduler's default engine, or a rollback's)", "status", "web")
	must("engine docker (not named in the spec)", "history", "web")
	pod := writeFiles(t, map[string]string{"pod.yaml": "name: pod\napps:\n- image: a\n- image: b\n"})
	r := kaylee(t, env, "run", pod)
	const want = "pod.yaml:2: apps: engine docker runs one app per unit, found 2: split them into units, or use engine podman, which runs them as one pod (pod names no engine: it runs with the scheduler's default engine docker)\nnothing stored: fix the errors above\n"
	if got := strings.ReplaceAll(r.err, pod+"/", ""); r.code != 1 || got != want {
		t.Fatalf("kaylee run of a pod under the default docker: exit %d, stderr %q; want 1 and %q", r.code, got, want)
	}
}
