package deploy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// statefulUnit builds a stateful unit file: lines 1-3 name and apps, 4
// replicas, 5 stateful, extra from line 6.
func statefulUnit(extra string) string {
	return unit("replicas: 3\nstateful: true\n" + extra)
}

func TestStatefulAccepted(t *testing.T) {
	good := map[string]string{
		"bare":            statefulUnit(""),
		"one member":      unit("replicas: 1\nstateful: true\n"),
		"onMachineLoss":   statefulUnit("onMachineLoss: wait\n---\n" + unit("replicas: 1\nstateful: true\nonMachineLoss: move\n")),
		"member volumes":  statefulUnit("volumes:\n- {id: 'vol-db-${KAYLEE_MEMBER}', source: '/srv/db/${KAYLEE_MEMBER}', path: /var/lib/db}\n- {id: 'v${KAYLEE_MEMBER}x${KAYLEE_MEMBER}', driver: ebs, source: 'd/${KAYLEE_MEMBER}', path: /d}\n"),
		"placement":       statefulUnit("maxReplicasPerHost: 1\nmachine: [disk=ssd]\nspread: {key: az}\n"),
		"health ports":    statefulUnit("health: {tcp: {port: 5432}}\nports: [{name: pg, port: 5432}]\n"),
		"primary exec":    statefulUnit("primary: {exec: [/usr/bin/is-primary, --port=5432]}\nupdate: {order: primary-last}\n"),
		"primary http":    statefulUnit("primary: {http: {port: 8008, path: /primary}}\nupdate: {order: primary-first, maxUnavailable: 2}\n"),
		"order default":   statefulUnit("update: {order: highest-first, maxUnavailable: 34%, minReady: 5s}\n"),
		"docker stateful": "name: db\nengine: docker\nreplicas: 2\nstateful: true\napps: [{image: postgres}]\n",
	}
	for name, in := range good {
		t.Run(name, func(t *testing.T) {
			docs, err := Load("u.yaml", []byte(in))
			if err != nil {
				t.Fatalf("valid unit refused: %v", err)
			}
			for _, d := range docs {
				if _, err := Render(&d.Spec, RenderOptions{}); err != nil {
					t.Fatalf("valid unit does not render: %v", err)
				}
			}
		})
	}
}

// Each refusal, with its whole message: file:line, field, why.
func TestStatefulRefused(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"global", unit("global: true\nstateful: true\n"),
			"u.yaml:5: stateful: a global unit runs on every matching machine and has no members: remove stateful or global"},
		{"machineId", unit("machineId: abc\nstateful: true\n"),
			"u.yaml:5: stateful: a unit pinned with machineId is one instance on that machine, not members: remove stateful or machineId"},
		{"no replicas", unit("stateful: true\n"),
			"u.yaml:4: stateful: needs replicas (at least 1): the number of members"},
		{"conflicts", statefulUnit("conflicts: [cache]\n"),
			"u.yaml:6: conflicts: a placed member is pinned to its machine (MachineID), which fleet does not allow with conflicts: remove conflicts or stateful"},
		{"not a bool", unit("replicas: 3\nstateful: yes please\n"),
			`u.yaml:5: stateful: expected true or false, got "yes please"`},
		{"onMachineLoss not stateful", unit("replicas: 3\nonMachineLoss: wait\n"),
			"u.yaml:5: onMachineLoss: applies to a stateful unit (stateful: true)"},
		{"onMachineLoss typo", statefulUnit("onMachineLoss: mvoe\n"),
			`u.yaml:6: onMachineLoss: "mvoe" is not an onMachineLoss policy (did you mean "move"?): use wait (the default: the member waits for its machine to come back, with its data) or move (it starts again on another machine)`},
		{"onMachineLoss other", statefulUnit("onMachineLoss: failover\n"),
			`u.yaml:6: onMachineLoss: "failover" is not an onMachineLoss policy: use wait (the default: the member waits for its machine to come back, with its data) or move (it starts again on another machine)`},
		{"primary not stateful", unit("replicas: 3\nprimary: {exec: [/bin/p]}\n"),
			"u.yaml:5: primary: applies to a stateful unit (stateful: true)"},
		{"primary empty", statefulUnit("primary: {}\n"),
			"u.yaml:6: primary: needs one check: http (port and path) or exec (a command)"},
		{"primary both", statefulUnit("primary:\n  exec: [/bin/p]\n  http: {port: 80}\n"),
			"u.yaml:6: primary: has http and exec: give exactly one check"},
		{"primary tcp", statefulUnit("primary:\n  tcp: {port: 80}\n"),
			`u.yaml:7: unknown field "tcp" (did you mean "http"?)`},
		{"primary port misplaced", statefulUnit("primary:\n  port: 80\n"),
			`u.yaml:7: unknown field "port" (it is a field of the check: primary.http.port)`},
		{"primary exec relative", statefulUnit("primary:\n  exec: [is-primary]\n"),
			`u.yaml:7: primary.exec[0]: "is-primary" must be an absolute path: the command the machine runs`},
		{"primary exec dollar", statefulUnit("primary:\n  exec: [/bin/p, $HOME]\n"),
			`u.yaml:7: primary.exec[1]: "$HOME" may only hold letters, digits and _ . / : = , @ + - (no spaces, quotes, $ or %: the words are passed as they are, never through a shell)`},
		{"primary http port", statefulUnit("primary:\n  http: {path: /p}\n"),
			"u.yaml:7: primary.http.port: required: the port to check, 1 to 65535"},
		{"primary http path", statefulUnit("primary:\n  http: {port: 80, path: p}\n"),
			`u.yaml:7: primary.http.path: "p" must start with /`},
		{"order not stateful", unit("replicas: 3\nupdate:\n  order: highest-first\n"),
			"u.yaml:6: update.order: applies to a stateful unit (stateful: true), whose members are updated one after the other"},
		{"order typo", statefulUnit("update:\n  order: primary-lst\n"),
			`u.yaml:7: update.order: "primary-lst" is not an update order (did you mean "primary-last"?): use highest-first (the default), primary-last or primary-first`},
		{"order other", statefulUnit("update:\n  order: random\n"),
			`u.yaml:7: update.order: "random" is not an update order: use highest-first (the default), primary-last or primary-first`},
		{"order without primary", statefulUnit("update:\n  order: primary-first\n"),
			"u.yaml:7: update.order: primary-first needs a primary probe (primary: with http or exec) to tell which member is the primary"},
		{"surge", statefulUnit("update:\n  maxSurge: 1\n"),
			"u.yaml:7: update.maxSurge: a member never has two copies: stateful units are updated stop-then-start, see update.maxUnavailable"},
		{"unavailable range", statefulUnit("update:\n  maxUnavailable: 0\n"),
			"u.yaml:7: update.maxUnavailable: 0 is out of range: 1 to 1000, or a percentage such as 25% (default 1)"},
		{"member env reserved", statefulUnit("env:\n- {name: KAYLEE_MEMBER, value: '1'}\n"),
			"u.yaml:7: env[0].name: KAYLEE_MEMBER is set by Kaylee for each member of a stateful unit"},
		// ${KAYLEE_MEMBER}: only in a volume's id and source, only stateful
		{"member ref not stateful", unit("replicas: 3\nvolumes:\n- {id: 'v-${KAYLEE_MEMBER}', driver: ebs, path: /d}\n"),
			"u.yaml:6: volumes[0].id: ${KAYLEE_MEMBER} is the ordinal of a stateful unit's member: this unit is not stateful (stateful: true)"},
		{"member ref not stateful source", unit("volumes:\n- source: /srv/${KAYLEE_MEMBER}\n  path: /d\n"),
			"u.yaml:5: volumes[0].source: ${KAYLEE_MEMBER} is the ordinal of a stateful unit's member: this unit is not stateful (stateful: true)"},
		{"member ref in args", statefulUnit("args: ['--member=${KAYLEE_MEMBER}']\n"),
			"u.yaml:6: args[0]: ${KAYLEE_MEMBER} is replaced only in a volume's id and source"},
		{"member ref in path", statefulUnit("volumes:\n- source: /srv/a\n  path: /d/${KAYLEE_MEMBER}\n"),
			"u.yaml:8: volumes[0].path: ${KAYLEE_MEMBER} is replaced only in a volume's id and source"},
		{"member ref in env", statefulUnit("env:\n- name: M\n  value: ${KAYLEE_MEMBER}\n"),
			"u.yaml:8: env[0].value: ${KAYLEE_MEMBER} is replaced only in a volume's id and source"},
		{"member ref in app args", "name: db\nreplicas: 2\nstateful: true\napps:\n- image: x\n  args: ['${KAYLEE_MEMBER}']\n",
			"u.yaml:6: apps[0].args[0]: ${KAYLEE_MEMBER} is replaced only in a volume's id and source"},
		{"other ref in source", statefulUnit("volumes:\n- source: /srv/${HOSTNAME}\n  path: /d\n"),
			`u.yaml:7: volumes[0].source: "${HOSTNAME}": only ${KAYLEE_MEMBER} is replaced in a volume's id and source`},
		{"other ref in id", statefulUnit("volumes:\n- {id: 'v-${KAYLEE_MEMBER}-${X}', source: /srv/a, path: /d}\n"),
			`u.yaml:7: volumes[0].id: "${X}": only ${KAYLEE_MEMBER} is replaced in a volume's id and source`},
		{"unterminated ref", statefulUnit("volumes:\n- source: /srv/${KAYLEE_MEMBER\n  path: /d\n"),
			`u.yaml:7: volumes[0].source: "${KAYLEE_MEMBER": only ${KAYLEE_MEMBER} is replaced in a volume's id and source`},
		{"member volume quoted as written", statefulUnit("volumes:\n- source: /srv/${KAYLEE_MEMBER}/../etc\n  path: /d\n"),
			`u.yaml:7: volumes[0].source: "/srv/${KAYLEE_MEMBER}/../etc" must be an absolute host path without spaces, quotes, backslashes, commas or colons (a volume without driver mounts a host path)`},
		{"member id quoted as written", statefulUnit("volumes:\n- {id: 'v ${KAYLEE_MEMBER}', driver: ebs, path: /d}\n"),
			`u.yaml:7: volumes[0].id: "v ${KAYLEE_MEMBER}": a volume with a driver needs an id (letters, digits, ., _ and -)`},
		{"member ref lower case", statefulUnit("volumes:\n- source: /srv/${kaylee_member}\n  path: /d\n"),
			`u.yaml:7: volumes[0].source: "${kaylee_member}": only ${KAYLEE_MEMBER} is replaced in a volume's id and source`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := Load("u.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("accepted: %s", docs[0].Spec.CanonicalJSON())
			}
			var msgs []string
			for _, fe := range FieldErrors(err) {
				msgs = append(msgs, fe.Error())
			}
			if !slices.Contains(msgs, tt.want) {
				t.Fatalf("errors:\n%s\nwant one to be:\n%s", strings.Join(msgs, "\n"), tt.want)
			}
		})
	}
}

func TestStatefulWarnings(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"per member", statefulUnit("engine: docker\nvolumes:\n- {id: 'vol-db-${KAYLEE_MEMBER}', source: '/srv/db/${KAYLEE_MEMBER}', path: /var/lib/db}\n- {id: 'e-${KAYLEE_MEMBER}', driver: ebs, path: /e}\n"), nil},
		{"shared driver id", statefulUnit("engine: docker\nvolumes:\n- {id: vol-db, driver: ebs, source: 'd-${KAYLEE_MEMBER}', path: /d}\n"),
			[]string{`u.yaml:8: volumes[0].id: all members of api share one volume id ("vol-db"): write ${KAYLEE_MEMBER} in it (as vol-db-${KAYLEE_MEMBER}) to give each member its own`}},
		{"shared host path", statefulUnit("engine: docker\nvolumes:\n- source: /srv/db\n  path: /d\n"),
			[]string{"u.yaml:8: volumes[0].source: all members of api share one volume id: each mounts the host directory /srv/db, which a member that moves finds another's data in; write ${KAYLEE_MEMBER} in it (as /srv/db/${KAYLEE_MEMBER}) to give each member its own"}},
		{"not stateful", unit("engine: docker\nreplicas: 3\nvolumes:\n- source: /srv/db\n  path: /d\n"), nil},
		{"with engine warning", statefulUnit("volumes:\n- {id: v, driver: ebs, path: /d}\n"),
			[]string{"u.yaml:2: engine: none given", `u.yaml:7: volumes[0].id: all members of api share one volume id ("v")`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := Load("u.yaml", []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range docs[0].Warnings() {
				got = append(got, w.Error())
			}
			if len(got) != len(tt.want) {
				t.Fatalf("warnings:\n%s\nwant %d", strings.Join(got, "\n"), len(tt.want))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("warning %d:\n%s\nwant it to start with:\n%s", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// ${KAYLEE_MEMBER} becomes each member's ordinal in a volume's id and
// source, wherever they reach the unit file; KAYLEE_MEMBER reaches the
// container.
func TestStatefulSubstitution(t *testing.T) {
	for _, engine := range []string{EngineDocker, EngineRkt} {
		t.Run(engine, func(t *testing.T) {
			in := "name: db\nengine: " + engine + "\nreplicas: 3\nstateful: true\napps: [{image: docker://postgres}]\nvolumes:\n" +
				"- {id: 'host-${KAYLEE_MEMBER}', source: '/srv/db/${KAYLEE_MEMBER}/m${KAYLEE_MEMBER}', path: /a}\n" +
				"- {id: 'vol-${KAYLEE_MEMBER}', driver: systemd-mountservice-ebs, source: 'data/${KAYLEE_MEMBER}', path: /b}\n" +
				"- {id: 'blk-${KAYLEE_MEMBER}', driver: blocker, path: /c}\n"
			docs, err := Load("u.yaml", []byte(in))
			if err != nil {
				t.Fatal(err)
			}
			s := &docs[0].Spec
			units, err := Render(s, RenderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for i, u := range units {
				text := unitText(units[i : i+1])
				for _, want := range []string{
					fmt.Sprintf(`Environment="KAYLEE_MEMBER=%d"`, i),
					fmt.Sprintf("/srv/db/%d/m%d", i, i),
					fmt.Sprintf("Wants=ebs@vol-%d.service", i),
					fmt.Sprintf("ExecStartPre=/usr/bin/systemctl is-active ebs@vol-%d.service", i),
					fmt.Sprintf("/mnt/ebs/vol-%d/data/%d", i, i),
					fmt.Sprintf("ExecStartPre=/var/lib/kaylee/plugins/volumes/blocker blk-%d", i),
					fmt.Sprintf("ExecStopPost=/var/lib/kaylee/plugins/volumes/blocker -u blk-%d", i),
					fmt.Sprintf("Description=kaylee db member %d (spec %s)", i, s.Hash(0)),
				} {
					if !strings.Contains(text, want) {
						t.Errorf("member %d lacks %q:\n%s", i, want, text)
					}
				}
				if strings.Contains(text, "KAYLEE_MEMBER}") {
					t.Errorf("member %d keeps a reference:\n%s", i, text)
				}
				start := optionValue(u, "Service", "ExecStart")
				if engine == EngineDocker && !strings.Contains(start, " -e KAYLEE_ID -e KAYLEE_MEMBER ") {
					t.Errorf("docker does not pass KAYLEE_MEMBER: %s", start)
				}
				if engine == EngineRkt && !strings.Contains(start, " --inherit-env ") {
					t.Errorf("rkt does not inherit KAYLEE_MEMBER: %s", start)
				}
			}
			// The spec keeps its references: only rendering replaces them.
			if !strings.Contains(string(s.CanonicalJSON()), "${KAYLEE_MEMBER}") {
				t.Errorf("canonical JSON lost the reference: %s", s.CanonicalJSON())
			}
		})
	}
	// A unit that is not stateful has no KAYLEE_MEMBER.
	units, err := Render(&Spec{Name: "api", Replicas: 2, Apps: []App{{Image: "x"}}, Engine: EngineDocker}, RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if text := unitText(units); strings.Contains(text, "KAYLEE_MEMBER") || strings.Contains(text, "member") {
		t.Errorf("replicas render as members:\n%s", text)
	}
}

// A placed member is pinned with MachineID and has no Conflicts (fleet's
// API refuses the pair), nor spread's zone; an unplaced one renders as a
// replica does. Names do not change with placement.
func TestStatefulPlacement(t *testing.T) {
	s := &Spec{Name: "db", Engine: EngineDocker, Replicas: 4, MaxReplicasPerHost: 1, Stateful: true,
		Machine: []string{"disk=ssd"}, Spread: &Spread{Key: "az"}, Apps: []App{{Image: "postgres"}}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	a, b := strings.Repeat("a", 32), strings.Repeat("b", 32)
	o := RenderOptions{Members: []string{a, "", b}, Zones: []string{"z1", "z2", "z3", "z1"}}
	placed, err := Render(s, o)
	if err != nil {
		t.Fatal(err)
	}
	unplaced, err := Render(s, RenderOptions{Zones: o.Zones})
	if err != nil {
		t.Fatal(err)
	}
	if len(placed) != 4 {
		t.Fatalf("%d units for 4 members", len(placed))
	}
	hash := s.Hash(0)
	for i, u := range placed {
		n, ok := ParseUnitName("k2", u.Name)
		if !ok || n.Index != i || n.SpecHash != hash || n.Group != groupID(hash, 0) || u.Name != unplaced[i].Name {
			t.Fatalf("member %d: name %q (unplaced %q)", i, u.Name, unplaced[i].Name)
		}
		ids, conflicts, meta := options(u, "X-Fleet", "MachineID"), options(u, "X-Fleet", "Conflicts"), options(u, "X-Fleet", "MachineMetadata")
		desc := optionValue(u, "Unit", "Description")
		switch i {
		case 0, 2:
			want := []string{a, "", b}[i]
			if !slices.Equal(ids, []string{want}) || len(conflicts) != 0 || !slices.Equal(meta, []string{"disk=ssd"}) {
				t.Errorf("placed member %d: MachineID %q, Conflicts %q, MachineMetadata %q", i, ids, conflicts, meta)
			}
			if wantDesc := fmt.Sprintf("kaylee db member %d on machine %.8s (spec %s)", i, want, hash); desc != wantDesc {
				t.Errorf("member %d: Description %q, want %q", i, desc, wantDesc)
			}
		default:
			zone := "az=" + o.Zones[i]
			if len(ids) != 0 || !slices.Equal(conflicts, []string{fmt.Sprintf("k2:db:%s:%s:*.service", hash, n.Group)}) || !slices.Equal(meta, []string{"disk=ssd", zone}) {
				t.Errorf("unplaced member %d: MachineID %q, Conflicts %q, MachineMetadata %q", i, ids, conflicts, meta)
			}
			if wantDesc := fmt.Sprintf("kaylee db member %d (spec %s)", i, hash); desc != wantDesc {
				t.Errorf("member %d: Description %q, want %q", i, desc, wantDesc)
			}
		}
	}
	// A machine ID that could break the unit file is refused.
	if _, err := Render(s, RenderOptions{Members: []string{"a\nConflicts=*"}}); err == nil || err.Error() != `member 0 of db: machine ID "a\nConflicts=*" is not letters and digits` {
		t.Errorf("bad machine ID: %v", err)
	}
}

// stateful changes the fleet units (KAYLEE_MEMBER, per-member volumes), so
// it is part of the spec hash; onMachineLoss, primary and the update
// policy are read by the scheduler only and roll nothing out.
func TestStatefulSpecHash(t *testing.T) {
	load := func(in string) *Spec {
		t.Helper()
		docs, err := Load("u.yaml", []byte(in))
		if err != nil {
			t.Fatal(err)
		}
		return &docs[0].Spec
	}
	plain := load(unit("replicas: 3\n"))
	base := load(statefulUnit(""))
	if plain.Hash(0) == base.Hash(0) {
		t.Errorf("stateful kept the spec hash %s", base.Hash(0))
	}
	same := map[string]string{
		"onMachineLoss":  "onMachineLoss: move\n",
		"primary":        "primary: {http: {port: 8008, path: /primary}}\n",
		"update":         "primary: {exec: [/bin/p]}\nupdate: {order: primary-last, maxUnavailable: 2, minReady: 3s}\n",
		"replicas count": "",
	}
	for name, extra := range same {
		s := load(statefulUnit(extra))
		if name == "replicas count" {
			s = load(unit("replicas: 5\nstateful: true\n"))
		}
		if s.Hash(0) != base.Hash(0) {
			t.Errorf("%s changed the spec hash: %s != %s", name, s.Hash(0), base.Hash(0))
		}
		if name != "replicas count" && string(s.CanonicalJSON()) == string(base.CanonicalJSON()) {
			t.Errorf("%s is missing from the canonical JSON", name)
		}
	}
	if vol := load(statefulUnit("volumes: [{source: '/srv/${KAYLEE_MEMBER}', path: /d}]\n")); vol.Hash(0) == base.Hash(0) {
		t.Error("a volume did not change the spec hash")
	}
}

// Canonical JSON of a unit without the new fields is unchanged; the new
// fields come last.
func TestStatefulCanonicalJSON(t *testing.T) {
	s := &Spec{Name: "db", Replicas: 2, Apps: []App{{Image: "x"}}, Spread: &Spread{Key: "az"}}
	const old = `{"name":"db","replicas":2,"apps":[{"image":"x"}],"spread":{"key":"az"}}`
	if got := string(s.CanonicalJSON()); got != old {
		t.Fatalf("canonical JSON %s, want %s", got, old)
	}
	s.Stateful, s.OnMachineLoss, s.Primary = true, MachineLossMove, &Probe{Exec: []string{"/bin/p"}}
	s.Update = &Update{Order: OrderPrimaryLast, MaxUnavailable: "1"}
	want := `{"name":"db","replicas":2,"apps":[{"image":"x"}],"update":{"maxUnavailable":1,"order":"primary-last"},"spread":{"key":"az"},"stateful":true,"onMachineLoss":"move","primary":{"exec":["/bin/p"]}}`
	if got := string(s.CanonicalJSON()); got != want {
		t.Fatalf("canonical JSON\n%s\nwant\n%s", got, want)
	}
}

func TestStatefulAccessors(t *testing.T) {
	s := &Spec{Replicas: 3}
	if s.Members() != 0 || s.MachineLoss() != MachineLossWait {
		t.Errorf("not stateful: Members %d, MachineLoss %q", s.Members(), s.MachineLoss())
	}
	s.Stateful, s.OnMachineLoss = true, MachineLossMove
	if s.Members() != 3 || s.MachineLoss() != MachineLossMove {
		t.Errorf("stateful: Members %d, MachineLoss %q", s.Members(), s.MachineLoss())
	}
	if k := (&Probe{HTTP: &HTTPCheck{Port: 1}}).Kind(); k != HealthHTTP {
		t.Errorf("http probe kind %q", k)
	}
	if k := (&Probe{Exec: []string{"/p"}}).Kind(); k != HealthExec {
		t.Errorf("exec probe kind %q", k)
	}
	if k := (&Probe{}).Kind(); k != "" {
		t.Errorf("empty probe kind %q", k)
	}
	tests := []struct {
		u          *Update
		n, primary int
		want       []int
		name       string
	}{
		{nil, 4, -1, []int{3, 2, 1, 0}, "highest-first"},
		{nil, 4, 2, []int{3, 2, 1, 0}, "highest-first"},
		{&Update{Order: OrderPrimaryLast}, 4, 2, []int{3, 1, 0, 2}, "primary-last"},
		{&Update{Order: OrderPrimaryLast}, 4, 3, []int{2, 1, 0, 3}, "primary-last"},
		{&Update{Order: OrderPrimaryFirst}, 4, 1, []int{1, 3, 2, 0}, "primary-first"},
		{&Update{Order: OrderPrimaryFirst}, 4, -1, []int{3, 2, 1, 0}, "primary-first"},
		{&Update{Order: OrderPrimaryLast}, 3, 7, []int{2, 1, 0}, "primary-last"},
		{&Update{}, 0, -1, []int{}, "highest-first"},
	}
	for _, tt := range tests {
		if got := tt.u.OrderOf(tt.n, tt.primary); !slices.Equal(got, tt.want) {
			t.Errorf("%v.OrderOf(%d, %d) = %v, want %v", tt.u, tt.n, tt.primary, got, tt.want)
		}
		if got := tt.u.OrderName(); got != tt.name {
			t.Errorf("%v.OrderName() = %q, want %q", tt.u, got, tt.name)
		}
	}
	for _, tt := range []struct {
		u    *Update
		n    int
		want int
	}{{nil, 5, 1}, {&Update{MaxUnavailable: "2"}, 5, 2}, {&Update{MaxUnavailable: "50%"}, 5, 2}, {&Update{MaxUnavailable: "10%"}, 3, 1}} {
		if got := tt.u.UnavailableOf(tt.n); got != tt.want {
			t.Errorf("%v.UnavailableOf(%d) = %d, want %d", tt.u, tt.n, got, tt.want)
		}
	}
	vols := (&Spec{Volumes: []Volume{{ID: "v-${KAYLEE_MEMBER}", Source: "/s/${KAYLEE_MEMBER}", Path: "/p/${KAYLEE_MEMBER}"}}}).MemberVolumes(12)
	if want := (Volume{ID: "v-12", Source: "/s/12", Path: "/p/${KAYLEE_MEMBER}"}); vols[0] != want {
		t.Errorf("MemberVolumes(12) = %+v, want %+v", vols[0], want)
	}
}
