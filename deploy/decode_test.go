package deploy

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestCountlyMatchesSeedJSON(t *testing.T) {
	yml, err := os.ReadFile("testdata/countly.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/countly.json")
	if err != nil {
		t.Fatal(err)
	}
	want = bytes.TrimSpace(want)
	docs, err := Load("countly.yaml", yml)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(docs) != 1 {
		t.Fatalf("got %d documents, want 1", len(docs))
	}
	if got := docs[0].Spec.CanonicalJSON(); !bytes.Equal(got, want) {
		t.Fatalf("canonical JSON differs from the seed\n got: %s\nwant: %s", got, want)
	}
	// The seed's JSON, put in etcd by hand, decodes to the same unit.
	d, err := DecodeJSON("/kaylee2/units/countly", want)
	if err != nil {
		t.Fatalf("DecodeJSON: %v", err)
	}
	if got := d.Spec.CanonicalJSON(); !bytes.Equal(got, want) {
		t.Fatalf("JSON round trip changed the unit\n got: %s\nwant: %s", got, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // each must appear in the joined error text
	}{
		{
			name: "typo with suggestion and line",
			in:   "name: api\nreplcas: 2\napps:\n- image: x\n",
			want: []string{`u.yaml:2: unknown field "replcas" (did you mean "replicas"?)`},
		},
		{
			name: "typo in nested app",
			in:   "name: api\napps:\n- image: x\n  agrs: [a]\n",
			want: []string{`u.yaml:4: unknown field "agrs" (did you mean "args"?)`},
		},
		{
			name: "unknown field far from any lists known ones",
			in:   "name: api\nzzzzzzzzzz: 1\napps:\n- image: x\n",
			want: []string{`u.yaml:2: unknown field "zzzzzzzzzz" (known fields: apps, args,`},
		},
		{
			name: "every problem reported, not only the first",
			in:   "name: api\nreplcas: 2\nglobl: true\napps:\n- image: x\n",
			want: []string{`u.yaml:2: unknown field "replcas"`, `u.yaml:3: unknown field "globl"`},
		},
		{
			name: "replicas not a number",
			in:   "name: api\nreplicas: four\napps:\n- image: x\n",
			want: []string{`u.yaml:2: replicas: expected a whole number, got "four"`},
		},
		{
			name: "replicas as quoted string",
			in:   "name: api\nreplicas: \"4\"\napps:\n- image: x\n",
			want: []string{`u.yaml:2: replicas: expected a whole number, got "4"`},
		},
		{
			name: "global yes is not a boolean",
			in:   "name: api\nglobal: yes\napps:\n- image: x\n",
			want: []string{`u.yaml:2: global: expected true or false, got "yes"`},
		},
		{
			name: "args as a string",
			in:   "name: api\nargs: --dns=1.1.1.1\napps:\n- image: x\n",
			want: []string{`u.yaml:2: args: expected a list, got "--dns=1.1.1.1"`},
		},
		{
			name: "env as a mapping",
			in:   "name: api\nenv:\n  A: b\napps:\n- image: x\n",
			want: []string{`u.yaml:3: env: expected a list, got a mapping`},
		},
		{
			name: "field given twice",
			in:   "name: api\nname: web\napps:\n- image: x\n",
			want: []string{`u.yaml:2: name: field given twice`},
		},
		{
			name: "syntax error",
			in:   "name: api\napps: [\n",
			want: []string{`u.yaml:`, `invalid YAML`},
		},
		{
			name: "empty file",
			in:   "# nothing here\n",
			want: []string{`u.yaml:1: no unit in file`},
		},
		{
			name: "document is a list",
			in:   "- name: api\n",
			want: []string{`u.yaml:1: expected a mapping of fields, got a list`},
		},
		{
			name: "legacy typo",
			in:   "name: api\nspec:\n  imgae: mongo\n",
			want: []string{`u.yaml:3: unknown field "imgae" (did you mean "image"?)`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("u.yaml", []byte(tt.in))
			if err == nil {
				t.Fatal("Load accepted bad input")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestMultiDocumentFileKeepsGoodUnits(t *testing.T) {
	in := "name: a\napps:\n- image: x\n---\nname: b\nreplcas: 2\napps:\n- image: x\n---\nname: c\napps:\n- image: y\n---\n"
	docs, err := Load("multi.yaml", []byte(in))
	if err == nil || !strings.Contains(err.Error(), `multi.yaml:6: unknown field "replcas"`) {
		t.Fatalf("want the error of document 2 with its line, got %v", err)
	}
	if len(docs) != 3 {
		t.Fatalf("got %d documents, want 3", len(docs))
	}
	var good, bad []string
	for _, d := range docs {
		if d.Err == nil {
			good = append(good, d.Spec.Name)
		} else {
			bad = append(bad, d.Spec.Name)
		}
	}
	if strings.Join(good, ",") != "a,c" || strings.Join(bad, ",") != "b" {
		t.Fatalf("good=%v bad=%v; want good=[a c] bad=[b] (a broken unit keeps its name)", good, bad)
	}
	if docs[2].Line != 10 {
		t.Errorf("document 3 starts at line %d, want 10", docs[2].Line)
	}
}

func TestLegacyFormatConverts(t *testing.T) {
	in := `name: countly
spec:
  replicas: 4
  maxReplicasPerHost: 2
  image: monder/countly-docker:latest
  cmd: --quiet
  env:
  - name: MONGO_URL
    value: mongodb://mongo-1.k.lan/countly
  volumes:
  - id: vol-88bc607a
    driver: blocker
    path: /data
    options: a=1
  machine:
  - 'ssd=false'
  dockerArgs:
  - '--security-opt=label:disable'
`
	docs, err := Load("old.yaml", []byte(in))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := `{"name":"countly","replicas":4,"maxReplicasPerHost":2,"engine":"docker","env":[{"name":"MONGO_URL","value":"mongodb://mongo-1.k.lan/countly"}],"volumes":[{"id":"vol-88bc607a","driver":"blocker","path":"/data","options":"a=1"}],"apps":[{"image":"monder/countly-docker:latest","cmd":"--quiet"}],"args":["--security-opt=label:disable"],"machine":["ssd=false"]}`
	if got := string(docs[0].Spec.CanonicalJSON()); got != want {
		t.Fatalf("converted\n got: %s\nwant: %s", got, want)
	}
	if !docs[0].Legacy {
		t.Error("Legacy not set")
	}
	// A validation error in a legacy file points at the legacy line.
	_, err = Load("old.yaml", []byte("name: x\nspec:\n  image: 'a b'\n"))
	if err == nil || !strings.Contains(err.Error(), "old.yaml:3: apps[0].image:") {
		t.Fatalf("want error at line 3, got %v", err)
	}
}

func TestDecodeJSONStrict(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"unknown field", `{"name":"a","replcas":2,"apps":[{"image":"x"}]}`, `unknown field "replcas" (did you mean "replicas"?)`},
		{"not JSON", `name: a`, `invalid JSON`},
		{"array", `[{"name":"a"}]`, `expected a JSON object`},
		{"wrong type", `{"name":"a","replicas":"2","apps":[{"image":"x"}]}`, `replicas: expected a whole number`},
		{"float replicas", `{"name":"a","replicas":2.5,"apps":[{"image":"x"}]}`, `replicas: expected a whole number, got the number 2.5`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeJSON("/kaylee2/units/a", []byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "/kaylee2/units/a") {
				t.Errorf("error does not name the key: %v", err)
			}
		})
	}
}

func TestPullCanonicalJSON(t *testing.T) {
	tests := []struct{ in, want string }{
		// after args, as the seed orders app fields; left out when empty
		{"name: a\napps:\n- pull: never\n  args: [x]\n  cmd: /c\n  image: i\n", `{"name":"a","apps":[{"image":"i","cmd":"/c","args":["x"],"pull":"never"}]}`},
		{"name: a\napps:\n- image: i\n  pull: ''\n", `{"name":"a","apps":[{"image":"i"}]}`},
		// an explicit default is kept as written, like engine: rkt
		{"name: a\napps:\n- image: i\n  pull: missing\n", `{"name":"a","apps":[{"image":"i","pull":"missing"}]}`},
	}
	for _, tt := range tests {
		docs, err := Load("u.yaml", []byte(tt.in))
		if err != nil {
			t.Fatal(err)
		}
		if got := string(docs[0].Spec.CanonicalJSON()); got != tt.want {
			t.Errorf("canonical JSON\n got %s\nwant %s", got, tt.want)
		}
		back, err := DecodeJSON("k", []byte(tt.want))
		if err != nil {
			t.Fatal(err)
		}
		if got := string(back.Spec.CanonicalJSON()); got != tt.want {
			t.Errorf("JSON round trip\n got %s\nwant %s", got, tt.want)
		}
	}
}
