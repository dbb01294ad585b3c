package router

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

var update = flag.Bool("update", false, "rewrite golden files")

func spec(domains []string, domainsPort string, ports ...deploy.Port) *deploy.Spec {
	return &deploy.Spec{Domains: domains, DomainsPort: domainsPort, Ports: ports}
}

func inst(unit, name, ip string, ports ...deploy.Port) *store.Instance {
	return &store.Instance{Unit: unit, Instance: name, MachineIP: ip, State: "active/running", Ports: ports}
}

var (
	httpPort  = deploy.Port{Name: "http", Port: 8080}
	adminPort = deploy.Port{Name: "admin", Port: 9000}
	webPort   = deploy.Port{Name: "web", Port: 3000, Protocol: "tcp"}
	dnsPort   = deploy.Port{Name: "dns", Port: 53, Protocol: "udp"}
)

func TestRoutes(t *testing.T) {
	tests := map[string]struct {
		units map[string]*deploy.Spec
		ins   []*store.Instance
		want  []Route
	}{
		"exact names before wildcards, each by name": {
			units: map[string]*deploy.Spec{
				"web": spec([]string{"www.a.com", "a.com"}, "", httpPort),
				"api": spec([]string{"*.a.com", "api.b.com"}, "", httpPort),
			},
			ins: []*store.Instance{inst("web", "w1", "10.0.0.2", httpPort), inst("web", "w0", "10.0.0.1", httpPort), inst("api", "a0", "10.0.0.3", httpPort)},
			want: []Route{
				{Domain: "a.com", Unit: "web", Endpoints: []string{"10.0.0.1:8080", "10.0.0.2:8080"}},
				{Domain: "api.b.com", Unit: "api", Endpoints: []string{"10.0.0.3:8080"}},
				{Domain: "www.a.com", Unit: "web", Endpoints: []string{"10.0.0.1:8080", "10.0.0.2:8080"}},
				{Domain: "*.a.com", Unit: "api", Endpoints: []string{"10.0.0.3:8080"}},
			},
		},
		"only the registry's instances; other units' and unknown units' ignored": {
			units: map[string]*deploy.Spec{"web": spec([]string{"a.com"}, "", httpPort), "db": spec(nil, "", httpPort)},
			ins:   []*store.Instance{inst("db", "d0", "10.0.0.9", httpPort), inst("gone", "g0", "10.0.0.8", httpPort)},
			want:  []Route{{Domain: "a.com", Unit: "web", Endpoints: []string{}}},
		},
		"domainsPort names the port": {
			units: map[string]*deploy.Spec{"web": spec([]string{"a.com"}, "web", httpPort, webPort)},
			ins:   []*store.Instance{inst("web", "w0", "10.0.0.1", httpPort, webPort)},
			want:  []Route{{Domain: "a.com", Unit: "web", Endpoints: []string{"10.0.0.1:3000"}}},
		},
		"the only tcp port": {
			units: map[string]*deploy.Spec{"web": spec([]string{"a.com"}, "", dnsPort, webPort)},
			ins:   []*store.Instance{inst("web", "w0", "10.0.0.1", dnsPort, webPort)},
			want:  []Route{{Domain: "a.com", Unit: "web", Endpoints: []string{"10.0.0.1:3000"}}},
		},
		"no port serves HTTP": {
			units: map[string]*deploy.Spec{"web": spec([]string{"a.com"}, "", webPort, adminPort)},
			ins:   []*store.Instance{inst("web", "w0", "10.0.0.1", webPort, adminPort)},
			want: []Route{{Domain: "a.com", Unit: "web", Endpoints: []string{},
				Note: "1 instance(s) without the HTTP port (ports: one named http, the only tcp port, or the one domainsPort names)"}},
		},
		"the port as each instance records it, once per address": {
			units: map[string]*deploy.Spec{"web": spec([]string{"a.com"}, "", deploy.Port{Name: "http", Port: 81})},
			ins: []*store.Instance{inst("web", "w0", "10.0.0.1", httpPort), inst("web", "w1", "10.0.0.1", httpPort),
				inst("web", "w2", "", httpPort), inst("web", "w3", "10.0.0.2", deploy.Port{Name: "http", Port: 81})},
			want: []Route{{Domain: "a.com", Unit: "web", Endpoints: []string{"10.0.0.1:8080", "10.0.0.2:81"}, Note: "1 instance(s) without a machine IP"}},
		},
		"a domain two units claim goes to the first by name": {
			units: map[string]*deploy.Spec{"b": spec([]string{"a.com"}, "", httpPort), "a": spec([]string{"a.com"}, "", httpPort)},
			ins:   []*store.Instance{inst("b", "b0", "10.0.0.2", httpPort), inst("a", "a0", "10.0.0.1", httpPort)},
			want:  []Route{{Domain: "a.com", Unit: "a", Endpoints: []string{"10.0.0.1:8080"}, Note: "also claimed by b, which gets none of its requests"}},
		},
		"nothing": {},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got := Routes(tt.units, tt.ins)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Routes:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// goldenCertDir is where the golden configurations' certificates are;
// TestGoldenConfigsValidate puts real ones in their place.
const goldenCertDir = "/etc/kaylee/certs"

func goldenOptions(certs ...string) Options {
	o := Options{Listen: ":80", TLSListen: ":443", AdminSocket: "/run/kaylee-router/caddy.sock"}
	for _, d := range certs {
		o.Certs = append(o.Certs, Cert{Domain: d, CertFile: goldenCertDir + "/" + CertBase(d) + ".crt", KeyFile: goldenCertDir + "/" + CertBase(d) + ".key"})
	}
	return o
}

var goldenCases = map[string]struct {
	units map[string]*deploy.Spec
	ins   []*store.Instance
	opts  Options
}{
	"empty": {opts: goldenOptions()},
	"two-units": {
		units: map[string]*deploy.Spec{
			"web":  spec([]string{"thetracktube.com", "www.thetracktube.com"}, "", httpPort, dnsPort),
			"help": spec([]string{"*.help.thetracktube.com", "help.thetracktube.com"}, "web", adminPort, webPort),
		},
		ins: []*store.Instance{
			inst("web", "k2:web:3cbb8d9a:1481d3:1", "192.0.2.2", httpPort, dnsPort),
			inst("web", "k2:web:3cbb8d9a:1481d3:0", "192.0.2.1", httpPort, dnsPort),
			inst("help", "k2:help:0a1b2c3d:77aa01:0", "192.0.2.3", adminPort, webPort),
		},
		opts: goldenOptions(),
	},
	"no-replica": {
		units: map[string]*deploy.Spec{"web": spec([]string{"a.example.com"}, "", httpPort)},
		opts:  goldenOptions(),
	},
	"tls": {
		units: map[string]*deploy.Spec{"web": spec([]string{"a.example.com", "*.a.example.com", "plain.example.com"}, "", httpPort)},
		ins:   []*store.Instance{inst("web", "k2:web:3cbb8d9a:1481d3:0", "192.0.2.1", httpPort)},
		opts:  goldenOptions("*.a.example.com", "a.example.com"),
	},
}

// The Caddy configuration is a pure function of units, registry and
// options, byte for byte (go test ./router -update rewrites the files).
func TestGoldenConfigs(t *testing.T) {
	for name, c := range goldenCases {
		t.Run(name, func(t *testing.T) {
			r, err := Compute(c.units, c.ins, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := Compute(c.units, c.ins, c.opts)
			if !bytes.Equal(r.Config, again.Config) {
				t.Fatal("two computations of one input differ")
			}
			golden := filepath.Join("testdata", name+".json")
			if *update {
				if err := os.WriteFile(golden, r.Config, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(r.Config, want) {
				t.Errorf("%s differs (go test ./router -update rewrites it):\n%s", golden, r.Config)
			}
		})
	}
}

// caddyPath is Debian's caddy; without it a test fails under CI=true and
// is skipped otherwise.
func caddyPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("caddy")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("caddy is not installed (apt-get install caddy): %v", err)
		}
		t.Skipf("caddy is not installed (apt-get install caddy): %v", err)
	}
	return p
}

// Caddy itself accepts every golden configuration: caddy validate loads
// and provisions it (unknown fields, bad durations, unreadable
// certificates are errors).
func TestGoldenConfigsValidate(t *testing.T) {
	caddy := caddyPath(t)
	certs := t.TempDir()
	for _, d := range []string{"a.example.com", "*.a.example.com"} {
		writeCert(t, certs, d)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) < len(goldenCases) {
		t.Fatalf("golden files: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			cfg := filepath.Join(t.TempDir(), "caddy.json")
			if err := os.WriteFile(cfg, bytes.ReplaceAll(b, []byte(goldenCertDir), []byte(certs)), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(caddy, "validate", "--config", cfg).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Valid configuration") {
				t.Fatalf("caddy validate %s: %v\n%s", f, err, out)
			}
		})
	}
}
