package sync

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/store"
)

// secretFixture reads deploy's test secrets: db-password.age (to the db
// recipient), two.age (to db and ops), recipients (db: role=db, ops: *).
func secretFixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "deploy", "testdata", "secret", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// secretUnit is a unit with one secret, DB_PASSWORD (its secret: on line
// 7 with a machine line, 6 without; its recipients: 9 lines below).
func secretUnit(name, machine, recipients, text string) string {
	y := "name: " + name + "\nengine: docker\n"
	if machine != "" {
		y += "machine: [" + machine + "]\n"
	}
	y += "apps:\n- image: docker://" + name + "\nenv:\n- name: DB_PASSWORD\n  secret: |\n    " +
		strings.ReplaceAll(strings.TrimSpace(text), "\n", "\n    ") + "\n  recipients: [" + recipients + "]\n"
	return y
}

// TestPlanSecrets: the secrets phase holds a unit whose secret the
// recipients cannot decrypt everywhere it may run (the error at FILE:LINE
// of its field), and only it: the other units of the revision apply.
func TestPlanSecrets(t *testing.T) {
	one, two, rcp := secretFixture(t, "db-password.age"), secretFixture(t, "two.age"), secretFixture(t, "recipients")
	dbUnit := secretUnit("db", "role=db", "db", one)
	anywhere := secretUnit("api", "", "db", one)
	tests := []struct {
		name       string
		world      world
		files      map[string]string
		recipients string // .kaylee/recipients; "-" none
		unreadable bool   // .kaylee/recipients is a file error of the snapshot
		changes    string
		puts       string
		errors     []string
	}{
		{name: "covered: db's machines only, and every machine through ops",
			files:   map[string]string{"db.yaml": dbUnit, "api.yaml": secretUnit("api", "", "db, ops", two)},
			changes: "api:create db:create", puts: "api db"},
		{name: "not covered: not created, the others are",
			files:   map[string]string{"db.yaml": dbUnit, "api.yaml": anywhere, "b.yaml": unitFile("b", 1)},
			changes: "b:create db:create", puts: "b db",
			errors: []string{"api.yaml:15: env[0].recipients: no recipient's machines include every machine api may run on (any machine; db: role=db): encrypt it also to a recipient of those machines (* for every machine), or constrain machine:"}},
		{name: "not covered: the stored unit is left as it was",
			world:   world{units: map[string]int{"api": 1, "b": 1}, owns: map[string][]string{"src": {"api", "b"}}},
			files:   map[string]string{"api.yaml": anywhere, "b.yaml": unitFile("b", 2)},
			changes: "api:held b:update", puts: "b",
			errors: []string{"api.yaml:15: env[0].recipients: no recipient's machines include"}},
		{name: "an unknown recipient",
			files:   map[string]string{"db.yaml": secretUnit("db", "role=db", "dbb", one)},
			changes: "",
			errors:  []string{`db.yaml:16: env[0].recipients[0]: "dbb" is not in .kaylee/recipients (did you mean "db"?)`}},
		{name: "no recipients file", recipients: "-",
			files:   map[string]string{"db.yaml": dbUnit, "b.yaml": unitFile("b", 1)},
			changes: "b:create", puts: "b",
			errors: []string{"db.yaml:8: env[0].secret: the repository has no .kaylee/recipients naming the recipients of its secrets"}},
		{name: "a recipients file that does not parse holds every unit with a secret",
			recipients: rcp + "web age1nope role=web\n",
			world:      world{units: map[string]int{"db": 1}, owns: map[string][]string{"src": {"db"}}},
			files:      map[string]string{"db.yaml": dbUnit, "b.yaml": unitFile("b", 1)},
			changes:    "b:create db:held", puts: "b",
			errors: []string{
				`.kaylee/recipients:4: web: "age1nope" is not an age public key`,
				"db.yaml:8: env[0].secret: not checked: .kaylee/recipients has errors (listed with this one); db is left as it was until they are fixed",
			}},
		{name: "a recipients file that cannot be read holds them too", unreadable: true,
			files:   map[string]string{"db.yaml": dbUnit, "b.yaml": unitFile("b", 1)},
			changes: "b:create", puts: "b",
			errors: []string{
				".kaylee/recipients: symlink to /etc/x leaves the repository; not followed",
				"db.yaml:8: env[0].secret: not checked: .kaylee/recipients has errors",
			}},
		{name: "a broken recipients file without secrets is an error, and holds nothing",
			recipients: "db\n",
			files:      map[string]string{"b.yaml": unitFile("b", 1)},
			changes:    "b:create", puts: "b",
			errors: []string{".kaylee/recipients:1: want three fields"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := snapshot(tt.files)
			switch {
			case tt.unreadable:
				snap.Errors = append(snap.Errors, &gitsource.FileError{Path: deploy.RecipientsFile, Err: errors.New("symlink to /etc/x leaves the repository; not followed")})
			case tt.recipients == "":
				snap.Recipients = &gitsource.File{Path: deploy.RecipientsFile, Data: []byte(rcp)}
			case tt.recipients != "-":
				snap.Recipients = &gitsource.File{Path: deploy.RecipientsFile, Data: []byte(tt.recipients)}
			}
			p, _ := parse(context.Background(), snap, "")
			o := Options{Source: "src", Now: func() time.Time { return time.Unix(0, 0) }}
			cs, err := plan(snap, p, tt.world.state(t), o)
			if err != nil {
				t.Fatal(err)
			}
			if got := changes(cs.Result); got != tt.changes {
				t.Errorf("changes %q, want %q", got, tt.changes)
			}
			var puts []string
			for _, p := range cs.Puts {
				puts = append(puts, p.Name)
			}
			if got := strings.Join(puts, " "); got != tt.puts {
				t.Errorf("puts %q, want %q", got, tt.puts)
			}
			var errs []string
			for _, e := range cs.Result.Errors {
				errs = append(errs, e.String())
			}
			if len(errs) != len(tt.errors) {
				t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(errs, "\n"), strings.Join(tt.errors, "\n"))
			}
			for i, want := range tt.errors {
				if !strings.HasPrefix(errs[i], want) {
					t.Errorf("error %d:\n%s\nwant:\n%s…", i, errs[i], want)
				}
			}
			for name := range cs.Record.Inventory {
				if !strings.Contains(" "+tt.changes, " "+name+":") {
					t.Errorf("%s in the inventory, not in the changes", name)
				}
			}
		})
	}
}

// TestDiffMasksSecrets: a rotated secret shows in a pass's field diff (and
// so in its events and kaylee sync's output) as two fingerprints, never
// its ciphertext.
func TestDiffMasksSecrets(t *testing.T) {
	one, two := secretFixture(t, "db-password.age"), secretFixture(t, "two.age")
	load := func(y string) []byte {
		docs, err := deploy.Load("api.yaml", []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		return docs[0].Spec.CanonicalJSON()
	}
	before := load(secretUnit("api", "", "db", one))
	after := load(secretUnit("api", "", "db, ops", two))
	diff := strings.Join(diffJSON(before, after), "\n")
	fa, fb := deploy.SecretFingerprint(one), deploy.SecretFingerprint(two)
	want := `~ env: [{"name":"DB_PASSWORD","recipients":["db"],"secret":"` + fa + `","value":""}] → [{"name":"DB_PASSWORD","recipients":["db","ops"],"secret":"` + fb + `","value":""}]`
	if diff != want {
		t.Fatalf("diff:\n%s\nwant:\n%s", diff, want)
	}
	if strings.Contains(diff, "BEGIN AGE") || strings.Contains(diff, strings.Split(one, "\n")[1]) {
		t.Fatalf("the diff shows the ciphertext: %s", diff)
	}
	// Added and removed: masked too; a plain env is shown as it is.
	if got := strings.Join(diffJSON(load(unitFile("api", 1)), before), "\n"); !strings.Contains(got, `+ env: [{"name":"DB_PASSWORD","recipients":["db"],"secret":"`+fa+`","value":""}]`) {
		t.Errorf("added: %s", got)
	}
	plain := json.RawMessage(`[{"name":"MODE","value":"prod"}]`)
	if got := string(maskSecrets(plain)); got != string(plain) {
		t.Errorf("plain env: %s", got)
	}
}

// TestPassRefusesUncoveredSecret, on etcd and git: a commit whose unit's
// secret its recipients cannot decrypt everywhere it may run is refused
// with FILE:LINE, and the other units of the commit apply; the recipients
// file is at the repository's root, the units under the source's path.
func TestPassRefusesUncoveredSecret(t *testing.T) {
	one, two := secretFixture(t, "db-password.age"), secretFixture(t, "two.age")
	e := newEnv(t)
	e.repo.Write(map[string]string{".kaylee/recipients": secretFixture(t, "recipients")})
	e.commit(map[string]string{"db.yaml": secretUnit("db", "role=db", "db", one), "api.yaml": secretUnit("api", "", "db, ops", two)})
	if r := e.mustPass(Options{}); counts(r) != "c2 u0 p0 n0 e0" {
		t.Fatalf("first pass: %s %s", counts(r), errorStrings(r))
	}
	storedAPI := e.stored()["api"]

	// api now runs anywhere with db's key alone; web is new; db's secret
	// is rotated.
	e.commit(map[string]string{
		"db.yaml":  secretUnit("db", "role=db", "db, ops", two),
		"api.yaml": strings.Replace(secretUnit("api", "", "db", one), "docker://api", "docker://api:2", 1),
		"web.yaml": webV1,
	})
	r := e.mustPass(Options{})
	want := "units/api.yaml:15: env[0].recipients: no recipient's machines include every machine api may run on (any machine; db: role=db): encrypt it also to a recipient of those machines (* for every machine), or constrain machine:"
	if got := errorStrings(r); got != want {
		t.Fatalf("errors:\n%s\nwant:\n%s", got, want)
	}
	after := e.stored()
	if after["api"] != storedAPI {
		t.Errorf("api in etcd changed:\n%s\nwas\n%s", after["api"], storedAPI)
	}
	if !strings.Contains(after["db"], `"recipients":["db","ops"]`) || !strings.Contains(after["web"], "nginx:1") {
		t.Errorf("the other units did not apply: db %s, web %s", after["db"], after["web"])
	}
	// The rotation's event shows two fingerprints, not the ciphertexts.
	var told string
	for _, ev := range Events(r, nil, nil, &store.SyncAttempt{Source: "units", Result: Outcome(r, nil)}) {
		if ev.Unit == "db" {
			told = ev.Message
		}
	}
	fa, fb := deploy.SecretFingerprint(one), deploy.SecretFingerprint(two)
	if !strings.Contains(told, `"secret":"`+fa+`"`) || !strings.Contains(told, `"secret":"`+fb+`"`) || strings.Contains(told, "BEGIN AGE") {
		t.Errorf("db's event: %s", told)
	}
	if counts(r) != "c1 u1 p0 n1 e1" {
		t.Errorf("counts %s", counts(r))
	}
	rec, err := e.store.GetSyncRecord(context.Background(), "units")
	if err != nil || rec.Inventory["api"] != "units/api.yaml" || len(rec.Errors) != 1 || rec.Errors[0].String() != want {
		t.Fatalf("record: %+v %v", rec, err)
	}
}
