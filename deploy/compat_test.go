package deploy

import (
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
