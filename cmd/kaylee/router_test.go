package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/router"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// routedUnits stores web (two domains and port http) and api (a wildcard)
// with kaylee run, and registers web's replicas at ips (port 8080 unless
// port says otherwise).
func routedUnits(t *testing.T, e *etcdtest.Server, port int, ips ...string) {
	t.Helper()
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	dir := writeFiles(t, map[string]string{
		"web.yaml": unitWeb + "ports:\n- {name: http, port: 8080}\ndomains: [a.test, www.a.test]\n",
		"api.yaml": "name: api\nreplicas: 1\napps:\n- image: docker://api\nports:\n- {name: http, port: 9000}\ndomains: ['*.a.test']\n",
	})
	if r := kaylee(t, env, "run", dir); r.code != 0 {
		t.Fatalf("run: %d %s%s", r.code, r.stdout, r.err)
	}
	var ins []*store.Instance
	for i, ip := range ips {
		ins = append(ins, &store.Instance{Unit: "web", Instance: "k2:web:3cbb8d9a:1481d3:" + strconv.Itoa(i), MachineIP: ip,
			State: "active/running", Ports: []deploy.Port{{Name: "http", Port: port}}})
	}
	if err := store.New(e.Client(t), "/kaylee2").ApplyInstances(context.Background(), ins, nil, store.Fence{}); err != nil {
		t.Fatal(err)
	}
}

// kaylee routes prints domain, unit and endpoints from etcd, as the
// router routes them.
func TestRoutes(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	if r := kaylee(t, env, "routes"); r.code != 0 || r.stdout != "no unit has domains\n" {
		t.Fatalf("routes of nothing: %d %q %s", r.code, r.stdout, r.err)
	}
	routedUnits(t, e, 8080, "192.0.2.2", "192.0.2.1")
	r := kaylee(t, env, "routes")
	want := `DOMAIN      UNIT  ENDPOINTS                      NOTE
a.test      web   192.0.2.1:8080,192.0.2.2:8080  -
www.a.test  web   192.0.2.1:8080,192.0.2.2:8080  -
*.a.test    api   - (503)                        -
`
	if r.code != 0 || r.stdout != want {
		t.Fatalf("routes: %d %s\n got:\n%s\nwant:\n%s", r.code, r.err, r.stdout, want)
	}
	r = kaylee(t, env, "routes", "-o", "json")
	var routes []router.Route
	if err := json.Unmarshal([]byte(r.stdout), &routes); err != nil || len(routes) != 3 || routes[2].Domain != "*.a.test" ||
		len(routes[2].Endpoints) != 0 || strings.Join(routes[0].Endpoints, ",") != "192.0.2.1:8080,192.0.2.2:8080" {
		t.Fatalf("routes -o json: %v\n%s", err, r.stdout)
	}
	if !strings.Contains(r.stdout, `"endpoints": []`) {
		t.Errorf("routes -o json: a domain without endpoints has no empty list:\n%s", r.stdout)
	}
	if r := kaylee(t, env, "routes", "-o", "yaml"); r.code == 0 || !strings.Contains(r.err, `-o "yaml": use text or json`) {
		t.Errorf("routes -o yaml: %d %s", r.code, r.err)
	}
}

// kaylee router --caddy runs Debian's caddy and routes the units' domains
// to the registry's replicas; GET /status says what it serves.
func TestRouterCommand(t *testing.T) {
	t.Parallel()
	caddy, err := exec.LookPath("caddy")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI must run this test: no caddy on PATH (.ci/run installs Debian's caddy)")
		}
		t.Skip("no caddy on PATH (apt-get install caddy)")
	}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "web") }))
	defer backend.Close()
	port := backend.Listener.Addr().(*net.TCPAddr).Port
	e := etcdtest.New(t)
	routedUnits(t, e, port, "127.0.0.1")
	sockDir, err := os.MkdirTemp("", "kr")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	listen, status := freePort(t), freePort(t)
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	p := startKaylee(t, env, "router", "--caddy", caddy, "--listen", listen, "--status-listen", status,
		"--admin-socket", filepath.Join(sockDir, "caddy.sock"))
	route := func(host string) string { return getHost(listen, host) }
	waitFor(t, 20*time.Second, "a.test served through caddy", func() bool { return route("a.test") == "200 web" })
	for host, want := range map[string]string{"www.a.test": "200 web", "x.a.test": "503 no replica of unit api serves", "b.test": "404 no unit serves b.test"} {
		if got := route(host); got != want {
			t.Errorf("%s: %q, want %q", host, got, want)
		}
	}
	resp, err := http.Get("http://" + status + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st router.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 200 || st.Routes != 3 || st.EtcdError != "" {
		t.Errorf("GET /status: %d %+v %v", resp.StatusCode, st, err)
	}
	_, metrics := get(status, "/metrics")
	for _, want := range []string{"\nkaylee_router_routes 3\n", "\nkaylee_router_etcd_up 1\n", "\nkaylee_router_caddy_load_ok 1\n", "\nprocess_cpu_seconds_total "} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("GET /metrics lacks %q:\n%s", strings.TrimSpace(want), metrics)
		}
	}
	if code, err := p.Stop(); code != 0 || err != nil {
		t.Errorf("stop: %d %v\n%s", code, err, p.errb.String())
	}
	if got := route("a.test"); !strings.Contains(got, "connection refused") {
		t.Errorf("after kaylee router stopped, caddy still answers: %q", got)
	}
}

// contrib's router units run kaylee router with flags it has and Debian's
// caddy, may bind :80 as user kaylee, keep the admin socket in their
// runtime directory, and pass systemd-analyze verify; the fleet one is
// global.
func TestRouterContribUnits(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ path, binary string }{
		{"../../contrib/systemd/kaylee-router.service", "/usr/local/bin/kaylee"},
		{"../../contrib/fleet/kaylee-router.service", "/opt/bin/kaylee"},
	} {
		t.Run(filepath.Base(filepath.Dir(tt.path)), func(t *testing.T) {
			u := readUnitFile(t, tt.path)
			if strings.Contains(tt.path, "fleet") && u.get("X-Fleet", "Global") != "true" {
				t.Errorf("[X-Fleet] Global=%q, want true", u.get("X-Fleet", "Global"))
			}
			if u.get("Service", "Restart") != "always" || u.get("Service", "User") == "" ||
				u.get("Service", "AmbientCapabilities") != "CAP_NET_BIND_SERVICE" {
				t.Errorf("Restart=%q User=%q AmbientCapabilities=%q, want always, a user, CAP_NET_BIND_SERVICE",
					u.get("Service", "Restart"), u.get("Service", "User"), u.get("Service", "AmbientCapabilities"))
			}
			args := strings.Fields(u.get("Service", "ExecStart"))
			if len(args) < 2 || args[0] != tt.binary || args[1] != "router" {
				t.Fatalf("ExecStart=%q, want %s router …", args, tt.binary)
			}
			flag := func(name string) string {
				if i := slices.Index(args, name); i > 0 && i+1 < len(args) {
					return args[i+1]
				}
				return ""
			}
			if flag("--caddy") != "/usr/bin/caddy" || filepath.Dir(flag("--admin-socket")) != "/run/"+u.get("Service", "RuntimeDirectory") {
				t.Errorf("--caddy %q --admin-socket %q: want Debian's caddy and a socket in RuntimeDirectory=%s",
					flag("--caddy"), flag("--admin-socket"), u.get("Service", "RuntimeDirectory"))
			}
			if r := kaylee(t, nil, append(args[1:], "--help")...); r.code != 0 || !strings.Contains(r.stdout, "kaylee router") {
				t.Errorf("kaylee %s --help: exit %d\n%s%s", strings.Join(args[1:], " "), r.code, r.stdout, r.err)
			}
			verifyUnit(t, tt.path, tt.binary)
		})
	}
}

// kaylee agent --router runs the router beside the agent's roles: the
// units it syncs from git are routed (503 while no replica serves; fleet
// has no machine here), other hosts get 404.
func TestRouterInAgent(t *testing.T) {
	t.Parallel()
	caddy, err := exec.LookPath("caddy")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI must run this test: no caddy on PATH (.ci/run installs Debian's caddy)")
		}
		t.Skip("no caddy on PATH (apt-get install caddy)")
	}
	e := etcdtest.New(t)
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"units/web.yaml": unitWeb + "ports:\n- {name: http, port: 8080}\ndomains: [a.test]\n"})
	repo.Commit("web with a domain")
	sockDir, err := os.MkdirTemp("", "kr")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	listen, agentAddr := freePort(t), freePort(t)
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	p := startKaylee(t, env, "agent", "--repo", repo.FileURL(), "--path", "units", "--cache-dir", t.TempDir(), "--interval", "1h", "--listen", agentAddr,
		"--router", "--router-caddy", caddy, "--router-listen", listen, "--router-admin-socket", filepath.Join(sockDir, "caddy.sock"))
	route := func(host string) string { return getHost(listen, host) }
	if !eventually(30*time.Second, func() bool { return route("a.test") == "503 no replica of unit web serves" }) {
		t.Fatalf("a.test not routed by the agent's router: %q\n%s", route("a.test"), p.errb.String())
	}
	if got := route("b.test"); got != "404 no unit serves b.test" {
		t.Errorf("b.test: %q", got)
	}
	// The agent's /metrics has the router's series.
	if _, m := get(agentAddr, "/metrics"); !strings.Contains(m, "\nkaylee_router_routes 1\n") || !strings.Contains(m, "\nkaylee_router_etcd_up 1\n") {
		t.Errorf("the agent's /metrics lacks the router's series:\n%s", m)
	}
}

// getHost asks the router listening on listen for / with Host host and
// returns "<status> <body>", or the error.
func getHost(listen, host string) string {
	req, _ := http.NewRequest(http.MethodGet, "http://"+listen+"/", nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strconv.Itoa(resp.StatusCode) + " " + strings.TrimSpace(string(b))
}
