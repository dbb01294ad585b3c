package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// systemdEnvFile models how systemd reads an EnvironmentFile= (its
// parse_env_file_internal, src/basic/env-file.c, and load_env_file_push),
// written here from its documented behaviour, for the tests of what the
// decrypt script writes:
//
//   - lines are KEY=VALUE; blank lines and lines starting with # or ; are
//     skipped; whitespace around the key and before the value is dropped;
//   - an unquoted value ends at the newline, its trailing whitespace
//     dropped; a backslash takes the next character literally, and a
//     backslash before a newline joins the lines;
//   - in single quotes everything is literal up to the next quote;
//   - in double quotes a backslash escapes only " \ ` and $ (it is
//     dropped) and a newline (both are dropped: a continuation line);
//     before any other character the backslash is kept, as by the shell;
//     everything else, newlines and carriage returns included, is kept;
//   - quoted and unquoted pieces of one value are joined; after the last
//     one the value ends at a newline or at the end of the file;
//   - a value that is not valid UTF-8 is ignored (a logged error), and a
//     later assignment of a key replaces an earlier one.
//
// It returns the variables and the ones ignored.
func systemdEnvFile(text string) (vars map[string]string, ignored []string) {
	const (
		preKey = iota
		key
		preValue
		value
		valueEscape
		single
		double
		doubleEscape
		comment
		commentEscape
	)
	vars = map[string]string{}
	state := preKey
	var k, v []byte
	keyWS, valueWS := -1, -1 // where trailing whitespace starts, or -1
	push := func() {
		if keyWS >= 0 {
			k = k[:keyWS]
		}
		if !utf8.Valid(k) || !utf8.Valid(v) {
			ignored = append(ignored, string(k))
		} else {
			vars[string(k)] = string(v)
		}
		k, v, keyWS, valueWS = nil, nil, -1, -1
	}
	isWS := func(c byte) bool { return strings.IndexByte(" \t\n\r", c) >= 0 }
	isNL := func(c byte) bool { return c == '\n' || c == '\r' }
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch state {
		case preKey:
			switch {
			case c == '#' || c == ';':
				state = comment
			case !isWS(c):
				state, keyWS, k = key, -1, append(k[:0], c)
			}
		case key:
			switch {
			case isNL(c):
				state, k = preKey, nil
			case c == '=':
				state, valueWS = preValue, -1
			default:
				if !isWS(c) {
					keyWS = -1
				} else if keyWS < 0 {
					keyWS = len(k)
				}
				k = append(k, c)
			}
		case preValue:
			switch {
			case isNL(c):
				state = preKey
				push()
			case c == '\'':
				state = single
			case c == '"':
				state = double
			case c == '\\':
				state = valueEscape
			case !isWS(c):
				state, v = value, append(v, c)
			}
		case value:
			switch {
			case isNL(c):
				state = preKey
				if valueWS >= 0 {
					v = v[:valueWS]
				}
				push()
			case c == '\\':
				state, valueWS = valueEscape, -1
			default:
				if !isWS(c) {
					valueWS = -1
				} else if valueWS < 0 {
					valueWS = len(v)
				}
				v = append(v, c)
			}
		case valueEscape:
			state = value
			if !isNL(c) {
				v = append(v, c)
			}
		case single:
			if c == '\'' {
				state = preValue
			} else {
				v = append(v, c)
			}
		case double:
			switch c {
			case '"':
				state = preValue
			case '\\':
				state = doubleEscape
			default:
				v = append(v, c)
			}
		case doubleEscape:
			state = double
			switch {
			case strings.IndexByte("\"\\`$", c) >= 0:
				v = append(v, c)
			case c != '\n':
				v = append(v, '\\', c)
			}
		case comment:
			switch {
			case c == '\\':
				state = commentEscape
			case isNL(c):
				state = preKey
			}
		case commentEscape:
			state = comment
			if isNL(c) {
				state = preKey
			}
		}
	}
	switch state {
	case preValue, value, valueEscape, single, double, doubleEscape:
		if state == value && valueWS >= 0 {
			v = v[:valueWS]
		}
		push()
	}
	return vars, ignored
}

// TestSystemdEnvFileModel holds the model to systemd's documented
// examples and the cases the decrypt script relies on.
func TestSystemdEnvFileModel(t *testing.T) {
	for _, tc := range []struct{ text, key, want string }{
		{"A=plain  \n", "A", "plain"},
		{"  A = x\n", "A", "x"},
		{"# c\n; c\nA=1", "A", "1"},
		{`A="a\"b\\c\$d` + "\\`" + `e\nf"`, "A", "a\"b\\c$d`e\\nf"},
		{"A=\"one\ntwo\r\n\"\n", "A", "one\ntwo\r\n"},
		{"A=\"x\\\ny\"", "A", "xy"},
		{"A='$x \\ \"'", "A", `$x \ "`},
		{"A=a\\\nb", "A", "ab"},
		{"A=\"q\"tail\n", "A", "qtail"},
		{"A=1\nA=2\n", "A", "2"},
	} {
		vars, _ := systemdEnvFile(tc.text)
		if got, ok := vars[tc.key]; !ok || got != tc.want {
			t.Errorf("%q: %s=%q (%v), want %q", tc.text, tc.key, got, ok, tc.want)
		}
	}
	if vars, ignored := systemdEnvFile("A=\"\xff\"\n"); len(vars) != 0 || len(ignored) != 1 {
		t.Errorf("invalid UTF-8: %q, ignored %q", vars, ignored)
	}
}

// TestSecretEnvFileValues runs the decrypt script with bash and Debian's
// age on values that a shell or systemd could mangle, and reads the file
// it writes as systemd does (systemdEnvFile): each value reaches the
// process exactly, except trailing newlines, which are dropped (the
// script takes the value from $(age -d), which strips them; kaylee
// secret encrypt warns of them), and a value that is not UTF-8, which
// systemd ignores (with a logged error: the variable is unset). A NUL
// cannot be in an environment at all.
func TestSecretEnvFileValues(t *testing.T) {
	needBash(t)
	if _, err := os.Stat(AgePath); err != nil {
		skipOutsideCI(t, "no %s (Debian's package age): %v", AgePath, err)
	}
	keys, _ := filepath.Abs("testdata/secret/keys.txt")
	for _, tc := range []struct {
		name, value, want string
		ignored           bool
	}{
		{"not UTF-8: systemd ignores it", "\xff\xfe", "", true},
		{"a variable", "$HOME and ${HOME} and $$", "", false},
		{"backticks and a command", "`id` $(id) \\`", "", false},
		{"a literal \\n", `line\nline\t\r\0`, "", false},
		{"a trailing backslash", `ends in \`, "", false},
		{"backslash before a newline", "a\\\nb\\", "", false},
		{"quotes", `"double" 'single' \" \'` + "\"", "", false},
		{"percent", "100% %n %m %% %i", "", false},
		{"unicode", "pässwörd ✓ 日本語 🔑 \u00a0", "", false},
		{"CRLF", "a\r\nb\r\nc\r", "", false},
		{"tabs", "\tx\ty\t", "", false},
		{"leading and trailing spaces", "   x y   ", "", false},
		{"embedded newlines", "l1\nl2\n\nl4\n \n5", "", false},
		{"comment and assignment chars", "#x=y ;z\nB=c", "", false},
		{"escapes mixed", "\\\\$\\$\"\\\"`\\`", "", false},
		{"empty", "", "", false},
		{"a trailing newline is dropped", "v\n", "v", false},
		{"trailing newlines are dropped", "v\n\n\n", "v", false},
		{"trailing CRLF: the CR stays", "v\r\n", "v\r", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.value
			if tc.want != "" || strings.HasSuffix(tc.value, "\n") {
				want = tc.want
			}
			s := loadOne(t, "testdata/render/secret-docker.yaml")
			s.Env = []EnvVar{{Name: "V", Secret: encryptTo(t, tc.value, "keys.txt"), Recipients: []string{"db"}}}
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "k2_api")
			for _, argv := range secretArgvs(t, s, dir, keys) {
				out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
				if err != nil || len(out) > 0 {
					t.Fatalf("%v: %q", err, out)
				}
			}
			text, err := os.ReadFile(filepath.Join(dir, "V"))
			if err != nil {
				t.Fatal(err)
			}
			vars, ignored := systemdEnvFile(string(text))
			if tc.ignored {
				if len(vars) != 0 || len(ignored) != 1 {
					t.Errorf("systemd reads %q, ignores %q; want V ignored", vars, ignored)
				}
				return
			}
			if got, ok := vars["V"]; !ok || got != want || len(vars) != 1 || len(ignored) > 0 {
				t.Errorf("systemd reads %q (%v, all %q, ignored %q)\nwant %q\nfile %q", got, ok, vars, ignored, want, text)
			}
		})
	}
}
