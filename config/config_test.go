package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const twoSources = `sources:
- name: team-a
  repo: ssh://git@git.example.com/team-a/units.git
  ref: main
  path: prod
  interval: 1m
  sshKeyFile: team-a.key
  knownHosts: /etc/kaylee/known_hosts
  maxPrune: 25%
  verify: {mode: HEAD, allowedSigners: team-a.signers}
- name: team-b
  repo: https://git.example.com/team-b/units.git
  username: kaylee
  passwordFile: /etc/kaylee/team-b.token
  allowEmpty: true
  allowRewind: true
  conflictsWith: [db, cache-*]
  suspend: true
  verify: {mode: tagandhead, keyring: team-b.asc}
notifications:
- url: https://hooks.example.com/kaylee
  secretFile: notify.secret
  events: [rollout]
`

func TestLoadTwoSources(t *testing.T) {
	f, err := Load("/etc/kaylee/kaylee.yaml", []byte(twoSources))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Sources) != 2 || len(f.Notifications) != 1 {
		t.Fatalf("got %d sources, %d notifications", len(f.Sources), len(f.Notifications))
	}
	a, b := f.Sources[0], f.Sources[1]
	checks := []struct {
		what      string
		got, want any
	}{
		{"a.name", a.Name, "team-a"},
		{"a.interval", a.Interval, time.Minute},
		{"a.sshKeyFile made absolute", a.SSHKeyFile, "/etc/kaylee/team-a.key"},
		{"a.maxPrune", a.MaxPrune, 0.25},
		{"a.verify.mode", a.Verify.Mode, "HEAD"},
		{"a.verify.allowedSigners", a.Verify.AllowedSigners, "/etc/kaylee/team-a.signers"},
		{"b.allowEmpty", b.AllowEmpty, true},
		{"b.allowRewind", b.AllowRewind, true},
		{"a.allowRewind default: refused", a.AllowRewind, false},
		{"where allowRewind", b.Where("allowRewind"), "/etc/kaylee/kaylee.yaml:16: sources[1].allowRewind"},
		{"b.conflictsWith", strings.Join(b.ConflictsWith, ","), "db,cache-*"},
		{"a.conflictsWith default: own units only", len(a.ConflictsWith), 0},
		{"b.suspend", b.Suspend, true},
		{"b.verify.mode", b.Verify.Mode, "TagAndHEAD"},
		{"b.interval default", b.Interval, time.Duration(0)},
		{"where", a.Where("sshKeyFile"), "/etc/kaylee/kaylee.yaml:7: sources[0].sshKeyFile"},
		{"where of an unset field: the entry", b.Where("ref"), "/etc/kaylee/kaylee.yaml:11: sources[1].ref"},
		{"notification wants rollout", f.Notifications[0].Wants("rollout"), true},
		{"notification does not want sync", f.Notifications[0].Wants("sync"), false},
		{"secretFile", f.Notifications[0].SecretFile, "/etc/kaylee/notify.secret"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestNeedSources(t *testing.T) {
	tests := []struct{ in, want string }{
		{"notifications:\n- url: http://x\n", "k.yaml:1: sources: no source: list at least one (name, repo)"},
		{"notifications: []\nsources: []\n", "k.yaml:2: sources: no source: list at least one (name, repo)"},
		{"sources:\n- {name: a, repo: r}\n", ""},
	}
	for _, tt := range tests {
		f, err := Load("k.yaml", []byte(tt.in))
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if err := f.NeedSources(); err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%q: NeedSources %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string // each a line of the error
	}{
		{"empty", ``, []string{"k.yaml: the file is empty: list sources: or notifications:"}},
		{"yaml syntax", "sources: [\n", []string{"k.yaml:1: YAML: did not find expected node content"}},
		{"not a mapping", "- a\n", []string{"k.yaml:1: want a mapping of fields, not a list"}},
		{"typo", "sources:\n- name: a\n  repo: r\n  intervall: 1m\n", []string{"k.yaml:4: sources[0].intervall: unknown field; did you mean interval?"}},
		{"unknown top", "source:\n- name: a\n", []string{"k.yaml:1: source: unknown field; did you mean sources?"}},
		{"missing name and repo", "sources:\n- ref: main\n", []string{"k.yaml:2: sources[0].name: required", "k.yaml:2: sources[0].repo: required"}},
		{"bad name", "sources:\n- name: Team A\n  repo: r\n", []string{`k.yaml:2: sources[0].name: "Team A": use lower-case letters, digits, '.', '_' and '-' (it is part of etcd keys), at most 64`}},
		{"duplicate name", "sources:\n- {name: a, repo: r}\n- {name: a, repo: s}\n", []string{`k.yaml:3: sources[1].name: source "a" is also defined at line 2; names must be unique`}},
		{"bad interval", "sources:\n- {name: a, repo: r, interval: soon}\n", []string{`k.yaml:2: sources[0].interval: "soon" is not a duration such as 30s or 5m`}},
		{"short interval", "sources:\n- {name: a, repo: r, interval: 10ms}\n", []string{`k.yaml:2: sources[0].interval: 10ms: use at least 1s`}},
		{"bad maxPrune", "sources:\n- {name: a, repo: r, maxPrune: 150%}\n", []string{`k.yaml:2: sources[0].maxPrune: "150%": use a percentage between 1% and 100%, such as 25%`}},
		{"bad bool", "sources:\n- {name: a, repo: r, allowEmpty: sure}\n", []string{`k.yaml:2: sources[0].allowEmpty: want true or false, not "sure"`}},
		{"bad allowRewind", "sources:\n- name: a\n  repo: r\n  allowRewind: yes please\n", []string{`k.yaml:4: sources[0].allowRewind: want true or false, not "yes please"`}},
		{"conflictsWith everything", "sources:\n- name: a\n  repo: r\n  conflictsWith:\n  - db\n  - '*'\n", []string{`k.yaml:6: sources[0].conflictsWith[1]: "*" would conflict with every unit on the cluster, other teams' too; name the units (conflicts: [db, cache])`}},
		{"conflictsWith a broad glob", "sources:\n- name: a\n  repo: r\n  conflictsWith: [k*]\n", []string{`k.yaml:4: sources[0].conflictsWith[0]: "k*" is too broad: it matches every unit whose name starts with "k", other teams' too; name the units (conflicts: [db, cache]), or a family of them as db-* (a name prefix ending in -, then *)`}},
		{"conflictsWith not a list", "sources:\n- name: a\n  repo: r\n  conflictsWith: db\n", []string{`k.yaml:4: sources[0].conflictsWith: want a list, not "db"`}},
		{"conflictsWith not a name", "sources:\n- name: a\n  repo: r\n  conflictsWith: [[db]]\n", []string{`k.yaml:4: sources[0].conflictsWith[0]: want a unit name or a family (db-*), not a list`}},
		{"conflictsWith misspelt", "sources:\n- name: a\n  repo: r\n  conflictWith: [db]\n", []string{`k.yaml:4: sources[0].conflictWith: unknown field; did you mean conflictsWith?`}},
		{"allowRewind misspelt", "sources:\n- name: a\n  repo: r\n  allowRewinds: true\n", []string{`k.yaml:4: sources[0].allowRewinds: unknown field; did you mean allowRewind?`}},
		{"field twice", "sources:\n- name: a\n  repo: r\n  repo: s\n", []string{`k.yaml:4: sources[0].repo: given twice (first at line 3)`}},
		{"verify without keys", "sources:\n- {name: a, repo: r, verify: {mode: HEAD}}\n", []string{`k.yaml:2: sources[0].verify: give keyring (armored OpenPGP public keys) or allowedSigners (an ssh-keygen allowed signers file), or both`}},
		{"verify mode", "sources:\n- {name: a, repo: r, verify: {mode: commit, keyring: k}}\n", []string{`k.yaml:2: sources[0].verify.mode: "commit": use HEAD (the commit the ref points at), Tag (an annotated tag's signature) or TagAndHEAD`}},
		{"notification url", "sources:\n- {name: a, repo: r}\nnotifications:\n- url: ftp://x\n", []string{`k.yaml:4: notifications[0].url: "ftp://x": want an http:// or https:// URL with a host`}},
		{"notification url's credentials not echoed", "sources:\n- {name: a, repo: r}\nnotifications:\n- url: ftp://bob:s3cretPW@x/hook\n",
			[]string{`k.yaml:4: notifications[0].url: "ftp://***@x/hook": want an http:// or https:// URL with a host`}},
		{"notification event", "sources:\n- {name: a, repo: r}\nnotifications:\n- {url: 'http://x', events: [push]}\n", []string{`k.yaml:4: notifications[0].events[0]: "push": use sync or rollout`}},
		{"two documents", "sources:\n- {name: a, repo: r}\n---\nsources: []\n", []string{"k.yaml:3: a configuration file holds one document (found a second after ---)"}},
		{"null repo", "sources:\n- name: a\n  repo:\n", []string{"k.yaml:3: sources[0].repo: want a string, not nothing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Load("k.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("no error; got %+v", f)
			}
			if f != nil {
				t.Errorf("a file came back with the error: %+v", f)
			}
			got := strings.Split(err.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("error:\n%s\nwant:\n%s", err, strings.Join(tt.want, "\n"))
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("%T is not an *Error", err)
			}
		})
	}
}

func TestLoadFreeze(t *testing.T) {
	f, err := Load("k.yaml", []byte("sources:\n- name: a\n  repo: r\n  freeze:\n  - {schedule: \"0 18 * * FRI\", duration: 62h, timeZone: Europe/Berlin, reason: weekend}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Sources[0].Freeze; len(got) != 1 || got[0].String() != "0 18 * * FRI for 62h (Europe/Berlin): weekend" {
		t.Fatalf("freeze: %+v", got)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"  freeze:\n  - schedule: \"0 18 * * XYZ\"\n    duration: 1h\n",
			`k.yaml:5: sources[0].freeze[0].schedule: "0 18 * * XYZ" is not a cron expression`},
		{"  freeze:\n  - schedule: \"0 18 * * FRI\"\n    duration: 1h\n    timeZone: Europe/Berlinn\n",
			`k.yaml:7: sources[0].freeze[0].timeZone: "Europe/Berlinn" is not a known time zone: use an IANA name such as Europe/Berlin`},
		{"  freeze:\n  - schedule: \"0 18 * * FRI\"\n    duration: -1h\n",
			"k.yaml:6: sources[0].freeze[0].duration: -1h: must be more than 0"},
		{"  freeze:\n  - schedule: \"0 18 * * FRI\"\n    duration: 1000h\n",
			"k.yaml:6: sources[0].freeze[0].duration: 1000h is more than 744h0m0s (31 days)"},
		{"  freeze:\n  - schedule: \"0 18 * * FRI\"\n",
			"k.yaml:5: sources[0].freeze[0].duration: required: how long each window lasts"},
		{"  freeze:\n  - schedule: \"0 18 * * FRI\"\n    duration: 1h\n    timezone: UTC\n",
			"k.yaml:7: sources[0].freeze[0].timezone: unknown field; did you mean timeZone?"},
		{"  freeze: weekends\n", `k.yaml:4: sources[0].freeze: want a list, not "weekends"`},
	} {
		_, err := Load("k.yaml", []byte("sources:\n- name: a\n  repo: r\n"+tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v\nwant %s", tc.yaml, err, tc.want)
		}
	}
}
