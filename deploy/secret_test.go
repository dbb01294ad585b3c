package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// The test identities and ciphertexts: testdata/secret/keys.txt decrypts
// db-password.age (encrypted to it alone) and two.age (to it and
// other.txt's key); recipients names both.
const secretClear = "pa$$ \"w0rd\" `x` \\ end"

// longClear is a value whose ciphertext needs more than one unit line.
var longClear = "-----BEGIN KEY-----\n" + strings.Repeat("MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEA\n", 60) + "-----END KEY-----"

// encryptTo encrypts clear, armored, to the recipient of a testdata
// identity file.
func encryptTo(t testing.TB, clear, identityFile string) string {
	t.Helper()
	ids, err := age.ParseIdentities(strings.NewReader(readTestdata(t, identityFile)))
	if err != nil {
		t.Fatal(err)
	}
	return encryptArmored(t, clear, ids[0].(*age.X25519Identity).Recipient())
}

// encryptArmored encrypts clear, armored, to the recipients.
func encryptArmored(t testing.TB, clear string, rs ...age.Recipient) string {
	t.Helper()
	var b strings.Builder
	a := armor.NewWriter(&b)
	w, err := age.Encrypt(a, rs...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, clear); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// extraStanza is a recipient that wraps the file key as its inner
// X25519 recipient does and adds a stanza of another type, as rage adds
// grease, or as a plugin's recipient writes its own.
type extraStanza struct {
	inner age.Recipient
	typ   string
}

func (r extraStanza) Wrap(fileKey []byte) ([]*age.Stanza, error) {
	s, err := r.inner.Wrap(fileKey)
	return append(s, &age.Stanza{Type: r.typ, Args: []string{"x"}, Body: []byte("some body")}), err
}

// onlyStanza is a recipient that writes the one stanza given.
type onlyStanza struct{ s age.Stanza }

func (r onlyStanza) Wrap([]byte) ([]*age.Stanza, error) { s := r.s; return []*age.Stanza{&s}, nil }

// testX25519 is the recipient of testdata/secret/keys.txt.
func testX25519(t testing.TB) *age.X25519Recipient {
	t.Helper()
	ids, err := age.ParseIdentities(strings.NewReader(readTestdata(t, "keys.txt")))
	if err != nil {
		t.Fatal(err)
	}
	return ids[0].(*age.X25519Identity).Recipient()
}

// scryptRecipient is a passphrase's, as age -p encrypts to.
func scryptRecipient(t testing.TB) *age.ScryptRecipient {
	t.Helper()
	r, err := age.NewScryptRecipient("a passphrase")
	if err != nil {
		t.Fatal(err)
	}
	r.SetWorkFactor(10) // fast: nothing here decrypts it
	return r
}

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "secret", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseSecret(t *testing.T) {
	one, two := readTestdata(t, "db-password.age"), readTestdata(t, "two.age")
	lines := strings.Split(strings.TrimSpace(one), "\n")
	x := testX25519(t)
	scrypt := scryptRecipient(t)
	// The stanzas agessh writes (filippo.io/age/agessh, not a dependency
	// of Kaylee): "-> ssh-ed25519 TAG SHARE" and "-> ssh-rsa TAG".
	sshEd := onlyStanza{age.Stanza{Type: "ssh-ed25519", Args: []string{"Ab1cDe", "c2hhcmU"}, Body: []byte("wrapped key")}}
	sshRSA := onlyStanza{age.Stanza{Type: "ssh-rsa", Args: []string{"Ab1cDe"}, Body: []byte("wrapped key")}}
	for _, tc := range []struct {
		name, text string
		stanzas    int
		err        string
	}{
		{"one recipient", one, 1, ""},
		{"two recipients", two, 2, ""},
		{"a grease stanza is no recipient", encryptArmored(t, "v", extraStanza{x, "~1Xy-grease"}), 1, ""},
		{"a passphrase (age -p)", encryptArmored(t, "v", scrypt), 0,
			"is encrypted with a passphrase (age -p); a machine decrypts with its X25519 identity only: encrypt it with age -r age1... (or kaylee secret encrypt) to the machines' X25519 recipients"},
		{"an ssh-ed25519 key", encryptArmored(t, "v", sshEd), 0,
			"is encrypted to an ssh-ed25519 key; a machine decrypts with its X25519 identity only: encrypt it with age -r age1... (or kaylee secret encrypt) to the machines' X25519 recipients"},
		{"an ssh-rsa key", encryptArmored(t, "v", sshRSA), 0, "is encrypted to an ssh-rsa key; a machine decrypts"},
		{"X25519 and a plugin's stanza", encryptArmored(t, "v", extraStanza{x, "piv-p256"}), 0,
			"is encrypted to a piv-p256 recipient (not an age X25519 recipient); a machine decrypts with its X25519 identity only"},
		{"indented and with blank lines around", "\n\n" + one + "\n", 1, ""},
		{"clear text", "hunter2", 0, `is not an age file: it must start with "-----BEGIN AGE ENCRYPTED FILE-----"`},
		{"binary age", "age-encryption.org/v1\n-> X25519 abc\n", 0, "is a binary age file: give it ASCII-armored"},
		{"no end line", strings.Join(lines[:len(lines)-1], "\n"), 0, "is not well-formed ASCII-armored age"},
		{"a body line changed", strings.Replace(one, lines[1], strings.Repeat("A", len(lines[1])), 1), 0, "has no well-formed age header"},
		{"armored garbage", "-----BEGIN AGE ENCRYPTED FILE-----\naGVsbG8=\n-----END AGE ENCRYPTED FILE-----", 0, "has no well-formed age header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSecret(tc.text)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Stanzas) != tc.stanzas || slices.ContainsFunc(s.Stanzas, func(t string) bool { return t != "X25519" }) {
				t.Fatalf("stanzas %v, want %d X25519", s.Stanzas, tc.stanzas)
			}
		})
	}
}

// secretYAML is a unit file with one env entry, written as given.
func secretYAML(entry string) string {
	return "name: api\nengine: docker\nmachine: [role=db]\napps:\n- image: docker://example/api:1\nenv:\n" + entry
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n    ")
}

func TestValidateSecretErrors(t *testing.T) {
	one, two := readTestdata(t, "db-password.age"), readTestdata(t, "two.age")
	huge := encryptTo(t, strings.Repeat("x", MaxSecretLen), "keys.txt")
	for _, tc := range []struct {
		name, entry, want string
	}{
		{"valid", "- name: DB_PASSWORD\n  secret: |\n" + indent(one) + "\n  recipients: [db]\n", ""},
		{"value and secret", "- name: DB_PASSWORD\n  value: x\n  secret: |\n" + indent(one) + "\n  recipients: [db]\n",
			"u.yaml:8: env[0].value: an entry has a value or a secret, not both"},
		{"no recipients", "- name: DB_PASSWORD\n  secret: |\n" + indent(one) + "\n",
			"u.yaml:7: env[0].recipients: required with a secret"},
		{"recipients without secret", "- name: MODE\n  value: prod\n  recipients: [db]\n",
			"u.yaml:9: env[0].recipients: recipients are the ones a secret was encrypted to; this entry has no secret"},
		{"fewer recipients than stanzas", "- name: T\n  secret: |\n" + indent(two) + "\n  recipients: [db]\n",
			"u.yaml:18: env[0].recipients: lists 1 recipients (db) but the secret is encrypted to 2: re-encrypt it with kaylee secret encrypt"},
		{"a bad name", "- name: T\n  secret: |\n" + indent(one) + "\n  recipients: [DB]\n",
			`u.yaml:16: env[0].recipients[0]: "DB" is not a recipient name`},
		{"a name twice", "- name: T\n  secret: |\n" + indent(two) + "\n  recipients: [db, db]\n",
			"u.yaml:18: env[0].recipients[1]: db is given twice"},
		{"clear text as secret", "- name: T\n  secret: hunter2\n  recipients: [db]\n",
			`u.yaml:8: env[0].secret: is not an age file`},
		{"a passphrase", "- name: T\n  secret: |\n" + indent(encryptArmored(t, "v", scryptRecipient(t))) + "\n  recipients: [db]\n",
			"u.yaml:8: env[0].secret: is encrypted with a passphrase (age -p)"},
		{"a name too long", "- name: " + strings.Repeat("N", 1900) + "\n  secret: |\n" + indent(one) + "\n  recipients: [db]\n",
			"u.yaml:7: env[0].name: is 1900 characters; a secret's variable name is at most 255"},
		{"too long", "- name: T\n  secret: |\n" + indent(huge) + "\n  recipients: [db]\n",
			"u.yaml:8: env[0].secret: is 22"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("u.yaml", []byte(secretYAML(tc.entry)))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant %q", err, tc.want)
			}
		})
	}
}

// TestSecretNeverInEnvironmentLines: a secret's variable gets no
// Environment= line (which systemctl show and fleetctl cat would print),
// only its EnvironmentFile= and -e NAME, for every engine.
func TestSecretNeverInEnvironmentLines(t *testing.T) {
	for _, engine := range []string{EngineDocker, EnginePodman, EngineRkt} {
		s := loadOne(t, "testdata/render/secret-"+engine+".yaml")
		units, err := Render(s, RenderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		u := units[0]
		for _, v := range options(u, "Service", "Environment") {
			if strings.Contains(v, "DB_PASSWORD") || strings.Contains(v, "API_TOKEN") {
				t.Errorf("%s: Environment=%s", engine, v)
			}
		}
		if got := options(u, "Service", "EnvironmentFile"); len(got) != 2 || !strings.HasPrefix(got[0], "-"+SecretsDir+"/") || !strings.HasSuffix(got[1], "/API_TOKEN") {
			t.Errorf("%s: EnvironmentFile= %q", engine, got)
		}
		var steps int
		for _, l := range options(u, "Service", "ExecStartPre") {
			if strings.Contains(l, " kaylee-secret ") {
				steps++
			}
		}
		if steps != 2 {
			t.Errorf("%s: %d decrypt steps, want 2", engine, steps)
		}
		id := strings.TrimSuffix(strings.TrimPrefix(options(u, "Service", "Environment")[0], `"KAYLEE_ID=`), `"`)
		if got := options(u, "Service", "ExecStartPost"); len(got) == 0 || got[0] != "/bin/rm -rf "+SecretsDir+"/"+id {
			t.Errorf("%s: ExecStartPost %q, want the removal of %s/%s first", engine, got, SecretsDir, id)
		}
		if got := options(u, "Service", "ExecStopPost"); !strings.HasPrefix(got[len(got)-1], "-/bin/rm -rf "+SecretsDir+"/") {
			t.Errorf("%s: last ExecStopPost %q, want the secrets' removal", engine, got[len(got)-1])
		}
	}
}

// secretSteps returns the argv of each decrypt step of the rendered unit
// (as systemd splits it), with the directory and identity file replaced.
func secretArgvs(t *testing.T, s *Spec, dir, identity string) [][]string {
	t.Helper()
	units, err := Render(s, RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, l := range options(units[0], "Service", "ExecStartPre") {
		if !strings.Contains(l, " kaylee-secret") {
			continue
		}
		argv := execArgv(t, l)
		switch {
		case len(argv) == 8 && argv[3] == "kaylee-secret" && argv[5] == SecretIdentityFile:
			argv[4], argv[5] = dir, identity
		case len(argv) == 8 && argv[3] == "kaylee-secret-part":
			argv[4] = dir
		default:
			t.Fatalf("decrypt step %q", argv)
		}
		out = append(out, argv)
	}
	return out
}

// TestSecretStepDecrypts runs the rendered decrypt steps with bash and
// Debian's age, as systemd would start the unit: each variable's file is
// 0600 in a 0700 directory and, read as a double-quoted environment file
// (systemd's rules are the shell's), gives the clear value byte for byte;
// nothing of the value is printed. Without the identity, or with one that
// is not a recipient, the step fails with one kaylee-secret: line.
func TestSecretStepDecrypts(t *testing.T) {
	needBash(t)
	if _, err := os.Stat(AgePath); err != nil {
		skipOutsideCI(t, "no %s (Debian's package age): %v", AgePath, err)
	}
	s := loadOne(t, "testdata/render/secret-docker.yaml")
	// A key of 3000 bytes: its ciphertext takes four lines of the unit.
	s.Env = append(s.Env, EnvVar{Name: "TLS_KEY", Secret: encryptTo(t, longClear, "keys.txt"), Recipients: []string{"db"}})
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "run", "k2_api")
	keys, _ := filepath.Abs("testdata/secret/keys.txt")
	argvs := secretArgvs(t, s, dir, keys)
	if len(argvs) != 6 {
		t.Fatalf("%d decrypt steps, want 2 + 4 for the long key", len(argvs))
	}
	for _, argv := range argvs {
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Fatalf("%s: %v: %q", argv[3:5], err, out)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	for name, want := range map[string]string{"DB_PASSWORD": secretClear, "API_TOKEN": "other", "TLS_KEY": longClear} {
		f := filepath.Join(dir, name)
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, st.Mode().Perm())
		}
		got, err := exec.Command(BashPath, "-c", `set -a; . "$1"; printf %s "$`+name+`"`, "x", f).Output()
		if err != nil || string(got) != want {
			t.Errorf("%s read as an environment file: %q (%v), want %q", name, got, err, want)
		}
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("%s: %v %v, want a 0700 directory", dir, st.Mode(), err)
	}
	// Its parent keeps the umask: /run/kaylee holds the evidence too,
	// which a publisher that is not root reads.
	if st, err := os.Stat(filepath.Dir(dir)); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("%s: %v %v, want 0755 (umask 022)", filepath.Dir(dir), st.Mode(), err)
	}

	other, _ := filepath.Abs("testdata/secret/other.txt")
	for _, tc := range []struct{ identity, want string }{
		{filepath.Join(t.TempDir(), "none.txt"), "kaylee-secret: DB_PASSWORD: this machine has no age identity file "},
		{other, "kaylee-secret: DB_PASSWORD: not decrypted with " + other + ": age: error: no identity matched any of the recipients"},
	} {
		argv := secretArgvs(t, s, filepath.Join(t.TempDir(), "x"), tc.identity)[0]
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err == nil || strings.Count(string(out), "\n") != 1 || !strings.HasPrefix(string(out), tc.want) {
			t.Errorf("identity %s: %v %q, want one line %q…", tc.identity, err, out, tc.want)
		}
	}
}

func TestParseRecipients(t *testing.T) {
	good := readTestdata(t, "recipients")
	rs, err := ParseRecipients(".kaylee/recipients", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if got := rs.Names(); strings.Join(got, ",") != "db,ops" {
		t.Fatalf("names %v", got)
	}
	if db, _ := rs.Get("db"); db.Covers() != "role=db" || db.Line != 2 {
		t.Fatalf("db: %+v", db)
	}
	if ops, _ := rs.Get("ops"); ops.Covers() != "every machine" {
		t.Fatalf("ops: %+v", ops)
	}
	key := strings.Fields(strings.Split(good, "\n")[1])[1]
	for _, tc := range []struct{ name, text, want string }{
		{"two fields", "db " + key + "\n", ".kaylee/recipients:1: want three fields"},
		{"bad key", "db age1nope *\n", `.kaylee/recipients:1: db: "age1nope" is not an age public key`},
		{"a secret key", "db AGE-SECRET-KEY-1QQQ *\n", `is not an age public key`},
		{"bad name", "# c\nDb " + key + " *\n", `.kaylee/recipients:2: "Db" is not a recipient name`},
		{"bad machines", "db " + key + " role\n", `.kaylee/recipients:1: db: machines "role": want * or fleet metadata pairs`},
		{"a name twice", "db " + key + " *\ndb " + key + " role=db\n", ".kaylee/recipients:2: db is also named on line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRecipients(".kaylee/recipients", []byte(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestCheckSecrets(t *testing.T) {
	rs, err := ParseRecipients(".kaylee/recipients", []byte(readTestdata(t, "recipients")))
	if err != nil {
		t.Fatal(err)
	}
	one, two := readTestdata(t, "db-password.age"), readTestdata(t, "two.age")
	doc := func(machine, names, text string) []*Document {
		y := "name: api\nengine: docker\n" + machine + "apps:\n- image: docker://example/api:1\nenv:\n- name: P\n  secret: |\n" + indent(text) + "\n  recipients: " + names + "\n"
		docs, err := Load("units/api.yaml", []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		return docs[:1]
	}
	for _, tc := range []struct {
		name     string
		docs     []*Document
		rs       *Recipients
		covering string
		want     string
	}{
		{"db's machines only", doc("machine: [role=db]\n", "[db]", one), rs, "db", ""},
		{"db and another key", doc("machine: [role=db, disk=ssd]\n", "[db]", one), rs, "db", ""},
		{"every machine", doc("", "[db, ops]", two), rs, "ops", ""},
		{"anywhere, db only", doc("", "[db]", one), rs, "",
			"units/api.yaml:15: env[0].recipients: no recipient's machines include every machine api may run on (any machine; db: role=db)"},
		{"two roles, db only", doc("machine: [role=db, role=web]\n", "[db]", one), rs, "",
			"(machines with role=db, role=web; db: role=db)"},
		{"unknown name", doc("machine: [role=db]\n", "[dbb]", one), rs, "",
			`units/api.yaml:16: env[0].recipients[0]: "dbb" is not in .kaylee/recipients (did you mean "db"?)`},
		{"no recipients file", doc("machine: [role=db]\n", "[db]", one), nil, "",
			"units/api.yaml:8: env[0].secret: the repository has no .kaylee/recipients"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckSecrets(tc.docs, tc.rs)
			if len(got) != 1 {
				t.Fatalf("%d checks", len(got))
			}
			c := got[0]
			if strings.Join(c.Covering, ",") != tc.covering {
				t.Errorf("covering %v, want %s", c.Covering, tc.covering)
			}
			switch {
			case tc.want == "" && c.Problem != nil:
				t.Errorf("problem %v", c.Problem)
			case tc.want != "" && (c.Problem == nil || !strings.Contains(c.Problem.Error(), tc.want)):
				t.Errorf("problem %v\nwant %q", c.Problem, tc.want)
			}
		})
	}
}

// TestMaskSecrets: a field diff of env shows a secret's fingerprint, never
// its ciphertext, and a new ciphertext another fingerprint.
func TestMaskSecrets(t *testing.T) {
	one, two := readTestdata(t, "db-password.age"), readTestdata(t, "two.age")
	env := func(text string) json.RawMessage {
		b, _ := json.Marshal([]EnvVar{{Name: "MODE", Value: "prod"}, {Name: "P", Secret: text, Recipients: []string{"db"}}})
		return b
	}
	a, b := string(MaskSecrets(env(one))), string(MaskSecrets(env(two)))
	want := `[{"name":"MODE","value":"prod"},{"name":"P","recipients":["db"],"secret":"` + SecretFingerprint(one) + `","value":""}]`
	if a != want {
		t.Fatalf("masked:\n%s\nwant\n%s", a, want)
	}
	if a == b || strings.Contains(a+b, "BEGIN AGE") {
		t.Fatalf("masked: %s / %s", a, b)
	}
	if got := string(MaskSecrets(json.RawMessage(`"not a list"`))); got != `"not a list"` {
		t.Fatalf("not a list: %s", got)
	}
}

func FuzzParseRecipients(f *testing.F) {
	f.Add([]byte(readTestdata(f, "recipients")))
	f.Add([]byte("db age1xyz role=db,zone=a\n# c\n\nops k *"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := ParseRecipients("r", data)
		if err != nil {
			for _, fe := range FieldErrors(err) {
				if fe.File != "r" {
					t.Fatalf("error without the file: %v", fe)
				}
			}
			return
		}
		for _, r := range rs.List {
			if !recipientNameRe.MatchString(r.Name) || r.Line < 1 {
				t.Fatalf("accepted %+v", r)
			}
		}
	})
}

func FuzzParseSecret(f *testing.F) {
	f.Add(readTestdata(f, "db-password.age"))
	f.Add(readTestdata(f, "two.age"))
	f.Add("-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n")
	f.Add(encryptArmored(f, "v", scryptRecipient(f)))
	f.Add(encryptArmored(f, "v", extraStanza{testX25519(f), "~1Xy-grease"}))
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseSecret(text)
		if err == nil && (len(s.Stanzas) == 0 || slices.ContainsFunc(s.Stanzas, func(t string) bool { return t != "X25519" })) {
			t.Fatalf("accepted a secret with stanzas %q: %q", s.Stanzas, text)
		}
	})
}

// checkSecretLine: a rendered decrypt step runs Kaylee's script, as
// written, with exactly its directory, the identity file, a secret
// variable's name and that secret's ciphertext (see FuzzLoadRender).
func checkSecretLine(t *testing.T, spec *Spec, line string) {
	t.Helper()
	argv := execArgv(t, strings.ReplaceAll(line, "_%m", "_%%m"))
	if len(argv) != 8 || argv[2] != plainScript(secretScript) || argv[3] != "kaylee-secret" || argv[5] != SecretIdentityFile {
		t.Fatalf("decrypt step runs %q", argv)
	}
	for _, e := range spec.Env {
		if e.Name != argv[6] {
			continue
		}
		sec, err := ParseSecret(e.Secret)
		word := secretWord(sec)
		if err != nil || word != argv[7] && !(strings.HasPrefix(argv[7], "+") && strings.HasSuffix(word, argv[7][1:])) {
			t.Fatalf("decrypt step of %s holds another ciphertext (%v)", e.Name, err)
		}
		return
	}
	t.Fatalf("decrypt step of %q: no such secret", argv[6])
}

// TestSecretStepsLast: the decrypt steps (and the part steps of a long
// secret) are the last ExecStartPre lines, after the mount gate, the
// volume plugins, the engine's cleanup and pulls: a decrypted file lives
// on the machine's disk for as short a time as can be. For podman they
// come before the apps' podman create, which takes the values (-e NAME)
// from its environment, and after everything else.
func TestSecretStepsLast(t *testing.T) {
	for _, engine := range []string{EngineDocker, EnginePodman, EngineRkt} {
		t.Run(engine, func(t *testing.T) {
			s := loadOne(t, "testdata/render/secret-"+engine+".yaml")
			s.Env = append(s.Env, EnvVar{Name: "TLS_KEY", Secret: encryptTo(t, longClear, "keys.txt"), Recipients: []string{"db"}})
			s.Volumes = append(s.Volumes,
				Volume{ID: "vol-a7039121", Driver: "systemd-mountservice-ebs", Source: "data", Path: "/data"},
				Volume{ID: "vol-88bc607a", Driver: "blocker", Path: "/backup", Options: "-f ext4"})
			for i := range s.Apps {
				s.Apps[i].Pull = PullAlways
			}
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			units, err := Render(s, RenderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, l := range options(units[0], "Service", "ExecStartPre") {
				switch {
				case strings.Contains(l, "' kaylee-secret-part "):
					kinds = append(kinds, "part")
				case strings.Contains(l, "' kaylee-secret "):
					kinds = append(kinds, "decrypt")
				case strings.HasPrefix(l, PodmanPath+" create --pod "):
					kinds = append(kinds, "podman create")
				default:
					kinds = append(kinds, strings.Join(strings.Fields(l)[:2], " "))
				}
			}
			got := strings.Join(kinds, ", ")
			want := map[string]string{
				EngineDocker: "/usr/bin/systemctl is-active, /var/lib/kaylee/plugins/volumes/blocker vol-88bc607a, -/usr/bin/docker rm, /usr/bin/docker pull, decrypt, decrypt, part, part, part, decrypt",
				EnginePodman: "/usr/bin/systemctl is-active, /var/lib/kaylee/plugins/volumes/blocker vol-88bc607a, -/usr/bin/podman pod, /usr/bin/podman pod, decrypt, decrypt, part, part, part, decrypt, podman create",
				EngineRkt:    "/usr/bin/systemctl is-active, /var/lib/kaylee/plugins/volumes/blocker vol-88bc607a, -/usr/bin/rkt stop, -/usr/bin/rkt rm, /usr/bin/rkt fetch, decrypt, decrypt, part, part, part, decrypt",
			}[engine]
			if got != want {
				t.Errorf("ExecStartPre lines:\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestSecretChunks: a ciphertext is split so that every rendered line
// (for the longest instance directory a unit name allows) stays under
// fleet's limit, a ciphertext that just fits takes one line, and the
// parts and the decrypt step's word ("+" and the end) give the
// ciphertext back exactly. room is the most of it a decrypt line holds,
// measured on the rendered line.
func TestSecretChunks(t *testing.T) {
	dir := longestSecretDir()
	for _, nameLen := range []int{1, 20, MaxSecretNameLen} {
		name := strings.Repeat("N", nameLen)
		room := MaxLineLen - 1 - len("ExecStartPre="+secretStep(dir, name, "x")) + 1
		for _, size := range []int{1, room - 1, room, room + 1, 2*room + 1, MaxSecretLen * 4 / 3} {
			t.Run(fmt.Sprintf("name %d, %d bytes", nameLen, size), func(t *testing.T) {
				b64 := strings.Repeat("A", size-size%7) + "0123456789"[:size%7]
				parts, last := secretChunks(name, b64)
				if size <= room && len(parts) > 0 {
					t.Errorf("%d parts, want one line (room %d)", len(parts), room)
				}
				var lines []string
				for i, p := range parts {
					lines = append(lines, "ExecStartPre="+secretPartStep(dir, name, i, p))
				}
				lines = append(lines, "ExecStartPre="+secretStep(dir, name, last))
				for i, l := range lines {
					if len(l) >= MaxLineLen {
						t.Errorf("line %d of %d is %d bytes, fleet's limit %d", i, len(lines), len(l), MaxLineLen-1)
					}
				}
				if len(parts) > 0 && !strings.HasPrefix(last, "+") {
					t.Fatalf("last %.20q… has no + after %d parts", last, len(parts))
				}
				if len(parts) > 0 {
					last = last[1:]
				}
				if got := strings.Join(parts, "") + last; got != b64 {
					t.Errorf("parts and last give %d bytes back, want the %d of the ciphertext", len(got), len(b64))
				}
			})
		}
	}
}

// TestSecretStepFailures: when a decrypt (or part) step cannot do its
// work, it prints one line to the journal, the operator's reason, and
// exits 1, leaving no temporary file: no age tool on the machine, a
// directory it cannot make (a file where a parent should be: root is
// not stopped by modes), a file it cannot write (a directory in its
// place).
func TestSecretStepFailures(t *testing.T) {
	needBash(t)
	if _, err := os.Stat(AgePath); err != nil {
		skipOutsideCI(t, "no %s (Debian's package age): %v", AgePath, err)
	}
	keys, _ := filepath.Abs("testdata/secret/keys.txt")
	spec := func(long bool) *Spec {
		s := loadOne(t, "testdata/render/secret-docker.yaml")
		clear := "v"
		if long {
			clear = longClear
		}
		s.Env = []EnvVar{{Name: "V", Secret: encryptTo(t, clear, "keys.txt"), Recipients: []string{"db"}}}
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	// run runs the steps in order up to the first that fails, and
	// returns its stderr and exit code.
	run := func(argvs [][]string) (string, int) {
		for _, argv := range argvs {
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.Env = append(os.Environ(), "LC_ALL=C")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				code := -1
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				}
				return stderr.String(), code
			}
			if stderr.Len() > 0 {
				return stderr.String(), 0
			}
		}
		return "", 0
	}
	tmp := t.TempDir()
	file := filepath.Join(tmp, "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fakeAge := filepath.Join(tmp, "no", "age")
	// mkdir's own reason, as coreutils words it here.
	mkdir := exec.Command("mkdir", "-p", filepath.Join(file, "x"))
	mkdir.Env = append(os.Environ(), "LC_ALL=C")
	mkdirErr, _ := mkdir.CombinedOutput()
	if !strings.Contains(string(mkdirErr), "Not a directory") {
		t.Fatalf("mkdir under a file: %q", mkdirErr)
	}
	for _, tc := range []struct {
		name  string
		long  bool
		dir   string
		setup func(dir string)
		age   string
		want  string
	}{
		{name: "no age tool", dir: filepath.Join(tmp, "1", "k2_api"), age: fakeAge,
			want: "kaylee-secret: " + fakeAge + " is not installed on this machine; install Debian's age package\n"},
		{name: "no directory", dir: filepath.Join(file, "x", "k2_api"),
			want: "kaylee-secret: V: cannot create the directory " + filepath.Join(file, "x", "k2_api") + ": " + string(mkdirErr)},
		{name: "no directory for a part", long: true, dir: filepath.Join(file, "x", "k2_api"),
			want: "kaylee-secret: V: cannot create the directory " + filepath.Join(file, "x", "k2_api") + ": " + string(mkdirErr)},
		{name: "a directory in the file's place", dir: filepath.Join(tmp, "3", "k2_api"),
			setup: func(dir string) {
				if err := os.MkdirAll(filepath.Join(dir, "V"), 0o700); err != nil {
					t.Fatal(err)
				}
			},
			want: "kaylee-secret: V: cannot write " + filepath.Join(tmp, "3", "k2_api", "V") + ": mv: cannot overwrite directory '" + filepath.Join(tmp, "3", "k2_api", "V") + "' with non-directory\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup(tc.dir)
			}
			argvs := secretArgvs(t, spec(tc.long), tc.dir, keys)
			if tc.age != "" {
				for _, argv := range argvs {
					argv[2] = strings.ReplaceAll(argv[2], AgePath, tc.age)
				}
			}
			stderr, code := run(argvs)
			if stderr != tc.want || code != 1 {
				t.Errorf("exit %d, stderr %q\nwant exit 1, %q", code, stderr, tc.want)
			}
			left, _ := filepath.Glob(filepath.Join(tc.dir, ".*"))
			inside, _ := filepath.Glob(filepath.Join(tc.dir, "V", "*")) // dot files too
			if left = append(left, inside...); len(left) > 0 {
				t.Errorf("left behind: %q", left)
			}
		})
	}
}

// TestIsSecretsCleanup: the predicate fleetsim uses to tell the secrets'
// removal from a health check holds for both removals a unit with
// secrets renders, and for no other Exec line.
func TestIsSecretsCleanup(t *testing.T) {
	for _, path := range []string{"secret-docker", "secret-podman", "secret-rkt", "health-http", "docker"} {
		s := loadOne(t, "testdata/render/"+path+".yaml")
		if path == "health-http" {
			s.Env = append(s.Env, EnvVar{Name: "P", Secret: readTestdata(t, "db-password.age"), Recipients: []string{"db"}})
		}
		units, err := Render(s, RenderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		id := strings.TrimSuffix(strings.TrimPrefix(options(units[0], "Service", "Environment")[0], `"KAYLEE_ID=`), `"`)
		var got []string
		for _, o := range units[0].Options {
			if strings.HasPrefix(o.Name, "Exec") && IsSecretsCleanup(o.Value) {
				got = append(got, o.Name+"="+o.Value)
			}
		}
		want := "ExecStartPost=/bin/rm -rf " + SecretsDir + "/" + id + ", ExecStopPost=-/bin/rm -rf " + SecretsDir + "/" + id
		if path == "docker" {
			want = ""
		}
		if strings.Join(got, ", ") != want {
			t.Errorf("%s: removals %q, want %s", path, got, want)
		}
	}
	for _, l := range []string{"/bin/rm -rf " + SecretsDir, "/bin/rm -rf /run/kaylee/evidence/x", "/bin/bash -c 'check' kaylee-health /bin/rm -rf " + SecretsDir + "/x"} {
		if IsSecretsCleanup(l) {
			t.Errorf("%q taken for the secrets' removal", l)
		}
	}
}

// TestSecretStepsIgnoreTheUnitsEnv runs the decrypt steps as systemd
// does, with the unit's env: (its Environment= lines) in theirs. A unit
// that sets SHELLOPTS=xtrace or BASH_ENV (a file that turns tracing on)
// must not make bash print the clear value (the journal feeds the
// failure evidence), nor a PATH without the system's directories, nor a
// locale, stop the decrypt.
func TestSecretStepsIgnoreTheUnitsEnv(t *testing.T) {
	needBash(t)
	if _, err := os.Stat(AgePath); err != nil {
		skipOutsideCI(t, "no %s (Debian's package age): %v", AgePath, err)
	}
	keys, _ := filepath.Abs("testdata/secret/keys.txt")
	trace := filepath.Join(t.TempDir(), "trace.sh")
	if err := os.WriteFile(trace, []byte("set -x\necho BASH_ENV ran >&2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := loadOne(t, "testdata/render/secret-docker.yaml")
	s.Env = []EnvVar{{Name: "V", Secret: encryptTo(t, secretClear, "keys.txt"), Recipients: []string{"db"}}, {Name: "L", Secret: encryptTo(t, longClear, "keys.txt"), Recipients: []string{"db"}}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, env := range [][]string{
		{"SHELLOPTS=xtrace"},
		{"BASH_ENV=" + trace},
		{"ENV=" + trace, "SHELLOPTS=xtrace:verbose"},
		{"PATH=/nonexistent"},
		{"BASHOPTS=xpg_echo", "IFS=$"},
	} {
		t.Run(strings.Join(env, " "), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run", "k2_api")
			for _, argv := range secretArgvs(t, s, dir, keys) {
				cmd := exec.Command(argv[0], argv[1:]...)
				cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
				out, err := cmd.CombinedOutput()
				if err != nil || len(out) > 0 {
					t.Fatalf("%s %s: %v; printed %q, want nothing", argv[3], argv[5], err, out)
				}
			}
			for name, want := range map[string]string{"V": secretClear, "L": longClear} {
				got, err := exec.Command(BashPath, "-c", `set -a; . "$1"; printf %s "$`+name+`"`, "x", filepath.Join(dir, name)).Output()
				if err != nil || string(got) != want {
					t.Errorf("%s: %q (%v), want %q", name, got, err, want)
				}
			}
		})
	}
}
