package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/fleet/schema"
)

// aliasBomb is the unit file of issue 20: one app whose args are n words,
// anchored, and the app repeated m times by alias. It is about 2n+4m bytes
// and expands to about n·m values.
func aliasBomb(n, m int) string {
	var b strings.Builder
	b.WriteString("name: bomb\napps:\n- &a {image: x, args: &b [")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('a')
	}
	b.WriteString("]}\n")
	for range m {
		b.WriteString("- *a\n")
	}
	return b.String()
}

// nestedBomb is the billion laughs: each level a list of k aliases to the
// level below, in a field Kaylee does not know, so that only the walker's
// own recursion would expand it.
func nestedBomb(levels, k int) string {
	var b strings.Builder
	b.WriteString("name: bomb\napps: [{image: x}]\nenv:\n- name: L0\n  value: &l0 lol\n")
	for l := 1; l <= levels; l++ {
		fmt.Fprintf(&b, "- name: L%d\n  value: &l%d [", l, l)
		for i := range k {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "*l%d", l-1)
		}
		b.WriteString("]\n")
	}
	return b.String()
}

// allocated is what f allocates, in bytes (deterministic enough to bound,
// unlike time).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A unit file's decoding is bounded: aliases that expand past MaxValues
// values, or nest deeper than the decoder allows, are one error naming the
// file and line, reached with bounded memory.
func TestAliasBombIsRefused(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
	}{
		{"apps×args, 21 KB", aliasBomb(5000, 2500), "bomb.yaml:5: apps[2]: aliases expand to more than 10000 values"},
		{"apps×args, 42 KB", aliasBomb(10000, 5000), "bomb.yaml:4: apps[1]: aliases expand to more than 10000 values"},
		{"apps×args, 1 MB", aliasBomb(250000, 100000), "bomb.yaml:4: apps[1]: aliases expand to more than 10000 values"},
		{"billion laughs in env", nestedBomb(9, 10), "bomb.yaml:13: env[4].value[7]: aliases expand to more than 10000 values"},
		{"an alias to itself", "name: bomb\napps: &a [*a]\n", "bomb.yaml:2: apps[0]: an alias refers to the value that holds it"},
		{"nested 40 deep", "name: bomb\napps:\n- image: x\n  args: " + strings.Repeat("[", 40) + strings.Repeat("]", 40) + "\n", "bomb.yaml:4: apps[0].args" + strings.Repeat("[0]", 30) + ": nested more than 32 levels deep"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			mem := allocated(func() { _, err = Load("bomb.yaml", []byte(tt.in)) })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load(%d bytes): error %v, want it to contain %q", len(tt.in), err, tt.want)
			}
			// Decoding without aliases costs some hundred bytes a value; a
			// file of this size must stay within a few MB.
			if limit := uint64(64<<20) + 64*uint64(len(tt.in)); mem > limit {
				t.Fatalf("Load(%d bytes) allocated %d MB, want at most %d MB", len(tt.in), mem>>20, limit>>20)
			}
		})
	}
}

// Anchors as people use them stay fine: an env list and an app repeated.
func TestAnchorsWithinBounds(t *testing.T) {
	in := "name: web\nenv: &env\n- {name: A, value: a}\n- {name: B, value: b}\napps:\n- &app {image: x, args: [serve, --port, '80']}\n- *app\n- *app\n"
	docs, err := Load("web.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(docs[0].Spec.Apps); got != 3 || docs[0].Spec.Apps[2].Args[1] != "--port" {
		t.Fatalf("apps %+v, want the anchored app three times", docs[0].Spec.Apps)
	}
}

// The cost of refusing a bomb against reading a plain file of the same
// size (the baseline): go test -run - -bench LoadHostile -benchmem ./deploy
func BenchmarkLoadHostile(b *testing.B) {
	plain := func(size int) string {
		var s strings.Builder
		s.WriteString("name: plain\napps:\n- image: x\n  args: [")
		for s.Len() < size {
			s.WriteString("a,")
		}
		s.WriteString("a]\n")
		return s.String()
	}
	for _, bb := range []struct {
		name string
		in   string
	}{
		{"plain-21KB", plain(22545)},
		{"bomb-21KB", aliasBomb(5000, 2500)},
		{"plain-42KB", plain(45045)},
		{"bomb-42KB", aliasBomb(10000, 5000)},
		{"laughs-1KB", nestedBomb(9, 10)},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bb.in)))
			for b.Loop() {
				Load("u.yaml", []byte(bb.in))
			}
		})
	}
}

// verifyUnits runs systemd's own `systemd-analyze verify` on the first
// rendered unit of each spec, with the engine and plugin paths pointed at
// /bin/true (systemd checks that each command is executable; only the
// grammar of the lines is under test), and returns what systemd said
// about each.
func verifyUnits(t *testing.T, specs map[string]*Spec) map[string]string {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		skipOutsideCI(t, "systemd-analyze is not installed")
	}
	dir := t.TempDir()
	out := map[string]string{}
	for name, s := range specs {
		units, err := Render(s, RenderOptions{})
		if err != nil {
			t.Fatalf("%s: render: %v", name, err)
		}
		text := schema.MapSchemaUnitOptionsToUnitFile(units[0].Options).String()
		for _, p := range []string{DockerPath, RktPath, VolumePluginDir + "/blocker", "/bin/rm"} {
			text = strings.ReplaceAll(text, p, "/bin/true")
		}
		file := filepath.Join(dir, name+".service")
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		b, _ := exec.Command(analyze, "verify", file).CombinedOutput()
		out[name] = strings.ReplaceAll(string(b), file, name+".service")
	}
	return out
}

// Issue 20: every value lands in a line of the unit file and is held to
// that line's grammar. systemd itself judges: what validation accepts
// renders to units `systemd-analyze verify` takes without a word, and
// what it refuses, rendered anyway, is what systemd refuses (two
// ExecStart=, broken quoting) or would run as a second command.
func TestValuesByTheGrammarOfTheirLine(t *testing.T) {
	base := func(f func(s *Spec)) *Spec {
		s := &Spec{Name: "web", Apps: []App{{Image: "docker://web:1"}}}
		f(s)
		return s
	}
	blocker := Volume{ID: "v1", Driver: "blocker", Path: "/data"}
	refused := []struct {
		name    string
		spec    *Spec
		want    string // the validation error
		systemd string // what systemd says of the unit rendered anyway; "" when it loads it
	}{
		{"; in a volume's options", base(func(s *Spec) {
			v := blocker
			v.Options = "-o ro ; /nonexistent/evil"
			s.Volumes = []Volume{v}
			// systemd 252's verify checks only a chain's first command, so
			// it takes this line; systemd would run /nonexistent/evil.
		}), `volumes[0].options: "-o ro ; /nonexistent/evil" ";" alone is systemd's separator of commands`, ""},
		{"; as an args word", base(func(s *Spec) { s.Args = []string{"--net=host", ";", "/nonexistent/evil"} }),
			`args[1]: ";" ";" alone is systemd's separator of commands`, "more than one ExecStart"},
		{"; in an app's args (docker)", base(func(s *Spec) {
			s.Engine = EngineDocker
			s.Apps[0].Args = []string{"serve ; /nonexistent/evil"}
		}), `apps[0].args[0]: "serve ; /nonexistent/evil" ";" alone`, "more than one ExecStart"},
		{"an unbalanced quote in args", base(func(s *Spec) { s.Args = []string{"--format '$$ip:80"} }),
			`args[0]: "--format '$$ip:80" has a ' quote that is never closed`, "quot"},
		{"an unbalanced quote in an image", base(func(s *Spec) { s.Apps[0].Image = `docker://web:1"` }),
			`apps[0].image: "docker://web:1\"" is not an image reference`, "quot"},
		{"a backslash in a cmd", base(func(s *Spec) {
			s.Engine = EngineDocker
			s.Apps[0].Cmd = `/bin/grep\x20-r`
		}), `apps[0].cmd: "/bin/grep\\x20-r" holds a backslash`, ""},
		{"a quote in a volume path", base(func(s *Spec) {
			s.Volumes = []Volume{{ID: "v", Source: "/srv/a'b", Path: "/data"}}
		}), `volumes[0].source: "/srv/a'b" must be an absolute host path without spaces, quotes`, "quot"},
		{"a second = in machine", base(func(s *Spec) { s.Machine = []string{"role=x=y"} }),
			`machine[0]: "role=x=y": the value "x=y" holds =, a quote or a backslash, and fleet silently drops`, ""},
		{"quotes in machine", base(func(s *Spec) { s.Machine = []string{`role="a b"`} }),
			`machine[0]: "role=\"a b\"" must be key=value`, ""},
	}
	accepted := map[string]*Spec{
		"seed-quotes": base(func(s *Spec) {
			s.Apps = append(s.Apps, App{Image: "monder.cc/rkt-sidekick:v0.0.3", Args: []string{"--cidr 10.5.0.0/16", "--format '$$ip:80'", "/services/countly/${KAYLEE_ID}"}})
			s.Args = []string{"--dns=10.0.0.2", "--net=flannel,default"}
		}),
		"quoted-semicolon": base(func(s *Spec) { s.Args = []string{"';'", "a;b", `"x y"`} }),
		"docker-args":      base(func(s *Spec) { s.Engine = EngineDocker; s.Apps[0].Args = []string{"--opt='a b'", "c;d"} }),
		"volume-options": base(func(s *Spec) {
			v := blocker
			v.Options = "-o ro,noexec --size=1G"
			s.Volumes = []Volume{v}
		}),
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate: %v\nwant an error with %s", err, tt.want)
			}
		})
	}
	for name, s := range accepted {
		if err := s.Validate(); err != nil {
			t.Errorf("%s: Validate: %v", name, err)
		}
	}
	said := verifyUnits(t, accepted)
	for name, out := range said {
		if strings.TrimSpace(out) != "" {
			t.Errorf("systemd-analyze verify on %s, which validation accepts:\n%s", name, out)
		}
	}
	// What systemd does with what validation refuses: the reason to refuse.
	hostile := map[string]*Spec{}
	for i, tt := range refused {
		if tt.systemd != "" {
			hostile[fmt.Sprintf("refused-%d", i)] = tt.spec
		}
	}
	said = verifyUnits(t, hostile)
	for i, tt := range refused {
		if tt.systemd == "" {
			continue
		}
		if out := said[fmt.Sprintf("refused-%d", i)]; !strings.Contains(out, tt.systemd) {
			t.Errorf("%s: systemd-analyze verify said %q, want it to mention %q", tt.name, out, tt.systemd)
		}
	}
}

func TestCleanMachine(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      Machine
		want    string // the metadata kept, sorted
		dropped string
		ok      bool
	}{
		{"plain", Machine{ID: "abc123", Metadata: map[string]string{"az": "a", "role": "edge"}}, "az=a role=edge", "", true},
		{"newline in a value", Machine{ID: "abc", Metadata: map[string]string{"az": "c\nExecStartPre=/evil", "ssd": "true"}}, "ssd=true", `metadata "az"="c\nExecStartPre=/evil"`, true},
		{"= in a value", Machine{ID: "abc", Metadata: map[string]string{"role": "x=y"}}, "", `metadata "role"="x=y"`, true},
		{"quote in a value", Machine{ID: "abc", Metadata: map[string]string{"role": `"a"`}}, "", `metadata "role"="\"a\""`, true},
		{"space in a key", Machine{ID: "abc", Metadata: map[string]string{"a z": "a"}}, "", `metadata "a z"="a"`, true},
		{"newline in the ID", Machine{ID: "abc\nMachineID=def"}, "", `machine ID "abc\nMachineID=def" is not letters and digits`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, dropped, ok := CleanMachine(tt.in)
			var kept []string
			for k, v := range got.Metadata {
				kept = append(kept, k+"="+v)
			}
			slices.Sort(kept)
			if strings.Join(kept, " ") != tt.want || strings.Join(dropped, "; ") != tt.dropped || ok != tt.ok {
				t.Fatalf("CleanMachine: kept %q dropped %q ok %v, want %q %q %v", kept, dropped, ok, tt.want, tt.dropped, tt.ok)
			}
		})
	}
}
