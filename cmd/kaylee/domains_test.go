package main

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// Issue 26: validate and render check domains across the files they read
// (a domain claimed by two units is an error on each, naming the other's
// file), validate's per-unit line shows a unit's domains and the port
// the router sends them to, and render says that they change no fleet
// unit.
func TestValidateAndRenderDomains(t *testing.T) {
	t.Parallel()
	shop := "name: shop\nengine: docker\napps:\n- image: shop\nports: [{name: web, port: 8080}, {name: metrics, port: 9090}]\ndomains: [shop.example.com, '*.help.example.com']\ndomainsPort: web\n"
	dir := writeFiles(t, map[string]string{
		"good/shop.yaml":  shop,
		"good/help.yaml":  "name: help\nengine: docker\napps:\n- image: help\nports: [{name: http, port: 80}]\ndomains: [a.help.example.com]\n",
		"clash/shop.yaml": shop,
		"clash/blog.yaml": "name: blog\nengine: docker\napps:\n- image: blog\nports: [{name: http, port: 80}]\ndomains:\n- blog.example.com\n- shop.example.com\n",
		"bad/shop.yaml":   "name: shop\nengine: docker\napps:\n- image: shop\nports: [{name: web, port: 8080}, {name: metrics, port: 9090}]\ndomains: [Shop.example.com]\n",
	})
	tests := []struct {
		args   []string
		code   int
		stdout string // exactly; "-" for anything
		stderr string // exactly
	}{
		{[]string{"validate", dir + "/good"}, 0,
			"help: engine docker (its own); domains a.help.example.com on port http (80)\n" +
				"shop: engine docker (its own); domains shop.example.com, *.help.example.com on port web (8080)\n", ""},
		{[]string{"validate", dir + "/clash"}, 1, "",
			`clash/blog.yaml:8: domains[1]: "shop.example.com" is also claimed by unit "shop" in clash/shop.yaml:6; a domain routes to one unit: remove it from one of the two` + "\n" +
				`clash/shop.yaml:6: domains[0]: "shop.example.com" is also claimed by unit "blog" in clash/blog.yaml:8; a domain routes to one unit: remove it from one of the two` + "\n"},
		{[]string{"validate", "--json", dir + "/clash"}, 1, "", "-"},
		{[]string{"validate", dir + "/bad"}, 1, "",
			`bad/shop.yaml:6: domains[0]: "Shop.example.com": use lowercase: shop.example.com` + "\n" +
				`bad/shop.yaml:6: domains: which port serves HTTP? The unit has several tcp ports (web, metrics) and none is named http: name one with domainsPort` + "\n"},
		{[]string{"render", dir + "/clash"}, 1, "", "-"},
		{[]string{"render", dir + "/good/shop.yaml"}, 0, "-",
			"good/shop.yaml: domains shop.example.com, *.help.example.com on port web (8080): for kaylee router, which sends them to the serving replicas; they change no fleet unit\n"},
	}
	for _, tt := range tests {
		r := kaylee(t, nil, tt.args...)
		out := strings.ReplaceAll(r.stdout, dir+"/", "")
		errb := strings.ReplaceAll(r.err, dir+"/", "")
		if r.code != tt.code || tt.stdout != "-" && out != tt.stdout || tt.stderr != "-" && errb != tt.stderr {
			t.Errorf("kaylee %s: exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(tt.args, " "), r.code, out, errb, tt.code, tt.stdout, tt.stderr)
		}
	}
	// The fleet units are those of the unit without domains.
	without := writeFiles(t, map[string]string{"shop.yaml": strings.Split(shop, "domains:")[0]})
	a, b := kaylee(t, nil, "render", dir+"/good/shop.yaml"), kaylee(t, nil, "render", without+"/shop.yaml")
	if a.stdout != b.stdout || a.code != 0 {
		t.Errorf("domains change the rendered fleet units:\n%s\n%s", a.stdout, b.stdout)
	}
}

// Issue 26: kaylee run does not give a unit a domain that another stored
// unit holds, made with kaylee run or owned by a git source (named with
// its file); units of one run may pass a domain between them. Nothing is
// stored when it refuses, --force or not.
func TestRunDomainClaims(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
	st := store.New(e.Client(t), store.DefaultPrefix)
	site := func(name string, domains ...string) string {
		return "name: " + name + "\nengine: docker\napps:\n- image: " + name + "\nports: [{name: http, port: 80}]\ndomains: [" + strings.Join(domains, ", ") + "]\n"
	}
	dir := writeFiles(t, map[string]string{
		"ops.yaml":   site("ops", "ops.example.com"),
		"web.yaml":   site("web", "www.example.com"),
		"shop.yaml":  site("shop", "shop.example.com", "ops.example.com"),
		"shop2.yaml": site("shop", "shop.example.com", "www.example.com"),
		"moved.yaml": site("ops", "ops2.example.com") + "---\n" + site("shop", "shop.example.com", "ops.example.com"),
	})
	for _, f := range []string{"ops.yaml", "web.yaml"} {
		if r := kaylee(t, env, "run", filepath.Join(dir, f)); r.code != 0 {
			t.Fatalf("run %s: %+v", f, r)
		}
	}
	if err := st.PutSyncRecord(context.Background(), &store.SyncRecord{Source: "team-b", URL: "https://git.example.com/b.git", Ref: "main",
		Revision: "3f2a9c1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", Inventory: map[string]string{"web": "units/web.yaml"}}, store.Fence{}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"run", filepath.Join(dir, "shop.yaml")}, 1, "",
			`kaylee: unit "shop" claims "ops.example.com", which unit "ops" holds (stored with kaylee run): a domain routes to one unit; remove it from one of the two; nothing was changed` + "\n"},
		{[]string{"run", "--force", filepath.Join(dir, "shop2.yaml")}, 1, "",
			`kaylee: unit "shop" claims "www.example.com", which unit "web" holds (units/web.yaml in git source "team-b" (https://git.example.com/b.git, main@3f2a9c1)): a domain routes to one unit; remove it from one of the two; nothing was changed` + "\n"},
		{[]string{"run", filepath.Join(dir, "moved.yaml")}, 0, "ops stored\nshop stored\n", ""},
	}
	for _, s := range steps {
		r := kaylee(t, env, s.args...)
		if r.code != s.code || r.stdout != s.out || r.err != s.err {
			t.Fatalf("kaylee %v: exit %d\nstdout %q\nstderr %q\nwant exit %d, stdout %q, stderr %q", s.args, r.code, r.stdout, r.err, s.code, s.out, s.err)
		}
	}
	shop, err := st.GetUnit(context.Background(), "shop")
	if err != nil || !slices.Equal(shop.Spec.Domains, []string{"shop.example.com", "ops.example.com"}) {
		t.Fatalf("stored shop: %v %v", shop, err)
	}
}
