package console

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// routesWorld is a console on an embedded etcd with no scheduler: the
// units and the instance registry are what the test writes through the
// store (a scheduler would rewrite the registry).
type routesWorld struct {
	t     *testing.T
	store *store.Store
	srv   *httptest.Server
}

func newRoutesWorld(t *testing.T) *routesWorld {
	t.Helper()
	s := store.New(etcdtest.New(t).Client(t), store.DefaultPrefix)
	mux := http.NewServeMux()
	New(Config{Store: s}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &routesWorld{t: t, store: s, srv: srv}
}

// unit stores a unit with the domains, its HTTP port named http.
func (w *routesWorld) unit(name string, port int, domains ...string) {
	w.t.Helper()
	sp := &deploy.Spec{Name: name, Replicas: 2, Apps: []deploy.App{{Image: "docker://" + name}}, Domains: domains}
	if port > 0 {
		sp.Ports = []deploy.Port{{Name: "http", Port: port}}
	}
	if _, err := w.store.PutUnit(context.Background(), sp, store.Fence{}); err != nil {
		w.t.Fatal(err)
	}
}

// instance is replica i of unit on a machine at ip, serving port.
func instance(unit string, i int, ip string, port int) *store.Instance {
	return &store.Instance{Unit: unit, Instance: "k2:" + unit + ":3cbb8d9a:1481d3:" + strconv.Itoa(i), MachineIP: ip,
		State: "active/running", SpecHash: "3cbb8d9a", Ports: []deploy.Port{{Name: "http", Port: port}}}
}

// registry puts and deletes instances of the registry, as the
// scheduler's leader does.
func (w *routesWorld) registry(puts []*store.Instance, deletes ...*store.Instance) {
	w.t.Helper()
	var keys []string
	for _, d := range deletes {
		keys = append(keys, d.Key())
	}
	if err := w.store.ApplyInstances(context.Background(), puts, keys, store.Fence{}); err != nil {
		w.t.Fatal(err)
	}
}

// body GETs path and returns the status and the body.
func (w *routesWorld) body(path string) (int, string) {
	w.t.Helper()
	r, err := http.Get(w.srv.URL + path)
	if err != nil {
		w.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b)
}

// GET /api/v1/routes is what kaylee routes -o json lists (the router's
// own function computes both), with noReplica, the router's answer, for a
// domain none of whose unit's replicas serves; the state the dashboard
// streams has the same routes.
func TestRoutesAPI(t *testing.T) {
	w := newRoutesWorld(t)
	if code, b := w.body("/api/v1/routes"); code != http.StatusOK || b != "[]\n" {
		t.Fatalf("GET routes of no unit: %d %s, want 200 []", code, b)
	}
	w.unit("web", 8080, "a.test", "www.a.test")
	w.unit("api", 9000, "*.a.test")
	w.unit("plain", 0)
	web0, web1 := instance("web", 0, "192.0.2.2", 8080), instance("web", 1, "192.0.2.1", 8080)
	w.registry([]*store.Instance{web0, web1, instance("plain", 0, "192.0.2.3", 80)})

	tests := []struct {
		name    string
		change  func()
		want    string
		inState string // the state's routes, as JSON without indentation
	}{
		{
			name:   "web served by two replicas, api by none",
			change: func() {},
			want: `[
  {
    "domain": "a.test",
    "unit": "web",
    "endpoints": [
      "192.0.2.1:8080",
      "192.0.2.2:8080"
    ]
  },
  {
    "domain": "www.a.test",
    "unit": "web",
    "endpoints": [
      "192.0.2.1:8080",
      "192.0.2.2:8080"
    ]
  },
  {
    "domain": "*.a.test",
    "unit": "api",
    "endpoints": [],
    "noReplica": "no replica of unit api serves"
  }
]
`,
			inState: `"routes":[{"domain":"a.test","unit":"web","endpoints":["192.0.2.1:8080","192.0.2.2:8080"]},` +
				`{"domain":"www.a.test","unit":"web","endpoints":["192.0.2.1:8080","192.0.2.2:8080"]},` +
				`{"domain":"*.a.test","unit":"api","endpoints":[],"noReplica":"no replica of unit api serves"}]`,
		},
		{
			name:   "a replica of web leaves the registry, an api replica without its address enters it",
			change: func() { w.registry([]*store.Instance{instance("api", 0, "", 9000)}, web1) },
			want: `[
  {
    "domain": "a.test",
    "unit": "web",
    "endpoints": [
      "192.0.2.2:8080"
    ]
  },
  {
    "domain": "www.a.test",
    "unit": "web",
    "endpoints": [
      "192.0.2.2:8080"
    ]
  },
  {
    "domain": "*.a.test",
    "unit": "api",
    "endpoints": [],
    "note": "1 instance(s) without a machine IP",
    "noReplica": "no replica of unit api serves"
  }
]
`,
			inState: `"routes":[{"domain":"a.test","unit":"web","endpoints":["192.0.2.2:8080"]},` +
				`{"domain":"www.a.test","unit":"web","endpoints":["192.0.2.2:8080"]},` +
				`{"domain":"*.a.test","unit":"api","endpoints":[],"note":"1 instance(s) without a machine IP","noReplica":"no replica of unit api serves"}]`,
		},
		{
			name:   "the last replica of web leaves",
			change: func() { w.registry(nil, web0) },
			want: `[
  {
    "domain": "a.test",
    "unit": "web",
    "endpoints": [],
    "noReplica": "no replica of unit web serves"
  },
  {
    "domain": "www.a.test",
    "unit": "web",
    "endpoints": [],
    "noReplica": "no replica of unit web serves"
  },
  {
    "domain": "*.a.test",
    "unit": "api",
    "endpoints": [],
    "note": "1 instance(s) without a machine IP",
    "noReplica": "no replica of unit api serves"
  }
]
`,
			inState: `"routes":[{"domain":"a.test","unit":"web","endpoints":[],"noReplica":"no replica of unit web serves"},` +
				`{"domain":"www.a.test","unit":"web","endpoints":[],"noReplica":"no replica of unit web serves"},` +
				`{"domain":"*.a.test","unit":"api","endpoints":[],"note":"1 instance(s) without a machine IP","noReplica":"no replica of unit api serves"}]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.change()
			code, b := w.body("/api/v1/routes")
			if code != http.StatusOK || b != tt.want {
				t.Errorf("GET /api/v1/routes: %d\n got:\n%s\nwant:\n%s", code, b, tt.want)
			}
			code, b = w.body("/api/v1/state")
			if st := compact(t, b); code != http.StatusOK || !strings.Contains(st, tt.inState) {
				t.Errorf("GET /api/v1/state: %d\n got:\n%s\nwant its routes:\n%s", code, st, tt.inState)
			}
		})
	}
	if _, b := w.body("/api/v1/"); !strings.Contains(b, "GET  /api/v1/routes ") {
		t.Errorf("GET /api/v1/ does not list the routes:\n%s", b)
	}
}

// compact is the JSON b without its indentation.
func compact(t *testing.T, b string) string {
	t.Helper()
	var out bytes.Buffer
	if err := json.Compact(&out, []byte(b)); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return out.String()
}
