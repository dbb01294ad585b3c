package deploy

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
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
			name: "a file that is not a unit file is not repeated",
			in:   "root:$6$S3CR3T:19000:0:99999:7:::\n",
			want: []string{`u.yaml:1: a key that is not a field name (32 bytes): is this a unit file?`},
		},
		{
			name: "nor a line of text",
			in:   "root:$6$S3CR3T:19000:0:99999:7\n",
			want: []string{`u.yaml:1: expected a mapping of fields, got a line of text (30 bytes)`},
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

func TestDecodeHealthErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"typo", "name: a\napps: [{image: x}]\nhealth:\n  tcp: {port: 1}\n  intervall: 5s\n",
			`u.yaml:5: unknown field "intervall" (did you mean "interval"?)`},
		{"case", "name: a\napps: [{image: x}]\nhealth:\n  tcp: {port: 1}\n  startperiod: 5s\n",
			`u.yaml:5: unknown field "startperiod" (did you mean "startPeriod"?)`},
		{"typo in check", "name: a\napps: [{image: x}]\nhealth:\n  http:\n    port: 80\n    pth: /x\n",
			`u.yaml:6: unknown field "pth" (did you mean "path"?)`},
		{"port one level too high", "name: a\napps: [{image: x}]\nhealth:\n  port: 8080\n",
			`u.yaml:4: unknown field "port" (it is a field of the check: health.http.port or health.tcp.port)`},
		{"path one level too high", "name: a\napps: [{image: x}]\nhealth:\n  http: {port: 80}\n  path: /x\n",
			`u.yaml:5: unknown field "path" (it is a field of the check: health.http.path)`},
		{"far from any", "name: a\napps: [{image: x}]\nhealth:\n  command: [/bin/true]\n",
			`u.yaml:4: unknown field "command" (known fields: exec, failures, http, interval, startPeriod, tcp, timeout)`},
		{"tcp has no path", "name: a\napps: [{image: x}]\nhealth:\n  tcp: {port: 1, path: /}\n",
			`u.yaml:4: unknown field "path" (known fields: port)`},
		{"health at app level", "name: a\napps:\n- image: x\n  health: {tcp: {port: 1}}\n",
			`u.yaml:4: unknown field "health"`},
		{"health a list", "name: a\napps: [{image: x}]\nhealth: [http]\n",
			`u.yaml:3: health: expected a mapping of fields, got a list`},
		{"check a number", "name: a\napps: [{image: x}]\nhealth:\n  http: 8080\n",
			`u.yaml:4: health.http: expected a mapping of fields, got the number 8080`},
		{"port a string", "name: a\napps: [{image: x}]\nhealth:\n  tcp: {port: '80'}\n",
			`u.yaml:4: health.tcp.port: expected a whole number, got "80"`},
		{"exec a string", "name: a\napps: [{image: x}]\nhealth:\n  exec: /bin/check --quick\n",
			`u.yaml:4: health.exec: expected a list, got "/bin/check --quick"`},
		{"failures a string", "name: a\napps: [{image: x}]\nhealth:\n  tcp: {port: 1}\n  failures: three\n",
			`u.yaml:5: health.failures: expected a whole number, got "three"`},
		{"field twice", "name: a\napps: [{image: x}]\nhealth:\n  tcp: {port: 1}\n  tcp: {port: 2}\n",
			`u.yaml:5: health.tcp: field given twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("u.yaml", []byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	// JSON stored by hand gets the same hint, as a warning (see
	// TestDecodeJSONIgnoresUnknownFields).
	d, err := DecodeJSON("/kaylee2/units/a", []byte(`{"name":"a","apps":[{"image":"x"}],"health":{"tcp":{"port":1},"retries":3}}`))
	if want := `/kaylee2/units/a:1: health: unknown field "retries" (known fields: exec, failures, http, interval, startPeriod, tcp, timeout)`; err != nil || len(d.Ignored) != 1 || d.Ignored[0].Error() != want {
		t.Fatalf("got %v and ignored %v, want ignored %s", err, d.Ignored, want)
	}
}

func TestHealthCanonicalJSON(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"none", "name: a\napps: [{image: i}]\nconflicts: [b]\n",
			`{"name":"a","apps":[{"image":"i"}],"conflicts":["b"]}`},
		{"null", "name: a\napps: [{image: i}]\nhealth:\n",
			`{"name":"a","apps":[{"image":"i"}]}`},
		// last, after conflicts; its own fields in struct order whatever
		// the file's order; durations kept as written
		{"http", "health:\n  failures: 2\n  startPeriod: 1m30s\n  timeout: 1500ms\n  interval: 2s\n  http:\n    path: /h?a=1&b=2\n    port: 80\nconflicts: [b]\nname: a\napps: [{image: i}]\n",
			`{"name":"a","apps":[{"image":"i"}],"conflicts":["b"],"health":{"http":{"port":80,"path":"/h?a=1&b=2"},"interval":"2s","timeout":"1500ms","startPeriod":"1m30s","failures":2}}`},
		{"http default path", "name: a\napps: [{image: i}]\nhealth: {http: {port: 80}}\n",
			`{"name":"a","apps":[{"image":"i"}],"health":{"http":{"port":80}}}`},
		{"tcp", "name: a\napps: [{image: i}]\nhealth: {tcp: {port: 5432}, failures: 0}\n",
			`{"name":"a","apps":[{"image":"i"}],"health":{"tcp":{"port":5432}}}`},
		{"exec", "name: a\napps: [{image: i}]\nhealth: {exec: [/bin/check, -q], interval: 5s}\n",
			`{"name":"a","apps":[{"image":"i"}],"health":{"exec":["/bin/check","-q"],"interval":"5s"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
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
			if err := back.Spec.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := string(back.Spec.CanonicalJSON()); got != tt.want {
				t.Errorf("JSON round trip\n got %s\nwant %s", got, tt.want)
			}
			if back.Spec.Hash(0) != docs[0].Spec.Hash(0) {
				t.Error("round trip changed the spec hash")
			}
		})
	}
}

func TestHealthDefaults(t *testing.T) {
	h := &Health{TCP: &TCPCheck{Port: 1}}
	if h.IntervalDuration() != 5*time.Second || h.TimeoutDuration() != 2*time.Second ||
		h.StartPeriodDuration() != time.Minute || h.FailureThreshold() != 3 || h.Kind() != HealthTCP {
		t.Fatalf("defaults: %v %v %v %v %q", h.IntervalDuration(), h.TimeoutDuration(), h.StartPeriodDuration(), h.FailureThreshold(), h.Kind())
	}
	h = &Health{HTTP: &HTTPCheck{Port: 1}, Interval: "1m30s", Timeout: "250ms", StartPeriod: "1h", Failures: 7}
	if h.IntervalDuration() != 90*time.Second || h.TimeoutDuration() != 250*time.Millisecond ||
		h.StartPeriodDuration() != time.Hour || h.FailureThreshold() != 7 || h.Kind() != HealthHTTP || h.HTTP.RequestPath() != "/" {
		t.Fatalf("set: %v %v %v %v %q %q", h.IntervalDuration(), h.TimeoutDuration(), h.StartPeriodDuration(), h.FailureThreshold(), h.Kind(), h.HTTP.RequestPath())
	}
	if k := (&Health{HTTP: &HTTPCheck{}, Exec: []string{"/x"}}).Kind(); k != "" {
		t.Fatalf("two checks: kind %q", k)
	}
	if k := (&Health{Exec: []string{"/x"}}).Kind(); k != HealthExec {
		t.Fatalf("exec: kind %q", k)
	}
}
