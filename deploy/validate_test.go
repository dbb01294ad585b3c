package deploy

import (
	"strings"
	"testing"
)

// unit builds a YAML unit file from a valid base plus extra top-level lines.
func unit(extra string) string {
	return "name: api\napps:\n- image: docker://nginx:1.25\n" + extra
}

func TestValidateAcceptsEveryField(t *testing.T) {
	good := map[string]string{
		"replicas and spread": unit("replicas: 3\nmaxReplicasPerHost: 1\n"),
		"env and files":       unit("envFiles:\n- /etc/environment\n- -/etc/optional.env\nenv:\n- name: A_B\n  value: 'x y \"q\" 100% $HOME'\n- name: PORT\n  value: 8080\n"),
		"host volume":         unit("volumes:\n- source: /mnt/efs/aaa\n  path: /etc/confd\n"),
		"mountservice volume": unit("volumes:\n- id: vol-a7039121\n  driver: systemd-mountservice-ebs\n  source: data\n  path: /usr/share/es/data\n"),
		"plugin volume":       unit("volumes:\n- id: vol-1\n  driver: blocker\n  path: /data\n  options: -f ext4\n"),
		"net and args":        unit("net: flannel,default\nargs:\n- --dns=10.0.0.2\n"),
		"machine metadata":    unit("machine:\n- ssd=true\n- region=eu-west-1\n"),
		"machineId":           unit("machineId: b15ba3d0c1e24f0c8a2b\n"),
		"global":              unit("global: true\nmachine:\n- role=edge\n"),
		// monder/kaylee's JSON may say replicas: 1 (and its default
		// maxReplicasPerHost) with global or machineId: the same as unset.
		"global replicas 1":    unit("global: true\nreplicas: 1\nmaxReplicasPerHost: 1\n"),
		"machineId replicas 1": unit("machineId: b15ba3d0c1e24f0c8a2b\nreplicas: 1\nmaxReplicasPerHost: 1\n"),
		"conflicts":            unit("conflicts:\n- 'mongo-n*'\n- redis\n- 'backup-*'\n- mongo-1\n"),
		"docker engine":        "name: web\nengine: docker\napps:\n- image: nginx\n  cmd: nginx\n  args: [-g, 'daemon off;']\n",
		"rkt cmd":              unit("") + "  cmd: /bin/rkt-sidekick\n  args:\n  - --format '$$ip:80'\n",
		"explicit rkt":         unit("engine: rkt\n"),
		"unicode value":        unit("env:\n- name: GREETING\n  value: 'héllo wörld ✓'\n"),
		// monder/kaylee took any env value (Go's %q quoting, unescaped by
		// systemd): a multi-line PEM, CRLF text, tabs, a trailing backslash.
		"multi-line env value": unit("env:\n- name: TLS_KEY\n  value: \"-----BEGIN KEY-----\\nAAA\\r\\n\\tBBB\\n-----END KEY-----\\n\"\n- name: DIR\n  value: 'C:\\'\n"),
		"pull policies":        "name: pod\napps:\n- image: a\n  pull: always\n- image: b\n  pull: missing\n- image: c\n  pull: never\n- image: d\n  pull: ''\n- image: e\n  pull:\n",
		"docker pull never":    "name: web\nengine: docker\napps:\n- image: nginx\n  pull: never\n",
		"max name":             strings.Replace(unit(""), "name: api", "name: "+strings.Repeat("a", MaxNameLen), 1),
		"ports":                unit("ports:\n- {name: http, port: 8080}\n- {name: dns, port: 53, protocol: udp}\n"),
		"spread":               unit("replicas: 6\nspread: {key: az, maxSkew: 2}\n"),
	}
	for name, in := range good {
		t.Run(name, func(t *testing.T) {
			docs, err := Load("u.yaml", []byte(in))
			if err != nil {
				t.Fatalf("valid unit refused: %v", err)
			}
			if _, err := Render(&docs[0].Spec, RenderOptions{}); err != nil {
				t.Fatalf("valid unit does not render: %v", err)
			}
		})
	}
}

func TestValidateRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // expected FILE:LINE: FIELD: message fragment
	}{
		// names: an etcd key and a systemd unit name
		{"no name", "apps:\n- image: x\n", "u.yaml:1: name: required"},
		// spread: over a machine metadata key
		{"spread global", unit("global: true\nspread: {key: az}\n"), "u.yaml:5: spread: has no effect on a global unit"},
		{"spread machineId", unit("machineId: abc\nspread: {key: az}\n"), "u.yaml:5: spread: has no effect on a unit with machineId"},
		{"spread single", unit("spread: {key: az}\n"), "u.yaml:4: spread: needs replicas"},
		{"spread key", unit("replicas: 2\nspread: {key: 'a z'}\n"), `u.yaml:5: spread.key: "a z" is not a machine metadata key`},
		{"spread skew", unit("replicas: 2\nspread: {key: az, maxSkew: -1}\n"), "u.yaml:5: spread.maxSkew: -1: use at least 1"},
		{"spread constrained key", unit("replicas: 2\nmachine: [az=a]\nspread: {key: az}\n"), `spread.key: "az" is also constrained by machine (az=a)`},
		// ports: for the instance registry
		{"port name", unit("ports:\n- {name: HTTP, port: 80}\n"), `u.yaml:5: ports[0].name: "HTTP": use 1 to 15 lowercase letters`},
		{"port twice", unit("ports:\n- {name: http, port: 80}\n- {name: http, port: 81}\n"), `u.yaml:6: ports[1].name: "http" is also ports[0]`},
		{"port number", unit("ports:\n- {name: http, port: 70000}\n"), "u.yaml:5: ports[0].port: 70000 is not a port: 1 to 65535"},
		{"port protocol", unit("ports:\n- {name: http, port: 80, protocol: sctp}\n"), `u.yaml:5: ports[0].protocol: "sctp": use tcp (the default) or udp`},
		{"upper case", strings.Replace(unit(""), "api", "Api", 1), "u.yaml:1: name: \"Api\" is not a valid name"},
		{"slash", strings.Replace(unit(""), "api", "a/b", 1), "name: \"a/b\" is not a valid name"},
		{"colon", strings.Replace(unit(""), "api", "a:b", 1), "name: \"a:b\" is not a valid name"},
		{"dot dot", strings.Replace(unit(""), "api", "'..'", 1), "name: \"..\" is not a valid name"},
		{"space", strings.Replace(unit(""), "api", "'a b'", 1), "name: \"a b\" is not a valid name"},
		{"trailing dash", strings.Replace(unit(""), "api", "api-", 1), "is not a valid name"},
		{"too long", strings.Replace(unit(""), "api", strings.Repeat("a", MaxNameLen+1), 1), "characters; at most 64"},
		// apps
		{"missing apps", "name: api\n", "u.yaml:1: apps: required: at least one app"},
		{"empty apps", "name: api\napps: []\n", "u.yaml:2: apps: required"},
		{"missing image", "name: api\napps:\n- cmd: /bin/x\n", "u.yaml:3: apps[0].image: required"},
		{"image with space", "name: api\napps:\n- image: 'a b'\n", "u.yaml:3: apps[0].image: \"a b\" must not contain spaces"},
		{"rkt cmd with args", unit("") + "  cmd: /bin/x --flag\n", "u.yaml:4: apps[0].cmd: \"/bin/x --flag\" must be one path"},
		{"docker two apps", "name: a\nengine: docker\napps:\n- image: x\n- image: y\n", "u.yaml:3: apps: engine docker runs one app per unit, found 2"},
		{"unknown engine", unit("engine: lxc\n"), "u.yaml:4: engine: \"lxc\" is not an engine"},
		// pull policy
		{"pull unknown", unit("") + "  pull: sometimes\n", `u.yaml:4: apps[0].pull: "sometimes" is not a pull policy: use missing (fetch only an image the host does not have; docker's and podman's default)`},
		{"pull typo", unit("") + "  pull: alway\n", `u.yaml:4: apps[0].pull: "alway" is not a pull policy (did you mean "always"?): use missing (fetch only an image the host does not have; docker's and podman's default), always (fetch before every start; rkt's default) or never (use only what the host has)`},
		{"pull upper case", unit("") + "  pull: Never\n", `apps[0].pull: "Never" is not a pull policy (did you mean "never"?)`},
		{"pull kubernetes name", unit("") + "  pull: IfNotPresent\n", `apps[0].pull: "IfNotPresent" is not a pull policy: use missing`},
		{"pull second app", "name: api\napps:\n- image: x\n- image: y\n  pull: nevr\n", `u.yaml:5: apps[1].pull: "nevr" is not a pull policy (did you mean "never"?)`},
		{"pull boolean", unit("") + "  pull: false\n", `u.yaml:4: apps[0].pull: "false" is not a pull policy`},
		{"pull number", unit("") + "  pull: 1\n", `u.yaml:4: apps[0].pull: "1" is not a pull policy`},
		{"pull list", unit("") + "  pull: [always]\n", "u.yaml:4: apps[0].pull: expected a string, got a list"},
		{"pull mapping", unit("") + "  pull:\n    policy: always\n", "u.yaml:5: apps[0].pull: expected a string, got a mapping"},
		{"pull at top level", unit("pull: never\n"), `u.yaml:4: unknown field "pull" (it is a field of each app: apps[].pull)`},
		{"pull in JSON", `{"name": "api", "apps": [{"image": "x", "pull": "sometimes"}]}`, `u.yaml:1: apps[0].pull: "sometimes" is not a pull policy`},
		{"pull newline", unit("") + "  pull: \"never\\nExecStartPre=/bin/evil\"\n", "u.yaml:4: apps[0].pull: must not contain a newline"},
		// injection: values are lines of a unit file
		{"NUL in env value", unit("env:\n- name: A\n  value: \"x\\0y\"\n"), "u.yaml:6: env[0].value: must not contain a control character other than newline, carriage return and tab (NUL cannot be in an environment variable)"},
		{"escape in env value", unit("env:\n- name: A\n  value: \"x\\x1b[31m\"\n"), "u.yaml:6: env[0].value: must not contain a control character other than newline"},
		{"newline in env name", unit("env:\n- name: \"A\\nExecStartPre=/bin/evil\"\n  value: x\n"), "u.yaml:5: env[0].name: must not contain a newline"},
		{"newline in envFiles", unit("envFiles:\n- \"/a\\nExecStartPre=/bin/evil\"\n"), "u.yaml:5: envFiles[0]: must not contain a newline"},
		{"carriage return in arg", unit("args:\n- \"--a\\r--b\"\n"), "u.yaml:5: args[0]: must not contain a newline"},
		{"newline in app arg", unit("") + "  args:\n  - \"a\\n[Service]\"\n", "u.yaml:5: apps[0].args[0]: must not contain a newline"},
		{"NUL in image", "name: api\napps:\n- image: \"x\\0y\"\n", "apps[0].image: must not contain a newline or other control character"},
		{"tab in machine", unit("machine:\n- \"a=b\\tc\"\n"), "machine[0]: must not contain a newline"},
		{"unicode line separator", unit("net: \"a\\u2028b\"\n"), "net: must not contain a newline"},
		{"trailing backslash", unit("args:\n- 'foo\\'\n"), "u.yaml:5: args[0]: must not end with a backslash"},
		{"newline in name", "name: \"a\\nb\"\napps:\n- image: x\n", "u.yaml:1: name: must not contain a newline"},
		// scheduling
		{"negative replicas", unit("replicas: -1\n"), "u.yaml:4: replicas: -1 is out of range"},
		{"huge replicas", unit("replicas: 100000\n"), "replicas: 100000 is out of range"},
		{"negative per host", unit("maxReplicasPerHost: -2\n"), "maxReplicasPerHost: -2 must not be negative"},
		{"replicas with global", unit("global: true\nreplicas: 3\n"), "u.yaml:5: replicas: 3 with global: a global unit runs one instance on every matching machine (monder/kaylee ran 3 global units, 3 instances on each): remove replicas, or set it to 1; for more instances on each machine, store more units (api-1, api-2, ...) each global"},
		{"replicas with machineId", unit("machineId: abc\nreplicas: 2\n"), "u.yaml:5: replicas: 2 with machineId: a unit pinned with machineId runs one instance, replaced stop-first on update (monder/kaylee ran 2 pinned units; Kaylee's scheduler has no rolling update for replicas pinned to one machine): remove replicas, or set it to 1; for 2 replicas on that machine, drop machineId, give the machine fleet metadata of its own (host=NAME in its fleetd config) and write machine: [host=NAME], replicas: 2, maxReplicasPerHost: 2"},
		{"per host with global", unit("global: true\nmaxReplicasPerHost: 2\n"), "maxReplicasPerHost: has no effect on a unit with global"},
		{"global and machineId", unit("global: true\nmachineId: abc\n"), "global: a unit cannot be both global and pinned"},
		{"machineId and conflicts", unit("machineId: abc\nconflicts: [x]\n"), "conflicts: fleet does not accept conflicts on a unit pinned"},
		{"machineId and machine", unit("machineId: abc\nmachine: [a=b]\n"), "machine: has no effect with machineId"},
		{"bad machineId", unit("machineId: 'a/b'\n"), "machineId: \"a/b\" is not a machine ID"},
		{"metadata not-equal", unit("machine:\n- ssd!=true\n"), "u.yaml:5: machine[0]: \"ssd!=true\": fleet has no !="},
		{"metadata without value", unit("machine:\n- ssd\n"), "machine[0]: \"ssd\" must be key=value"},
		{"metadata empty value", unit("machine:\n- ssd=\n"), "machine[0]: \"ssd=\" must be key=value"},
		{"conflict with colon", unit("conflicts:\n- 'k2:x'\n"), "conflicts[0]: \"k2:x\" must be a unit name (lowercase"},
		{"conflict with space", unit("conflicts:\n- 'a b'\n"), "conflicts[0]: \"a b\" must be a unit name"},
		// conflicts: a glob reaches every unit on the cluster, other
		// teams' too (issue 20): only names and families (db-*).
		{"conflict with every unit", unit("global: true\nconflicts:\n- web\n- '*'\n"), `u.yaml:7: conflicts[1]: "*" would conflict with every unit on the cluster, other teams' too; name the units (conflicts: [db, cache])`},
		{"conflict any non-empty", unit("conflicts: ['?*']\n"), `u.yaml:4: conflicts[0]: "?*" would conflict with every unit on the cluster`},
		{"conflict suffix glob", unit("conflicts: ['*-db']\n"), `u.yaml:4: conflicts[0]: "*-db" is too broad: it matches units of any name`},
		{"conflict one-letter prefix", unit("conflicts: ['k*']\n"), `u.yaml:4: conflicts[0]: "k*" is too broad: it matches every unit whose name starts with "k"`},
		{"conflict prefix without dash", unit("conflicts: ['web*']\n"), `conflicts[0]: "web*" is too broad: it matches every unit whose name starts with "web"`},
		{"conflict question mark", unit("conflicts: ['web-?']\n"), `conflicts[0]: "web-?" is too broad`},
		{"conflict inner star", unit("conflicts: ['web-*-db']\n"), `conflicts[0]: "web-*-db" is too broad`},
		{"conflict bracket", unit("conflicts: ['web-[ab]']\n"), `conflicts[0]: "web-[ab]" must be a unit name`},
		{"conflict upper case", unit("conflicts: ['Web']\n"), `conflicts[0]: "Web" must be a unit name`},
		{"conflict too long", unit("conflicts: ['" + strings.Repeat("a", MaxNameLen+1) + "']\n"), `conflicts[0]: "aaaa`},
		// env
		{"env bad name", unit("env:\n- name: 1A\n  value: x\n"), "u.yaml:5: env[0].name: \"1A\" is not a variable name"},
		{"env reserved", unit("env:\n- name: KAYLEE_ID\n  value: x\n"), "env[0].name: KAYLEE_ID is set by Kaylee"},
		{"env duplicate", unit("env:\n- name: A\n  value: x\n- name: A\n  value: y\n"), "u.yaml:7: env[1].name: A is given twice"},
		{"envFile relative", unit("envFiles:\n- etc/env\n"), "u.yaml:5: envFiles[0]: \"etc/env\" must be an absolute path"},
		// volumes
		{"volume no path", unit("volumes:\n- source: /a\n"), "u.yaml:5: volumes[0].path: \"\" must be an absolute path"},
		{"volume relative source", unit("volumes:\n- source: a\n  path: /b\n"), "volumes[0].source: \"a\" must be an absolute host path"},
		{"volume dotdot", unit("volumes:\n- source: /a/../etc\n  path: /b\n"), "volumes[0].source"},
		{"volume comma", unit("volumes:\n- source: /a,kind=x\n  path: /b\n"), "volumes[0].source"},
		{"driver without id", unit("volumes:\n- driver: ebs\n  path: /b\n"), "volumes[0].id: \"\": a volume with a driver needs an id"},
		{"driver bad name", unit("volumes:\n- id: v\n  driver: ../x\n  path: /b\n"), "volumes[0].driver: \"../x\" is not a driver name"},
		{"mountservice without service", unit("volumes:\n- id: v\n  driver: systemd-mountservice-\n  path: /b\n"), "volumes[0].driver"},
		{"driver absolute source", unit("volumes:\n- id: v\n  driver: ebs\n  source: /x\n  path: /b\n"), "volumes[0].source: \"/x\" must be a relative path"},
		{"options without driver", unit("volumes:\n- source: /a\n  path: /b\n  options: x\n"), "volumes[0].options: options are for volume drivers"},
		{"net with space", unit("net: 'a b'\n"), "net: \"a b\" must not contain spaces"},
		// fleet's line limit
		{"line too long", unit("args:\n- " + strings.Repeat("x", 2100) + "\n"), "rendered ExecStart= line of api is"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := Load("u.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("accepted: %s", docs[0].Spec.CanonicalJSON())
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error does not contain %q:\n%v", tt.want, err)
			}
			for _, d := range docs {
				if d.Err == nil {
					t.Errorf("document %q has no error", d.Spec.Name)
				}
			}
		})
	}
}

func TestValidateWithoutFile(t *testing.T) {
	s := Spec{Name: "Bad", Apps: []App{{Image: "x"}}}
	err := s.Validate()
	if err == nil || err.Error() != `<input>: name: "Bad" is not a valid name: use lowercase letters, digits and -, starting and ending with a letter or digit (it becomes an etcd key and a systemd unit name, so no /, :, .., spaces or upper case)` {
		t.Fatalf("got %v", err)
	}
	if fe := FieldErrors(err); len(fe) != 1 || fe[0].Field != "name" {
		t.Fatalf("FieldErrors = %+v", fe)
	}
}

func TestSuggest(t *testing.T) {
	cands := []string{"replicas", "maxReplicasPerHost", "machine", "machineId", "args", "apps"}
	tests := map[string]string{
		"replcas": "replicas", "Replicas": "replicas", "machineID": "machineId", "maxReplicaPerHost": "maxReplicasPerHost",
		"arg": "args", "completelyelse": "",
	}
	for in, want := range tests {
		if got := suggest(in, cands); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

// healthUnit builds a unit file with a health block: line 4 is "health:",
// its first field is on line 5.
func healthUnit(body string) string {
	return unit("health:\n" + body)
}

func TestValidateHealthAccepts(t *testing.T) {
	good := map[string]string{
		"http":               healthUnit("  http: {port: 8080, path: /healthz}\n"),
		"http default path":  healthUnit("  http: {port: 80}\n"),
		"http path charset":  healthUnit("  http:\n    port: 1\n    path: /a-b/c_d.e~f?g=h&i=j\n"),
		"http longest path":  healthUnit("  http: {port: 65535, path: /" + strings.Repeat("a", MaxHealthPathLen-1) + "}\n"),
		"tcp":                healthUnit("  tcp: {port: 5432}\n"),
		"exec":               healthUnit("  exec: [/usr/bin/check, --quick, --user=a@b, 'x:y,z+1']\n"),
		"exec 16 words":      healthUnit("  exec: [/c" + strings.Repeat(", a", MaxHealthExecWords-1) + "]\n"),
		"every field":        healthUnit("  tcp: {port: 1}\n  interval: 500ms\n  timeout: 1m30s\n  startPeriod: 1h\n  failures: 100\n"),
		"defaults written":   healthUnit("  tcp: {port: 1}\n  interval: 5s\n  timeout: 2s\n  startPeriod: 60s\n  failures: 3\n"),
		"timeout > interval": healthUnit("  tcp: {port: 1}\n  interval: 1s\n  timeout: 10s\n"),
		"failures 0 default": healthUnit("  tcp: {port: 1}\n  failures: 0\n"),
		"rkt engine":         healthUnit("  http: {port: 80}\n") + "engine: rkt\n",
		"docker engine":      "name: web\nengine: docker\napps:\n- image: nginx\nhealth:\n  http: {port: 80, path: /}\n",
		"null health":        unit("health:\n"),
		"JSON":               `{"name":"a","apps":[{"image":"x"}],"health":{"exec":["/bin/check"],"interval":"1s"}}`,
	}
	for name, in := range good {
		t.Run(name, func(t *testing.T) {
			docs, err := Load("u.yaml", []byte(in))
			if err != nil {
				t.Fatalf("valid unit refused: %v", err)
			}
			if _, err := Render(&docs[0].Spec, RenderOptions{}); err != nil {
				t.Fatalf("valid unit does not render: %v", err)
			}
		})
	}
}

// TestValidateHealthRefuses pins the exact error text of every health rule.
func TestValidateHealthRefuses(t *testing.T) {
	long := "/" + strings.Repeat("a", MaxHealthPathLen)
	tests := []struct {
		name, in, want string
	}{
		// one check
		{"no check", healthUnit("  interval: 5s\n"), "u.yaml:4: health: needs one check: http (port and path), tcp (port) or exec (a command)"},
		{"empty block", unit("health: {}\n"), "u.yaml:4: health: needs one check: http (port and path), tcp (port) or exec (a command)"},
		{"empty exec", healthUnit("  exec: []\n"), "u.yaml:4: health: needs one check: http (port and path), tcp (port) or exec (a command)"},
		{"two checks", healthUnit("  http: {port: 80}\n  exec: [/bin/true]\n"), "u.yaml:4: health: has http and exec: give exactly one check of http, tcp and exec"},
		{"three checks", healthUnit("  http: {port: 80}\n  tcp: {port: 80}\n  exec: [/bin/true]\n"), "u.yaml:4: health: has http, tcp and exec: give exactly one check of http, tcp and exec"},
		// ports
		{"http port missing", healthUnit("  http: {path: /x}\n"), "u.yaml:5: health.http.port: required: the port to check, 1 to 65535"},
		{"http port zero", healthUnit("  http:\n    port: 0\n"), "u.yaml:6: health.http.port: required: the port to check, 1 to 65535"},
		{"http port too big", healthUnit("  http:\n    port: 65536\n"), "u.yaml:6: health.http.port: 65536 is out of range: 1 to 65535"},
		{"tcp port negative", healthUnit("  tcp:\n    port: -1\n"), "u.yaml:6: health.tcp.port: -1 is out of range: 1 to 65535"},
		// http path
		{"path relative", healthUnit("  http:\n    port: 80\n    path: healthz\n"), `u.yaml:7: health.http.path: "healthz" must start with /`},
		{"path space", healthUnit("  http:\n    port: 80\n    path: /a b\n"), `u.yaml:7: health.http.path: "/a b" may only hold letters, digits and / . _ ~ ? = & - (no %, spaces, quotes or $)`},
		{"path percent", healthUnit("  http:\n    port: 80\n    path: /a%20b\n"), `u.yaml:7: health.http.path: "/a%20b" may only hold letters, digits and / . _ ~ ? = & - (no %, spaces, quotes or $)`},
		{"path dollar", healthUnit("  http:\n    port: 80\n    path: /$HOME\n"), `u.yaml:7: health.http.path: "/$HOME" may only hold letters, digits and / . _ ~ ? = & - (no %, spaces, quotes or $)`},
		{"path quote", healthUnit("  http:\n    port: 80\n    path: \"/a'b\"\n"), `u.yaml:7: health.http.path: "/a'b" may only hold letters, digits and / . _ ~ ? = & - (no %, spaces, quotes or $)`},
		{"path semicolon", healthUnit("  http:\n    port: 80\n    path: /a;reboot\n"), `u.yaml:7: health.http.path: "/a;reboot" may only hold letters, digits and / . _ ~ ? = & - (no %, spaces, quotes or $)`},
		{"path backslash", healthUnit("  http:\n    port: 80\n    path: /a\\nb\n"), `u.yaml:7: health.http.path: "/a\\nb" may only hold letters, digits and / . _ ~ ? = & - (no %, spaces, quotes or $)`},
		{"path too long", healthUnit("  http:\n    port: 80\n    path: " + long + "\n"), "u.yaml:7: health.http.path: is 257 bytes; at most 256"},
		{"path newline", healthUnit("  http:\n    port: 80\n    path: \"/a\\nExecStartPre=/bin/evil\"\n"),
			"u.yaml:7: health.http.path: must not contain a newline or other control character: unit files are line-based, so it could inject systemd directives\n" +
				`u.yaml:7: health.http.path: "/a\nExecStartPre=/bin/evil" may only hold letters, digits and / . _ ~ ? = & - (no %, spaces, quotes or $)`},
		// exec
		{"exec relative", healthUnit("  exec: [check]\n"), `u.yaml:5: health.exec[0]: "check" must be an absolute path: the command the machine runs`},
		{"exec space", healthUnit("  exec: [/bin/check, 'a b']\n"), `u.yaml:5: health.exec[1]: "a b" may only hold letters, digits and _ . / : = , @ + - (no spaces, quotes, $ or %: the words are passed as they are, never through a shell)`},
		{"exec dollar", healthUnit("  exec: [/bin/check, $HOME]\n"), `u.yaml:5: health.exec[1]: "$HOME" may only hold letters, digits and _ . / : = , @ + - (no spaces, quotes, $ or %: the words are passed as they are, never through a shell)`},
		{"exec percent", healthUnit("  exec: [/bin/check, '%n']\n"), `u.yaml:5: health.exec[1]: "%n" may only hold letters, digits and _ . / : = , @ + - (no spaces, quotes, $ or %: the words are passed as they are, never through a shell)`},
		{"exec quote", healthUnit("  exec: [/bin/check, \"'x'\"]\n"), `u.yaml:5: health.exec[1]: "'x'" may only hold letters, digits and _ . / : = , @ + - (no spaces, quotes, $ or %: the words are passed as they are, never through a shell)`},
		{"exec semicolon", healthUnit("  exec: [/bin/check, ';', /bin/reboot]\n"), `u.yaml:5: health.exec[1]: ";" may only hold letters, digits and _ . / : = , @ + - (no spaces, quotes, $ or %: the words are passed as they are, never through a shell)`},
		{"exec empty word", healthUnit("  exec: [/bin/check, '']\n"), `u.yaml:5: health.exec[1]: "" may only hold letters, digits and _ . / : = , @ + - (no spaces, quotes, $ or %: the words are passed as they are, never through a shell)`},
		{"exec shell line", healthUnit("  exec: ['/bin/sh -c true']\n"), `u.yaml:5: health.exec[0]: "/bin/sh -c true" may only hold letters, digits and _ . / : = , @ + - (no spaces, quotes, $ or %: the words are passed as they are, never through a shell)`},
		{"exec 17 words", healthUnit("  exec: [/c" + strings.Repeat(", a", MaxHealthExecWords) + "]\n"), "u.yaml:5: health.exec: 17 words; at most 16"},
		// durations
		{"interval without unit", healthUnit("  tcp: {port: 1}\n  interval: 5\n"), `u.yaml:6: health.interval: "5" is not a duration: use a number with a unit, such as 5s, 500ms or 1m (default 5s)`},
		{"interval word", healthUnit("  tcp: {port: 1}\n  interval: soon\n"), `u.yaml:6: health.interval: "soon" is not a duration: use a number with a unit, such as 5s, 500ms or 1m (default 5s)`},
		{"interval systemd style", healthUnit("  tcp: {port: 1}\n  interval: 1min\n"), `u.yaml:6: health.interval: "1min" is not a duration: use a number with a unit, such as 5s, 500ms or 1m (default 5s)`},
		{"interval zero", healthUnit("  tcp: {port: 1}\n  interval: 0s\n"), `u.yaml:6: health.interval: "0s" is out of range: more than 0 and at most 1h (default 5s)`},
		{"timeout negative", healthUnit("  tcp: {port: 1}\n  timeout: -1s\n"), `u.yaml:6: health.timeout: "-1s" is out of range: more than 0 and at most 1h (default 2s)`},
		{"timeout over an hour", healthUnit("  tcp: {port: 1}\n  timeout: 1h0m1s\n"), `u.yaml:6: health.timeout: "1h0m1s" is out of range: more than 0 and at most 1h (default 2s)`},
		{"startPeriod two hours", healthUnit("  tcp: {port: 1}\n  startPeriod: 2h\n"), `u.yaml:6: health.startPeriod: "2h" is out of range: more than 0 and at most 1h (default 60s)`},
		// failures
		{"failures negative", healthUnit("  tcp: {port: 1}\n  failures: -1\n"), "u.yaml:6: health.failures: -1 is out of range: 1 to 100 (default 3)"},
		{"failures too many", healthUnit("  tcp: {port: 1}\n  failures: 101\n"), "u.yaml:6: health.failures: 101 is out of range: 1 to 100 (default 3)"},
		// several problems at once, each with its line
		{"every problem", healthUnit("  http:\n    port: 0\n    path: x\n  interval: 0s\n  failures: 200\n"),
			"u.yaml:6: health.http.port: required: the port to check, 1 to 65535\n" +
				`u.yaml:7: health.http.path: "x" must start with /` + "\n" +
				`u.yaml:8: health.interval: "0s" is out of range: more than 0 and at most 1h (default 5s)` + "\n" +
				"u.yaml:9: health.failures: 200 is out of range: 1 to 100 (default 3)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := Load("u.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("accepted: %s", docs[0].Spec.CanonicalJSON())
			}
			if err.Error() != tt.want {
				t.Fatalf("error\n got %s\nwant %s", err, tt.want)
			}
			// Spec.Validate (no file) finds the same problems.
			if len(docs) == 1 && docs[0].Spec.Health != nil {
				if err := docs[0].Spec.Validate(); err == nil {
					t.Error("Spec.Validate accepted it")
				}
			}
		})
	}
}

// TestValidateHealthLineLimit: the check script takes most of a unit file
// line; long exec words are refused at validate time, not by fleet.
func TestValidateHealthLineLimit(t *testing.T) {
	word := strings.Repeat("w", 40)
	in := healthUnit("  exec: [/c" + strings.Repeat(", "+word, MaxHealthExecWords-1) + "]\n")
	_, err := Load("u.yaml", []byte(in))
	if err == nil || !strings.HasPrefix(err.Error(), "u.yaml:1: rendered ExecStartPost= line of api is ") {
		t.Fatalf("want the line limit error, got %v", err)
	}
}
