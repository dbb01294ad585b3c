package deploy

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

// web is a unit with one http port, plus extra top-level lines.
func web(extra string) string {
	return unit("ports:\n- {name: http, port: 8080}\n" + extra)
}

func TestValidateDomainsAccepts(t *testing.T) {
	for name, in := range map[string]string{
		"two names":         web("domains: [thetracktube.com, www.thetracktube.com]\n"),
		"wildcard":          web("domains: ['*.help.thetracktube.com']\n"),
		"wildcard and name": web("domains: ['*.example.com', example.com]\n"),
		"digits and dashes": web("domains: [a-1.b2.example.com, xn--bcher-kva.de, 3com.com]\n"),
		"one label of 63":   web("domains: [" + strings.Repeat("a", 63) + ".com]\n"),
		"253 bytes":         web("domains: [" + strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("d", 61) + "]\n"),
		"domainsPort":       unit("ports:\n- {name: api, port: 8080}\n- {name: metrics, port: 9090}\ndomains: [api.example.com]\ndomainsPort: api\n"),
		"port named http among several": unit("ports:\n- {name: metrics, port: 9090}\n- {name: http, port: 8080}\n- {name: dns, port: 53, protocol: udp}\n" +
			"domains: [a.example.com]\n"),
		"the only tcp port":  unit("ports:\n- {name: web, port: 8080}\n- {name: dns, port: 53, protocol: udp}\ndomains: [a.example.com]\n"),
		"global":             web("global: true\ndomains: [a.example.com]\n"),
		"single instance":    web("domains: [a.example.com]\n"),
		"stateful":           web("replicas: 3\nstateful: true\ndomains: [db.example.com]\n"),
		"machineId":          web("machineId: abc123\ndomains: [a.example.com]\n"),
		"empty list":         unit("domains: []\n"),
		"in JSON":            `{"name":"api","apps":[{"image":"x"}],"ports":[{"name":"web","port":80}],"domains":["a.example.com"],"domainsPort":"web"}`,
		"ports without them": web(""),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Load("u.yaml", []byte(in)); err != nil {
				t.Fatalf("valid unit refused: %v", err)
			}
		})
	}
}

func TestValidateDomainsRefuses(t *testing.T) {
	long := strings.Repeat(strings.Repeat("a", 63)+".", 4) + "com" // 259 bytes
	tests := []struct {
		name string
		in   string
		want string // the whole FILE:LINE: FIELD: MESSAGE of one error
	}{
		{"upper case", web("domains: [Shop.Example.com]\n"),
			`u.yaml:6: domains[0]: "Shop.Example.com": use lowercase: shop.example.com`},
		{"scheme", web("domains: ['https://shop.example.com']\n"),
			`u.yaml:6: domains[0]: "https://shop.example.com": a host name only, without a scheme: shop.example.com`},
		{"port", web("domains: ['shop.example.com:8080']\n"),
			`u.yaml:6: domains[0]: "shop.example.com:8080": a host name only, without a port (the router listens on 80 and 443; domainsPort names the unit's port): shop.example.com`},
		{"path", web("domains: [shop.example.com/api]\n"),
			`u.yaml:6: domains[0]: "shop.example.com/api": a host name only, without a path: shop.example.com`},
		{"trailing dot", web("domains: [shop.example.com.]\n"),
			`u.yaml:6: domains[0]: "shop.example.com.": write it without the trailing dot: shop.example.com`},
		{"one label", web("domains: [localhost]\n"),
			`u.yaml:6: domains[0]: "localhost" has one label: a domain has at least two (example.com)`},
		{"empty", web("domains: ['']\n"),
			`u.yaml:6: domains[0]: required: a host name such as example.com or a wildcard such as *.example.com`},
		{"empty label", web("domains: [shop..example.com]\n"),
			`u.yaml:6: domains[0]: "shop..example.com" has an empty label (two dots in a row, or a leading dot)`},
		{"leading dot", web("domains: [.example.com]\n"),
			`u.yaml:6: domains[0]: ".example.com" has an empty label (two dots in a row, or a leading dot)`},
		{"label too long", web("domains: [" + strings.Repeat("a", 64) + ".com]\n"),
			`u.yaml:6: domains[0]: label "` + strings.Repeat("a", 64) + `" is 64 bytes; at most 63`},
		{"too long", web("domains: [" + long + "]\n"),
			`u.yaml:6: domains[0]: is 259 bytes; a domain is at most 253`},
		{"underscore", web("domains: [my_app.example.com]\n"),
			`u.yaml:6: domains[0]: label "my_app" may only hold a-z, 0-9 and -, not starting or ending with -`},
		{"dash at the start of a label", web("domains: [-a.example.com]\n"),
			`u.yaml:6: domains[0]: label "-a" may only hold a-z, 0-9 and -, not starting or ending with -`},
		{"dash at the end of a label", web("domains: [a-.example.com]\n"),
			`u.yaml:6: domains[0]: label "a-" may only hold a-z, 0-9 and -, not starting or ending with -`},
		{"unicode", web("domains: [bücher.de]\n"),
			`u.yaml:6: domains[0]: "bücher.de" is not ASCII: write an internationalized name in its punycode form (xn--…)`},
		{"IP address", web("domains: [10.0.0.1]\n"),
			`u.yaml:6: domains[0]: "10.0.0.1" is an IP address: domains are host names`},
		{"space", web("domains: ['a b.com']\n"),
			`u.yaml:6: domains[0]: label "a b" may only hold a-z, 0-9 and -, not starting or ending with -`},
		{"newline", web("domains: [\"a.com\\nX-Fleet=x\"]\n"),
			`u.yaml:6: domains[0]: label "com\nX-Fleet=x" may only hold a-z, 0-9 and -, not starting or ending with -`},
		{"wildcard inside a label", web("domains: ['a*.example.com']\n"),
			`u.yaml:6: domains[0]: "a*.example.com": a wildcard is a whole first label, *.example.com`},
		{"wildcard not first", web("domains: ['www.*.example.com']\n"),
			`u.yaml:6: domains[0]: "www.*.example.com": a wildcard is a whole first label, *.example.com`},
		{"wildcard of a top-level domain", web("domains: ['*.com']\n"),
			`u.yaml:6: domains[0]: "*.com": a wildcard needs at least two labels after *. (*.example.com)`},
		{"twice", web("domains: [a.example.com, b.example.com, a.example.com]\n"),
			`u.yaml:6: domains[2]: "a.example.com" is also domains[0]`},
		{"no ports", unit("domains: [a.example.com]\n"),
			`u.yaml:4: domains: the router needs a port to send them to: add ports: [{name: http, port: N}] (the port the unit serves HTTP on)`},
		{"only udp ports", unit("ports:\n- {name: http, port: 53, protocol: udp}\ndomains: [a.example.com]\n"),
			`u.yaml:6: domains: the router needs a port to send them to: add ports: [{name: http, port: N}] (the port the unit serves HTTP on)`},
		{"several tcp ports, none http", unit("ports:\n- {name: api, port: 8080}\n- {name: metrics, port: 9090}\ndomains: [a.example.com]\n"),
			`u.yaml:7: domains: which port serves HTTP? The unit has several tcp ports (api, metrics) and none is named http: name one with domainsPort`},
		{"domainsPort not a port", web("domains: [a.example.com]\ndomainsPort: htp\n"),
			`u.yaml:7: domainsPort: "htp" is not an entry of ports (did you mean "http"?)`},
		{"domainsPort of no port", unit("domains: [a.example.com]\ndomainsPort: http\n"),
			`u.yaml:5: domainsPort: "http" is not an entry of ports (the unit has none)`},
		{"domainsPort udp", unit("ports:\n- {name: http, port: 8080}\n- {name: dns, port: 53, protocol: udp}\ndomains: [a.example.com]\ndomainsPort: dns\n"),
			`u.yaml:8: domainsPort: "dns" is a udp port: the router speaks HTTP over tcp`},
		{"domainsPort without domains", web("domainsPort: http\n"),
			`u.yaml:6: domainsPort: has no effect without domains: remove it`},
		{"domains not a list", web("domains: a.example.com\n"),
			`u.yaml:6: domains: expected a list, got "a.example.com"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("u.yaml", []byte(tt.in))
			var got []string
			for _, fe := range FieldErrors(err) {
				got = append(got, fe.Error())
			}
			if len(got) != 1 || got[0] != tt.want {
				t.Fatalf("errors:\n%s\nwant only:\n%s", strings.Join(got, "\n"), tt.want)
			}
		})
	}
}

func TestHTTPPort(t *testing.T) {
	http, api, metrics := Port{Name: "http", Port: 8080}, Port{Name: "api", Port: 8081}, Port{Name: "metrics", Port: 9090}
	dns := Port{Name: "dns", Port: 53, Protocol: "udp"}
	udpHTTP := Port{Name: "http", Port: 80, Protocol: "udp"}
	for _, tt := range []struct {
		name  string
		ports []Port
		named string
		want  Port
		ok    bool
	}{
		{"none", nil, "", Port{}, false},
		{"named by domainsPort", []Port{http, api}, "api", api, true},
		{"the port named http", []Port{metrics, http, api}, "", http, true},
		{"the only tcp port", []Port{dns, api}, "", api, true},
		{"several tcp ports", []Port{api, metrics}, "", Port{}, false},
		{"only udp", []Port{dns}, "", Port{}, false},
		{"http on udp is not http", []Port{udpHTTP, api}, "", api, true},
		{"domainsPort of no port", []Port{http}, "web", Port{}, false},
		{"domainsPort on udp", []Port{http, dns}, "dns", Port{}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &Spec{Name: "a", Ports: tt.ports, DomainsPort: tt.named}
			got, ok := s.HTTPPort()
			if got != tt.want || ok != tt.ok {
				t.Fatalf("HTTPPort() = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestDomainClashes: a domain two units claim is an error on each, naming
// the other's file and line; a wildcard and a name it covers are not.
func TestDomainClashes(t *testing.T) {
	load := func(file, in string) []*Document {
		docs, err := Load(file, []byte(in))
		if err != nil {
			t.Fatal(err)
		}
		return docs
	}
	var docs []*Document
	docs = append(docs, load("units/shop.yaml", "name: shop\napps: [{image: x}]\nports: [{name: http, port: 80}]\ndomains: [shop.example.com, '*.help.example.com', www.example.com]\n")...)
	docs = append(docs, load("units/help.yaml", "name: help\napps: [{image: x}]\nports: [{name: http, port: 80}]\ndomains: [a.help.example.com]\n---\nname: www\napps: [{image: x}]\nports: [{name: http, port: 80}]\ndomains:\n- example.com\n- www.example.com\n")...)
	docs = append(docs, load("units/cms.yaml", "name: cms\napps: [{image: x}]\nports: [{name: http, port: 80}]\ndomains: ['*.help.example.com']\n")...)
	// The same unit defined twice is sync's error (a name defined once),
	// not a clash of domains.
	docs = append(docs, load("units/shop2.yaml", "name: shop\napps: [{image: x}]\nports: [{name: http, port: 80}]\ndomains: [shop.example.com]\n")...)
	clashes := DomainClashes(docs)
	var got []string
	for _, d := range docs {
		for _, fe := range FieldErrors(clashes[d]) {
			got = append(got, fe.Error())
		}
	}
	want := []string{
		`units/shop.yaml:4: domains[1]: "*.help.example.com" is also claimed by unit "cms" in units/cms.yaml:4; a domain routes to one unit: remove it from one of the two`,
		`units/shop.yaml:4: domains[2]: "www.example.com" is also claimed by unit "www" in units/help.yaml:11; a domain routes to one unit: remove it from one of the two`,
		`units/help.yaml:11: domains[1]: "www.example.com" is also claimed by unit "shop" in units/shop.yaml:4; a domain routes to one unit: remove it from one of the two`,
		`units/cms.yaml:4: domains[0]: "*.help.example.com" is also claimed by unit "shop" in units/shop.yaml:4; a domain routes to one unit: remove it from one of the two`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("clashes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if clashes[docs[1]] != nil {
		t.Errorf("a.help.example.com, covered by a wildcard of another unit, clashes: %v", clashes[docs[1]])
	}
}

// TestDomainsRollNothing: domains and domainsPort are out of the spec
// hash, so changing them renders the same fleet units; the field diff
// (sync's and history's) shows them.
func TestDomainsRollNothing(t *testing.T) {
	before := &Spec{Name: "web", Replicas: 2, Apps: []App{{Image: "x"}}, Ports: []Port{{Name: "http", Port: 80}, {Name: "admin", Port: 81}}}
	after := *before
	after.Domains, after.DomainsPort = []string{"shop.example.com", "*.help.example.com"}, "admin"
	for _, s := range []*Spec{before, &after} {
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	if a, b := before.Hash(0), after.Hash(0); a != b {
		t.Errorf("domains changed the spec hash: %s → %s", a, b)
	}
	ra, _ := Render(before, RenderOptions{})
	rb, _ := Render(&after, RenderOptions{})
	if unitText(ra) != unitText(rb) {
		t.Errorf("domains changed the fleet units:\n%s\n%s", unitText(ra), unitText(rb))
	}
	changes, _ := ChangedFields(before.CanonicalJSON(), after.CanonicalJSON())
	var got []string
	for _, c := range changes {
		got = append(got, c.Field+": "+string(c.Before)+" → "+string(c.After))
	}
	want := `domains:  → ["shop.example.com","*.help.example.com"]` + "\n" + `domainsPort:  → "admin"`
	if strings.Join(got, "\n") != want {
		t.Errorf("field changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}
}

// TestDomainsCanonicalJSON: domains and domainsPort come after every
// older field, so a unit without them keeps its JSON (the seed's countly
// among them), and a unit with them is stored as testdata shows, and
// reads back to itself.
func TestDomainsCanonicalJSON(t *testing.T) {
	yml, err := os.ReadFile("testdata/domains.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/domains.json")
	if err != nil {
		t.Fatal(err)
	}
	want = bytes.TrimSpace(want)
	docs, err := Load("domains.yaml", yml)
	if err != nil {
		t.Fatal(err)
	}
	if got := docs[0].Spec.CanonicalJSON(); !bytes.Equal(got, want) {
		t.Fatalf("canonical JSON\n got: %s\nwant: %s", got, want)
	}
	d, err := DecodeJSON("/kaylee2/units/shop", want)
	if err != nil || d.Validate() != nil {
		t.Fatalf("stored JSON does not read back: %v", errors.Join(err, d.Validate()))
	}
	if got := d.Spec.CanonicalJSON(); !bytes.Equal(got, want) {
		t.Fatalf("JSON round trip changed the unit\n got: %s\nwant: %s", got, want)
	}
}
