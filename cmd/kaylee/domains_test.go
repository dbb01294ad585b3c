package main

import (
	"strings"
	"testing"
)

// Issue 26: validate and render check domains across the files they read
// (a domain claimed by two units is an error on each, naming the other's
// file), validate's per-unit line shows a unit's domains and the port
// the router sends them to, and render says that they change no fleet
// unit.
func TestValidateAndRenderDomains(t *testing.T) {
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
