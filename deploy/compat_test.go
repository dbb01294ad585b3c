package deploy

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// envAssignment undoes systemd's reading of a quoted Environment= value
// (systemd 252, config_parse_environ: specifiers, then one word unquoted
// with C escapes; $ is not special). It fails on what quoteEnv must not
// produce: a lone %, an unknown escape, text outside the quotes.
func envAssignment(t testing.TB, value string) string {
	t.Helper()
	v := strings.ReplaceAll(value, "%%", "\x00")
	if strings.Contains(v, "%") {
		t.Fatalf("lone %% in %s", value)
	}
	v = strings.ReplaceAll(v, "\x00", "%")
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		t.Fatalf("Environment=%s is not one quoted word", value)
	}
	var b strings.Builder
	in := v[1 : len(v)-1]
	for i := 0; i < len(in); i++ {
		c := in[i]
		switch c {
		case '"':
			t.Fatalf("unescaped quote at byte %d of %s", i, value)
		case '\\':
			i++
			esc, ok := map[byte]byte{'n': '\n', 'r': '\r', 't': '\t', '\\': '\\', '"': '"'}[in[i]]
			if !ok {
				t.Fatalf("unexpected escape \\%c in %s", in[i], value)
			}
			c = esc
		}
		b.WriteByte(c)
	}
	return b.String()
}

// TestRenderEnvValueWithNewlines: an env value with newlines (a PEM key)
// renders as one Environment= line that systemd reads back to exactly the
// value, for both engines; the engines take it from the unit's environment
// (rkt --inherit-env, docker -e NAME), never from the Exec line.
func TestRenderEnvValueWithNewlines(t *testing.T) {
	pem := "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEA\r\n\tq7BFUpkGp3+M\\n\"x\" 100% $HOME\n-----END PRIVATE KEY-----\n"
	tests := []struct {
		engine, line string // line: how the engine gets the variable
	}{
		{EngineRkt, "--inherit-env"},
		{EngineDocker, "-e TLS_KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.engine, func(t *testing.T) {
			s := &Spec{Name: "api", Engine: tt.engine, Env: []EnvVar{{Name: "TLS_KEY", Value: pem}}, Apps: []App{{Image: "x"}}}
			if err := s.Validate(); err != nil {
				t.Fatalf("a multi-line env value is refused: %v", err)
			}
			units, err := Render(s, RenderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			env := options(units[0], "Service", "Environment")
			if len(env) != 2 {
				t.Fatalf("Environment lines %q", env)
			}
			if strings.ContainsAny(env[1], "\n\r\t") {
				t.Fatalf("Environment=%q holds a raw line break or tab", env[1])
			}
			if got := envAssignment(t, env[1]); got != "TLS_KEY="+pem {
				t.Errorf("systemd reads Environment=%s as %q, want TLS_KEY=%q", env[1], got, pem)
			}
			start := options(units[0], "Service", "ExecStart")[0]
			if !strings.Contains(start, tt.line) || strings.Contains(start, "BEGIN") {
				t.Errorf("ExecStart must pass the variable by %s, not its value: %s", tt.line, start)
			}
		})
	}
}

// TestEnvValueTooLongNamesEnvFiles: an env value too long for fleet's line
// limit is refused with the way out (envFiles).
func TestEnvValueTooLongNamesEnvFiles(t *testing.T) {
	s := &Spec{Name: "api", Engine: EngineDocker, Env: []EnvVar{{Name: "CERT", Value: strings.Repeat("A\n", 1100)}}, Apps: []App{{Image: "x"}}}
	err := s.Validate()
	want := "rendered Environment= line of api is 3319 bytes; fleet's limit is 2047: put a value this long in a file on the machines and name it in envFiles"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %q", err, want)
	}
}

// TestDecodeJSONIgnoresUnknownFields: stored JSON (what scripts write under
// /kaylee2/units/) may hold fields Kaylee does not know, as monder/kaylee
// allowed: they are ignored, each reported as a warning with its line and
// hint; the unit decodes. A file from git (Load, YAML or JSON) stays strict.
func TestDecodeJSONIgnoresUnknownFields(t *testing.T) {
	in := []byte("{\"name\":\"a\",\"replicas\":2,\"owner\":\"team-x\",\n\"apps\":[{\"image\":\"x\",\"imagePullSecret\":\"s\"}],\"replcas\":3}")
	d, err := DecodeJSON("/kaylee2/units/a", in)
	if err != nil {
		t.Fatalf("stored JSON with unknown fields refused: %v", err)
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if d.Spec.Replicas != 2 || len(d.Spec.Apps) != 1 || d.Spec.Apps[0].Image != "x" {
		t.Errorf("decoded %s", d.Spec.CanonicalJSON())
	}
	var got []string
	for _, w := range d.Ignored {
		got = append(got, w.Error())
	}
	want := []string{
		`/kaylee2/units/a:1: unknown field "owner" (known fields: apps, args, conflicts, dependsOn, domains, domainsPort, engine, env, envFiles, freeze, global, health, machine, machineId, maxReplicasPerHost, name, net, onMachineLoss, ports, primary, replicas, spread, stateful, update, volumes)`,
		`/kaylee2/units/a:2: apps[0]: unknown field "imagePullSecret" (known fields: args, cmd, image, pull)`,
		`/kaylee2/units/a:2: unknown field "replcas" (did you mean "replicas"?)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("ignored:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Wrong types are still errors.
	if _, err := DecodeJSON("/kaylee2/units/a", []byte(`{"name":"a","x":1,"replicas":"2","apps":[{"image":"x"}]}`)); err == nil || !strings.Contains(err.Error(), "replicas: expected a whole number") {
		t.Errorf("wrong type: %v", err)
	}
	// Git stays strict, YAML and JSON alike.
	for _, f := range []struct{ name, data string }{
		{"units/a.yaml", "name: a\nreplcas: 2\napps: [{image: x}]\n"},
		{"units/a.json", `{"name":"a","replcas":2,"apps":[{"image":"x"}]}`},
	} {
		if _, err := Load(f.name, []byte(f.data)); err == nil || !strings.Contains(err.Error(), f.name+`:`) || !strings.Contains(err.Error(), `unknown field "replcas" (did you mean "replicas"?)`) {
			t.Errorf("%s: %v, want the unknown field as an error", f.name, err)
		}
	}
}

// TestDecodeJSONNullIsAbsent: null, which Go's encoding/json writes for a
// nil slice (monder/kaylee's spec had no omitempty on apps, so its JSON
// holds "apps": null), is an absent field for every field of stored JSON:
// the unit decodes as if the field were left out, and validation says what
// it says of a missing field.
func TestDecodeJSONNullIsAbsent(t *testing.T) {
	base := map[string]string{"name": `"a"`, "apps": `[{"image":"x","args":null,"cmd":null,"pull":null}]`}
	fields := yamlFields(specType)
	for _, field := range sortedKeys(fields) {
		if field == "name" {
			continue
		}
		t.Run(field, func(t *testing.T) {
			var parts []string
			for k, v := range base {
				if k != field {
					parts = append(parts, fmt.Sprintf("%q:%s", k, v))
				}
			}
			parts = append(parts, fmt.Sprintf("%q:null", field))
			in := "{" + strings.Join(parts, ",") + "}"
			d, err := DecodeJSON("/kaylee2/units/a", []byte(in))
			if err != nil {
				t.Fatalf("%s: %v", in, err)
			}
			if !reflect.ValueOf(d.Spec).FieldByName(fields[field].Name).IsZero() {
				t.Errorf("%s: %s decoded as %v, want absent", in, field, reflect.ValueOf(d.Spec).FieldByName(fields[field].Name))
			}
			err = d.Validate()
			if field == "apps" {
				if want := "/kaylee2/units/a:1: apps: required: at least one app with an image"; err == nil || err.Error() != want {
					t.Errorf("apps null: %v, want %s", err, want)
				}
			} else if err != nil {
				t.Errorf("%s: %v", in, err)
			}
		})
	}
}

// TestReplicasOneWithGlobalOrMachineID: replicas: 1 (and
// maxReplicasPerHost: 1) on a global or pinned unit is what it is without
// them: the same fleet units, the same names.
func TestReplicasOneWithGlobalOrMachineID(t *testing.T) {
	for _, base := range []Spec{
		{Name: "a", Global: true, Apps: []App{{Image: "x"}}},
		{Name: "a", MachineID: "b15ba3d0c1e24f0c8a2b", Apps: []App{{Image: "x"}}},
	} {
		with := base
		with.Replicas, with.MaxReplicasPerHost = 1, 1
		if err := with.Validate(); err != nil {
			t.Fatalf("%s: %v", with.CanonicalJSON(), err)
		}
		a, err := Render(&base, RenderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := Render(&with, RenderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if unitText(a) != unitText(b) {
			t.Errorf("%s renders otherwise than %s:\n%s\n%s", with.CanonicalJSON(), base.CanonicalJSON(), unitText(b), unitText(a))
		}
	}
}

// TestRenderCompatStopLines: what a replica runs when it stops, as
// monder/kaylee had it: rkt units collect garbage (rkt gc, rkt image gc;
// a failing gc must not fail the stop, so "-"), and a script volume
// plugin is called as <driver> <id> <options> to mount and <driver> -u
// <id> to unmount, the unmount's failure failing the unit (no "-"): a
// volume left mounted must show. docker units get no gc line.
func TestRenderCompatStopLines(t *testing.T) {
	vol := []Volume{{ID: "vol-1", Driver: "blocker", Path: "/data", Options: "-f ext4"}, {ID: "vol-2", Driver: "nfs", Path: "/n"}}
	tests := []struct {
		engine          string
		pre, stop, post []string // post: after the engine's own stop lines
	}{
		{EngineRkt,
			[]string{"/var/lib/kaylee/plugins/volumes/blocker vol-1 -f ext4", "/var/lib/kaylee/plugins/volumes/nfs vol-2"},
			[]string{"-/usr/bin/rkt rm --uuid-file={uuid}", "-/bin/rm -f {uuid}", "-/usr/bin/rkt gc", "-/usr/bin/rkt image gc"},
			[]string{"/var/lib/kaylee/plugins/volumes/blocker -u vol-1", "/var/lib/kaylee/plugins/volumes/nfs -u vol-2"}},
		{EngineDocker,
			[]string{"/var/lib/kaylee/plugins/volumes/blocker vol-1 -f ext4", "/var/lib/kaylee/plugins/volumes/nfs vol-2"},
			nil,
			[]string{"/var/lib/kaylee/plugins/volumes/blocker -u vol-1", "/var/lib/kaylee/plugins/volumes/nfs -u vol-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.engine, func(t *testing.T) {
			s := &Spec{Name: "api", Engine: tt.engine, Volumes: vol, Apps: []App{{Image: "x"}}}
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			units, err := Render(s, RenderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			n, _ := ParseUnitName("k2", units[0].Name)
			expand := strings.NewReplacer("{uuid}", "/var/run/kaylee_"+n.InstanceID()+".uuid").Replace
			var plugins []string
			for _, p := range options(units[0], "Service", "ExecStartPre") {
				if strings.Contains(p, "/plugins/") {
					plugins = append(plugins, p)
				}
			}
			if strings.Join(plugins, "\n") != strings.Join(tt.pre, "\n") {
				t.Errorf("plugin ExecStartPre:\n got %q\nwant %q", plugins, tt.pre)
			}
			var want []string
			for _, l := range append(append([]string{}, tt.stop...), tt.post...) {
				want = append(want, expand(l))
			}
			// (Every engine's last step before the unmounts writes the
			// replica's evidence: see TestRenderEvidenceEveryEngine.)
			got := slices.DeleteFunc(options(units[0], "Service", "ExecStopPost"), func(l string) bool { return strings.Contains(l, " kaylee-evidence %n ") })
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("ExecStopPost:\n got %q\nwant %q", got, want)
			}
		})
	}
}
