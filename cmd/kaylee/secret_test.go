package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	agelib "filippo.io/age"
	"filippo.io/age/armor"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// kayleeStdin runs the CLI in-process with stdin.
func kayleeStdin(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &stdio{in: strings.NewReader(stdin), out: &out, err: &errb}, func(string) string { return "" })
	return result{code, out.String(), errb.String()}
}

func secretTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "testdata", "secret", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// decryptEntry decrypts the secret of an env entry with an identity
// file's content.
func decryptEntry(t *testing.T, secret, identity string) (string, error) {
	t.Helper()
	ids, err := agelib.ParseIdentities(strings.NewReader(identity))
	if err != nil {
		t.Fatal(err)
	}
	r, err := agelib.Decrypt(armor.NewReader(strings.NewReader(secret)), ids...)
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(r)
	return string(b), err
}

// TestSecretEncrypt: the entry printed loads as a valid unit's env, and
// its secret decrypts with the recipients' identities (deploy's
// testdata keys) to the value on stdin, less one trailing newline.
func TestSecretEncrypt(t *testing.T) {
	// Not parallel: t.Chdir (the secret commands find .kaylee/recipients
	// from the working directory).
	dir := writeFiles(t, map[string]string{".kaylee/recipients": secretTestdata(t, "recipients")})
	identities := map[string]string{"keys.txt": secretTestdata(t, "keys.txt"), "other.txt": secretTestdata(t, "other.txt")}
	t.Chdir(dir)
	const value = "pa$$ \"w0rd\" `x` \\ end\n"
	for _, tc := range []struct {
		name       string
		args       []string
		recipients []string
		decrypts   []string // identity files that decrypt it
	}{
		{"to db", []string{"--to", "db", "--name", "DB_PASSWORD"}, []string{"db"}, []string{"keys.txt"}},
		{"to db and ops", []string{"--to", "db,ops", "--name", "DB_PASSWORD"}, []string{"db", "ops"}, []string{"keys.txt", "other.txt"}},
		{"without a name, from a named file", []string{"--to", "ops", "--recipients", filepath.Join(dir, ".kaylee", "recipients")}, []string{"ops"}, []string{"other.txt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := kayleeStdin(t, value, append([]string{"secret", "encrypt"}, tc.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.err)
			}
			entry := r.stdout
			if !strings.HasPrefix(entry, "- name: DB_PASSWORD\n  secret: |\n    -----BEGIN AGE ENCRYPTED FILE-----\n") {
				if !strings.HasPrefix(entry, "  secret: |\n    -----BEGIN AGE ENCRYPTED FILE-----\n") {
					t.Fatalf("entry:\n%s", entry)
				}
				entry = "- name: DB_PASSWORD\n" + entry
				if !strings.Contains(r.err, "put these lines under the env entry's - name: line") {
					t.Errorf("stderr: %s", r.err)
				}
			}
			unit := "name: db\nengine: docker\nmachine: [role=db]\napps:\n- image: docker://db\nenv:\n" + entry
			docs, err := deploy.Load("units/db.yaml", []byte(unit))
			if err != nil {
				t.Fatalf("the entry does not load: %v\n%s", err, unit)
			}
			e := docs[0].Spec.Env[0]
			if e.Name != "DB_PASSWORD" || e.Value != "" || strings.Join(e.Recipients, ",") != strings.Join(tc.recipients, ",") {
				t.Fatalf("env entry %+v", e)
			}
			for _, id := range tc.decrypts {
				got, err := decryptEntry(t, e.Secret, identities[id])
				if err != nil || got != strings.TrimSuffix(value, "\n") {
					t.Errorf("decrypted with %s: %q, %v; want %q", id, got, err, strings.TrimSuffix(value, "\n"))
				}
			}
			if len(tc.decrypts) == 1 {
				other := map[string]string{"keys.txt": "other.txt", "other.txt": "keys.txt"}[tc.decrypts[0]]
				if _, err := decryptEntry(t, e.Secret, identities[other]); err == nil {
					t.Errorf("%s decrypts it too", other)
				}
			}
		})
	}

	for _, tc := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"an unknown name", "x", []string{"--to", "db,web"}, `kaylee: --to: "web" is not a recipient of .kaylee/recipients (it names db, ops)`},
		{"a name twice", "x", []string{"--to", "db,db"}, "kaylee: --to: db is given twice"},
		{"no --to", "x", nil, "kaylee: --to: name the recipients"},
		{"nothing on stdin", "\n", []string{"--to", "db"}, "kaylee: no value on stdin: give it there, e.g. kaylee secret encrypt --to db < pw.txt"},
		{"a bad variable name", "x", []string{"--to", "db", "--name", "DB PASSWORD"}, `kaylee: the entry would be refused: --name "DB PASSWORD": `},
		{"no recipients file", "x", []string{"--to", "db", "--recipients", filepath.Join(dir, "nope")}, "kaylee: " + filepath.Join(dir, "nope") + ": the recipients file cannot be read: "},
		{"the value as an argument", "x", []string{"--to", "db", "s3cret"}, `unknown command "s3cret" for "kaylee secret encrypt"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := kayleeStdin(t, tc.stdin, append([]string{"secret", "encrypt"}, tc.args...)...)
			if r.code != 1 || r.stdout != "" || !strings.Contains(r.err, tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr:\n%s\nwant %q", r.code, r.stdout, r.err, tc.want)
			}
		})
	}
}

// secretRepo is a checkout with a recipients file (db: role=db, ops: *)
// and two units with a secret encrypted to db: db runs on role=db
// machines (covered), api anywhere (not).
func secretRepo(t *testing.T, recipients string) string {
	t.Helper()
	one := "    " + strings.ReplaceAll(strings.TrimSpace(secretTestdata(t, "db-password.age")), "\n", "\n    ")
	unit := func(name, machine string) string {
		return "name: " + name + "\nengine: docker\n" + machine + "apps:\n- image: docker://" + name + "\nenv:\n- name: DB_PASSWORD\n  secret: |\n" + one + "\n  recipients: [db]\n"
	}
	files := map[string]string{
		".git/HEAD":      "ref: refs/heads/main\n",
		"units/db.yaml":  unit("db", "machine: [role=db]\n"),
		"units/api.yaml": unit("api", ""),
		"units/web.yaml": "name: web\nengine: docker\napps:\n- image: docker://web\n",
	}
	if recipients != "" {
		files[".kaylee/recipients"] = recipients
	}
	return writeFiles(t, files)
}

// TestSecretCheck: a table of each secret with its recipients, the
// machines its unit may run on and who covers them, or the problem at
// FILE:LINE; exit 1 when one cannot be decrypted where its unit may run.
func TestSecretCheck(t *testing.T) {
	// Not parallel: t.Chdir (the secret commands find .kaylee/recipients
	// from the working directory).
	rcp := secretTestdata(t, "recipients")
	dir := secretRepo(t, rcp)
	apiProblem := "env[0].recipients: no recipient's machines include every machine api may run on (any machine; db: role=db): encrypt it also to a recipient of those machines (* for every machine), or constrain machine:"

	t.Run("the current directory", func(t *testing.T) {
		t.Chdir(dir)
		r := kaylee(t, nil, "secret", "check")
		want := "UNIT  VAR          RECIPIENTS  RUNS ON                COVERED BY\n" +
			"api   DB_PASSWORD  db          any machine            units/api.yaml:15: " + apiProblem + "\n" +
			"db    DB_PASSWORD  db          machines with role=db  db\n" +
			"recipients from .kaylee/recipients; 1 of the 2 secrets cannot be decrypted on every machine their unit may run on\n"
		if r.code != 1 || r.stdout != want || r.err != "" {
			t.Fatalf("exit %d, stdout:\n%s\nwant:\n%s\nstderr: %s", r.code, r.stdout, want, r.err)
		}
	})
	t.Run("a covered unit", func(t *testing.T) {
		t.Chdir(dir)
		r := kaylee(t, nil, "secret", "check", "units/db.yaml", "units/web.yaml")
		want := "UNIT  VAR          RECIPIENTS  RUNS ON                COVERED BY\n" +
			"db    DB_PASSWORD  db          machines with role=db  db\n" +
			"recipients from .kaylee/recipients; each of the 1 secrets can be decrypted on every machine its unit may run on\n"
		if r.code != 0 || r.stdout != want {
			t.Fatalf("exit %d, stdout:\n%s\nwant:\n%s\nstderr: %s", r.code, r.stdout, want, r.err)
		}
	})
	t.Run("from a subdirectory: the repository root's recipients, json", func(t *testing.T) {
		t.Chdir(filepath.Join(dir, "units"))
		r := kaylee(t, nil, "secret", "check", "-o", "json", ".")
		var got []secretCheckJSON
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("%v: %s", err, r.stdout)
		}
		if r.code != 1 || len(got) != 2 || got[0].Unit != "api" || got[0].Problem != "api.yaml:15: "+apiProblem || len(got[0].CoveredBy) != 0 ||
			got[1].Unit != "db" || got[1].Problem != "" || strings.Join(got[1].CoveredBy, ",") != "db" || got[1].File != "db.yaml" || got[1].Line != 8 || got[1].RunsOn != "machines with role=db" {
			t.Fatalf("exit %d: %+v", r.code, got)
		}
	})
	t.Run("no recipients file", func(t *testing.T) {
		t.Chdir(secretRepo(t, ""))
		r := kaylee(t, nil, "secret", "check", "units/db.yaml")
		if r.code != 1 || !strings.Contains(r.stdout, "units/db.yaml:8: env[0].secret: the repository has no .kaylee/recipients naming the recipients of its secrets") ||
			!strings.Contains(r.stdout, "no recipients file; 1 of the 1 secrets cannot be decrypted") {
			t.Fatalf("exit %d, stdout:\n%s", r.code, r.stdout)
		}
	})
	t.Run("a recipients file that does not parse", func(t *testing.T) {
		t.Chdir(secretRepo(t, rcp+"web age1nope role=web\n"))
		r := kaylee(t, nil, "secret", "check")
		if r.code != 1 || r.stdout != "" || !strings.HasPrefix(r.err, `.kaylee/recipients:4: web: "age1nope" is not an age public key`) {
			t.Fatalf("exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.err)
		}
	})
	t.Run("no secrets", func(t *testing.T) {
		t.Chdir(dir)
		r := kaylee(t, nil, "secret", "check", "units/web.yaml")
		if r.code != 0 || r.stdout != "no secrets in these unit files\n" {
			t.Fatalf("exit %d, stdout %q", r.code, r.stdout)
		}
	})
}

// TestValidateChecksSecrets: kaylee validate checks secrets against the
// recipients file it finds (the repository root's, from a path in it) and
// reports the problems as file errors; without one, it checks nothing.
func TestValidateChecksSecrets(t *testing.T) {
	t.Parallel()
	dir := secretRepo(t, secretTestdata(t, "recipients"))
	r := kaylee(t, nil, "validate", filepath.Join(dir, "units"))
	wantErr := filepath.Join(dir, "units", "api.yaml") + ":15: env[0].recipients: no recipient's machines include every machine api may run on"
	if r.code != 1 || !strings.HasPrefix(r.err, wantErr) || strings.Count(r.err, "\n") != 1 {
		t.Fatalf("exit %d, stderr:\n%s\nwant %s…", r.code, r.err, wantErr)
	}
	if r.stdout != "db: engine docker (its own)\nweb: engine docker (its own)\n" {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	bare := secretRepo(t, "")
	wantErr = filepath.Join(bare, "units", "api.yaml") + ":7: env[0].secret: the repository has no .kaylee/recipients naming the recipients of its secrets: add one (see Secrets in Kaylee's README)\n" +
		filepath.Join(bare, "units", "db.yaml") + ":8: env[0].secret: the repository has no .kaylee/recipients naming the recipients of its secrets: add one (see Secrets in Kaylee's README)\n"
	if r := kaylee(t, nil, "validate", filepath.Join(bare, "units")); r.code != 1 || r.err != wantErr || r.stdout != "web: engine docker (its own)\n" {
		t.Fatalf("without a recipients file: exit %d, stdout %q, stderr:\n%s\nwant:\n%s", r.code, r.stdout, r.err, wantErr)
	}
}

// gitRepo is secretRepo made a real git repository (git init).
func gitRepo(t *testing.T, recipients string) string {
	t.Helper()
	dir := secretRepo(t, recipients)
	if err := os.RemoveAll(filepath.Join(dir, ".git")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("git", "init", "-q", dir).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v: %s", err, out)
	}
	return dir
}

// TestValidateSecretsRecipients: kaylee validate finds the recipients
// file in the git repository of the files it validates (as kaylee sync
// reads that repository's), else in the current directory; a repository
// with secrets and none fails at each secret's line, as sync would.
func TestValidateSecretsRecipients(t *testing.T) {
	// Not parallel: t.Chdir (the secret commands find .kaylee/recipients
	// from the working directory).
	rcp := secretTestdata(t, "recipients")
	opsOnly := strings.Join(strings.Split(rcp, "\n")[2:], "\n") // no db
	const noFile = "env[0].secret: the repository has no .kaylee/recipients naming the recipients of its secrets: add one (see Secrets in Kaylee's README)\n"
	const apiUncovered = "api.yaml:15: env[0].recipients: no recipient's machines include every machine api may run on (any machine; db: role=db): encrypt it also to a recipient of those machines (* for every machine), or constrain machine:\n"
	for _, tc := range []struct {
		name      string
		repo, cwd string // the recipients files of the units' repository and of the current directory ("-": not a repository, none)
		cwdIsRepo bool
		relative  bool // validate units, from the repository
		wantErr   string
	}{
		{"a repository without one, from it", "", "-", false, true,
			"units/api.yaml:7: " + noFile + "units/db.yaml:8: " + noFile},
		{"a repository without one, from another with one", "", rcp, true, false,
			"REPO/units/api.yaml:7: " + noFile + "REPO/units/db.yaml:8: " + noFile},
		{"the units' repository's, not the current directory's", rcp, opsOnly, true, false,
			"REPO/units/" + apiUncovered},
		{"the units' repository's, from a directory outside any", rcp, "-", false, false,
			"REPO/units/" + apiUncovered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := gitRepo(t, tc.repo)
			cwd := repo
			if !tc.relative {
				cwd = t.TempDir()
				if tc.cwdIsRepo {
					cwd = gitRepo(t, "")
					if err := os.RemoveAll(filepath.Join(cwd, "units")); err != nil {
						t.Fatal(err)
					}
				}
				if tc.cwd != "-" {
					if err := os.MkdirAll(filepath.Join(cwd, ".kaylee"), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(cwd, ".kaylee", "recipients"), []byte(tc.cwd), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			t.Chdir(cwd)
			path := filepath.Join(repo, "units")
			if tc.relative {
				path = "units"
			}
			r := kaylee(t, nil, "validate", path)
			want := strings.ReplaceAll(tc.wantErr, "REPO", repo)
			if r.code != 1 || r.err != want {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit 1 and:\n%s", r.code, r.err, want)
			}
		})
	}
	t.Run("no repository: the current directory's", func(t *testing.T) {
		units := secretRepo(t, "")
		if err := os.RemoveAll(filepath.Join(units, ".git")); err != nil {
			t.Fatal(err)
		}
		t.Chdir(writeFiles(t, map[string]string{".kaylee/recipients": rcp}))
		r := kaylee(t, nil, "validate", filepath.Join(units, "units"))
		if want := filepath.Join(units, "units") + "/" + apiUncovered; r.code != 1 || r.err != want {
			t.Fatalf("exit %d, stderr:\n%s\nwant exit 1 and:\n%s", r.code, r.err, want)
		}
	})
}

// TestSyncOnceSecrets, on etcd and git: kaylee sync --once refuses a unit
// whose secret cannot be decrypted where it may run (FILE:LINE, exit 1)
// and applies the others; a rotation shows as two fingerprints.
func TestSyncOnceSecrets(t *testing.T) {
	t.Parallel()
	one, two := secretTestdata(t, "db-password.age"), secretTestdata(t, "two.age")
	indent := func(s string) string { return "    " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n    ") }
	unit := func(name, machine, recipients, text string) string {
		return "name: " + name + "\nengine: docker\n" + machine + "apps:\n- image: docker://" + name + "\nenv:\n- name: DB_PASSWORD\n  secret: |\n" + indent(text) + "\n  recipients: [" + recipients + "]\n"
	}
	e := etcdtest.New(t)
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{
		".kaylee/recipients": secretTestdata(t, "recipients"),
		"units/db.yaml":      unit("db", "machine: [role=db]\n", "db", one),
		"units/api.yaml":     unit("api", "", "db", one),
	})
	repo.Commit("secrets")
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_CACHE_DIR": t.TempDir()}
	args := []string{"sync", "--once", "--repo", repo.FileURL(), "--path", "units"}
	r := kaylee(t, env, args...)
	want := "units/api.yaml:15: env[0].recipients: no recipient's machines include every machine api may run on (any machine; db: role=db)"
	if r.code != 1 || !strings.Contains(r.err, want) || !strings.Contains(r.stdout, "1 created") {
		t.Fatalf("exit %d\n%s%s\nwant on stderr %s", r.code, r.stdout, r.err, want)
	}
	if s := storedUnits(t, e); s["api"] != "" || !strings.Contains(s["db"], "BEGIN AGE") {
		t.Fatalf("stored: %v", s)
	}

	repo.Write(map[string]string{"units/db.yaml": unit("db", "machine: [role=db]\n", "db, ops", two), "units/api.yaml": ""})
	repo.Commit("rotate")
	r = kaylee(t, env, append(args, "--dry-run")...)
	rotated := fmt.Sprintf(`~ env: [{"name":"DB_PASSWORD","recipients":["db"],"secret":"%s","value":""}] → [{"name":"DB_PASSWORD","recipients":["db","ops"],"secret":"%s","value":""}]`,
		deploy.SecretFingerprint(one), deploy.SecretFingerprint(two))
	if r.code != 0 || !strings.Contains(r.stdout, rotated) || strings.Contains(r.stdout+r.err, "BEGIN AGE") {
		t.Fatalf("rotation: exit %d\n%s%s\nwant\n%s", r.code, r.stdout, r.err, rotated)
	}
}

// kaylee plan PATH reads the recipients as kaylee validate finds them.
func TestLocalFilesRecipients(t *testing.T) {
	// Not parallel: t.Chdir (the secret commands find .kaylee/recipients
	// from the working directory).
	dir := secretRepo(t, secretTestdata(t, "recipients"))
	snap, err := localFiles{filepath.Join(dir, "units")}.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if snap.Recipients == nil || snap.Recipients.Path != filepath.Join(dir, ".kaylee", "recipients") || !strings.Contains(string(snap.Recipients.Data), "role=db") {
		t.Fatalf("recipients %+v", snap.Recipients)
	}
	bare := secretRepo(t, "")
	// From a directory with another recipients file: still the units'.
	t.Chdir(writeFiles(t, map[string]string{".kaylee/recipients": "# none\n"}))
	snap, err = localFiles{filepath.Join(dir, "units")}.Fetch(context.Background())
	if err != nil || snap.Recipients == nil || snap.Recipients.Path != filepath.Join(dir, ".kaylee", "recipients") {
		t.Fatalf("from elsewhere: recipients %+v, %v", snap.Recipients, err)
	}
	snap, err = localFiles{filepath.Join(bare, "units")}.Fetch(context.Background())
	if err != nil || snap.Recipients != nil {
		t.Fatalf("without a recipients file: %+v %v", snap.Recipients, err)
	}
}

// kaylee plan PATH refuses a unit with a secret when the units'
// repository has no recipients file, as kaylee sync does.
func TestPlanSecretsWithoutRecipients(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	dir := secretRepo(t, "")
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_CACHE_DIR": t.TempDir()}
	r := kaylee(t, env, "plan", "--source", "main", filepath.Join(dir, "units"))
	want := filepath.Join(dir, "units", "db.yaml") + ":8: env[0].secret: the repository has no .kaylee/recipients naming the recipients of its secrets: add one (see Secrets in Kaylee's README)"
	if r.code != 1 || !strings.Contains(r.err, want) {
		t.Fatalf("exit %d\n%s%s\nwant on stderr %s", r.code, r.stdout, r.err, want)
	}
}

// TestSecretEncryptValue: encrypt takes a value the machine can hand to
// the process unchanged, or refuses it with the byte at fault and what to
// do: systemd drops a variable whose value is not UTF-8 or holds control
// characters, and a value's trailing newlines. One trailing newline
// (echo's) is dropped, and stderr says so.
func TestSecretEncryptValue(t *testing.T) {
	// Not parallel: t.Chdir (the secret commands find .kaylee/recipients
	// from the working directory).
	dir := writeFiles(t, map[string]string{".kaylee/recipients": secretTestdata(t, "recipients")})
	keys := secretTestdata(t, "keys.txt")
	t.Chdir(dir)
	const dropped = "kaylee: the trailing newline of the input was dropped (systemd drops it)\n"
	const binary = "systemd drops an environment variable whose value is not valid UTF-8 (before version 248 also one holding control characters other than newline and tab), and the process would start without it: base64-encode binary data and decode it in the process"
	for _, tc := range []struct {
		name, stdin string
		to          string
		want        string // the decrypted value; "" when refused
		stderr      string // all of it when accepted; its start when refused
	}{
		{"echo's newline", "s3cret\n", "db", "s3cret", dropped},
		{"no newline", "s3cret", "db", "s3cret", ""},
		{"lines, tab, CR, UTF-8", "naïve 🔑\tx\r\nline 2\r\nend", "db", "naïve 🔑\tx\r\nline 2\r\nend", ""},
		{"the longest value, 1 recipient", strings.Repeat("x", 11848) + "\n", "db", strings.Repeat("x", 11848), dropped},
		{"the longest value, 2 recipients", strings.Repeat("x", 11750), "db,ops", strings.Repeat("x", 11750), ""},
		{"two trailing newlines", "s3cret\n\n", "db", "",
			"kaylee: the value ends with 2 newlines: systemd drops a value's trailing newlines, so the process would not get them; one (echo's) is dropped here: give the value without the others\n"},
		{"a CRLF line end after echo's newline", "s3cret\r\n\n", "db", "",
			"kaylee: the value ends with 2 newlines: "},
		{"a NUL", "ab\x00cd", "db", "", "kaylee: the value has a NUL byte at byte offset 2: " + binary + "\n"},
		{"not UTF-8", "abc\xff\xfe", "db", "", "kaylee: the value has a byte that is not UTF-8 (0xff) at byte offset 3: " + binary + "\n"},
		{"an escape", "é\x1b[0m", "db", "", "kaylee: the value has the control character 0x1b at byte offset 2: " + binary + "\n"},
		{"a DEL", "x\x7f", "db", "", "kaylee: the value has the control character 0x7f at byte offset 1: "},
		{"too long for 1 recipient", strings.Repeat("x", 11849), "db", "",
			"kaylee: the value is 11849 bytes; encrypted to 1 recipient it can be at most 11848 (a unit's secret is at most 16384 bytes armored; each further recipient leaves 98 bytes less for the value): keep a longer one in a file on the machines and name it in envFiles\n"},
		{"too long for 2 recipients", strings.Repeat("x", 11751) + "\n", "db,ops", "",
			"kaylee: the value is 11751 bytes; encrypted to 2 recipients it can be at most 11750 "},
		{"far too long", strings.Repeat("x", 100<<10), "db", "", "kaylee: the value is over 16384 bytes; encrypted to 1 recipient it can be at most 11848 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := kayleeStdin(t, tc.stdin, "secret", "encrypt", "--to", tc.to, "--name", "V")
			if tc.want == "" {
				if r.code != 1 || r.stdout != "" || !strings.HasPrefix(r.err, tc.stderr) {
					t.Fatalf("exit %d, stdout %q, stderr:\n%s\nwant exit 1 and stderr starting\n%s", r.code, r.stdout, r.err, tc.stderr)
				}
				return
			}
			if r.code != 0 || r.err != tc.stderr {
				t.Fatalf("exit %d, stderr %q; want 0 and %q", r.code, r.err, tc.stderr)
			}
			docs, err := deploy.Load("u.yaml", []byte("name: u\nengine: docker\napps:\n- image: docker://u\nenv:\n"+r.stdout))
			if err != nil {
				t.Fatalf("the entry does not load: %v", err)
			}
			if got, err := decryptEntry(t, docs[0].Spec.Env[0].Secret, keys); err != nil || got != tc.want {
				t.Fatalf("decrypted %q (%d bytes), %v; want %d bytes", got, len(got), err, len(tc.want))
			}
		})
	}
}

// TestMaxSecretValue: the longest value encrypt takes, encrypted to 1, 2
// or 3 recipients (age's own encryption, with fresh keys), is a secret
// deploy takes; one byte more is not.
func TestMaxSecretValue(t *testing.T) {
	t.Parallel()
	var keys []agelib.Recipient
	for n, want := range []int{11848, 11750, 11652} {
		id, err := agelib.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, id.Recipient())
		names := []string{"a", "b", "c"}[:n+1]
		if got := maxSecretValue(len(keys)); got != want {
			t.Errorf("%d recipients: maxSecretValue %d, want %d", len(keys), got, want)
		}
		entry, err := encryptEntry([]byte(strings.Repeat("x", want)), keys, names, "V")
		if err != nil {
			t.Fatalf("%d recipients, %d bytes: %v", len(keys), want, err)
		}
		docs, err := deploy.Load("u.yaml", []byte("name: u\nengine: docker\napps:\n- image: docker://u\nenv:\n"+entry))
		if err != nil || len(docs[0].Spec.Env[0].Secret) > deploy.MaxSecretLen {
			t.Fatalf("%d recipients, %d bytes: %v", len(keys), want, err)
		}
		if _, err := encryptEntry([]byte(strings.Repeat("x", want+1)), keys, names, "V"); err == nil || !strings.Contains(err.Error(), "at most 16384") {
			t.Errorf("%d recipients, %d bytes: %v; want it over deploy's limit", len(keys), want+1, err)
		}
	}
}
