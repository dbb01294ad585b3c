package deploy

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/fleet/schema"
)

var update = flag.Bool("update", false, "rewrite golden files")

func loadOne(t testing.TB, path string) *Spec {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := Load(path, data)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return &docs[0].Spec
}

func unitText(units []*schema.Unit) string {
	var b strings.Builder
	for _, u := range units {
		fmt.Fprintf(&b, "# %s desired=%s\n%s\n", u.Name, u.DesiredState, schema.MapSchemaUnitOptionsToUnitFile(u.Options))
	}
	return b.String()
}

func TestRenderGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/render/*.yaml")
	if len(files) < 6 {
		t.Fatalf("found %d inputs", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			// X.members, when there is one, places a stateful unit's
			// members: a machine ID per line, by ordinal ("" unplaced).
			var o RenderOptions
			if data, err := os.ReadFile(strings.TrimSuffix(f, ".yaml") + ".members"); err == nil {
				o.Members = strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
			}
			units, err := Render(loadOne(t, f), o)
			if err != nil {
				t.Fatal(err)
			}
			got := unitText(units)
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./deploy -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("rendering of %s differs from %s:\n%s", f, golden, got)
			}
		})
	}
}

// options returns the values of one option name in a unit.
func options(u *schema.Unit, section, name string) []string {
	var out []string
	for _, o := range u.Options {
		if o.Section == section && o.Name == name {
			out = append(out, o.Value)
		}
	}
	return out
}

func TestRenderReplicaGroups(t *testing.T) {
	tests := []struct {
		replicas, perHost int
		wantGroups        int
		wantConflict      bool
	}{
		{4, 2, 2, true},
		{3, 1, 1, true},
		{5, 2, 2, true},
		{3, 0, 1, false},
		{2, 5, 2, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%d", tt.replicas, tt.perHost), func(t *testing.T) {
			s := &Spec{Name: "api", Replicas: tt.replicas, MaxReplicasPerHost: tt.perHost, Apps: []App{{Image: "x"}}}
			units, err := Render(s, RenderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(units) != tt.replicas {
				t.Fatalf("%d units, want %d", len(units), tt.replicas)
			}
			members := map[string]int{}
			for i, u := range units {
				n, ok := ParseUnitName("k2", u.Name)
				if !ok || n.Name != "api" || n.Index != i || n.SpecHash != s.Hash(0) {
					t.Fatalf("unit %d: bad name %q", i, u.Name)
				}
				members[n.Group]++
				c := options(u, "X-Fleet", "Conflicts")
				want := fmt.Sprintf("k2:api:*:%s:*.service", n.Group)
				if tt.wantConflict != (len(c) == 1 && c[0] == want) {
					t.Errorf("unit %s conflicts %v, want group conflict %v", u.Name, c, tt.wantConflict)
				}
			}
			if len(members) != tt.wantGroups {
				t.Errorf("%d groups, want %d: %v", len(members), tt.wantGroups, members)
			}
			// With M groups whose members conflict, at most M replicas share a host.
			if tt.perHost > 0 {
				for g, n := range members {
					if max := (tt.replicas + tt.perHost - 1) / tt.perHost; n > max {
						t.Errorf("group %s has %d members, want at most %d", g, n, max)
					}
				}
			}
		})
	}
}

func TestRenderDeterministicAndRestart(t *testing.T) {
	s := loadOne(t, "testdata/countly.yaml")
	a, _ := Render(s, RenderOptions{})
	b, _ := Render(loadOne(t, "testdata/countly.yaml"), RenderOptions{})
	if unitText(a) != unitText(b) {
		t.Fatal("two renders of the same spec differ")
	}
	r, _ := Render(s, RenderOptions{Restart: 1})
	if r[0].Name == a[0].Name {
		t.Fatal("restart counter did not rename the units")
	}
	p, _ := Render(s, RenderOptions{UnitPrefix: "kx"})
	if !strings.HasPrefix(p[0].Name, "kx:countly:") {
		t.Fatalf("prefix not applied: %s", p[0].Name)
	}
	if _, err := Render(s, RenderOptions{UnitPrefix: "K:2"}); err == nil {
		t.Fatal("bad unit prefix accepted")
	}
	if _, err := Render(&Spec{Name: "a", Apps: []App{{Image: "x", Pull: "sometimes"}}}, RenderOptions{}); err == nil {
		t.Fatal("bad pull policy rendered")
	}
	// A changed spec changes the hash; a re-ordered YAML file does not.
	s2 := *s
	s2.Apps = append([]App{{Image: "docker://monder/countly-docker:2"}}, s.Apps[1:]...)
	if s2.Hash(0) == s.Hash(0) {
		t.Fatal("changed spec kept its hash")
	}
}

// Issue 21, item 2: a change of replicas alone keeps the spec hash, and
// every replica that stays keeps its fleet unit: the same name and the
// same unit file. Replicas are added or removed at the end.
func TestRenderScaleKeepsReplicas(t *testing.T) {
	base := func(n int) Spec {
		return Spec{Name: "web", Replicas: n, Engine: EngineDocker, Apps: []App{{Image: "docker://web:1"}}}
	}
	perHost := func(n int) Spec { s := base(n); s.MaxReplicasPerHost = 2; return s }
	spread := func(n int) Spec { s := base(n); s.Spread = &Spread{Key: "az"}; return s }
	tests := []struct {
		name     string
		spec     func(n int) Spec
		from, to int
	}{
		{"plain up", base, 2, 3},
		{"plain down", base, 3, 1},
		{"maxReplicasPerHost up", perHost, 2, 5},
		{"maxReplicasPerHost down", perHost, 5, 1},
		{"spread up", spread, 2, 3},
		{"from 1", base, 1, 4},
	}
	zones := []string{"a", "b", "c", "a", "b"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := tt.spec(tt.from), tt.spec(tt.to)
			if a.Hash(0) != b.Hash(0) {
				t.Fatalf("replicas %d → %d changed the spec hash: %s → %s", tt.from, tt.to, a.Hash(0), b.Hash(0))
			}
			ua, err := Render(&a, RenderOptions{Zones: zones[:tt.from]})
			if err != nil {
				t.Fatal(err)
			}
			ub, err := Render(&b, RenderOptions{Zones: zones[:tt.to]})
			if err != nil {
				t.Fatal(err)
			}
			for i := range min(tt.from, tt.to) {
				if ua[i].Name != ub[i].Name {
					t.Fatalf("replica %d renamed by replicas %d → %d: %s → %s", i, tt.from, tt.to, ua[i].Name, ub[i].Name)
				}
				if x, y := unitText(ua[i:i+1]), unitText(ub[i:i+1]); x != y {
					t.Fatalf("unit file of replica %d changed by replicas %d → %d:\n%s\n---\n%s", i, tt.from, tt.to, x, y)
				}
			}
		})
	}
	// Descriptions count from 0, as the names do, and hold no count.
	s := base(2)
	units, _ := Render(&s, RenderOptions{})
	for i, u := range units {
		want := fmt.Sprintf("kaylee web replica %d (spec %s)", i, s.Hash(0))
		if got := optionValue(u, "Unit", "Description"); got != want || !strings.HasSuffix(u.Name, fmt.Sprintf(":%d.service", i)) {
			t.Fatalf("unit %s: Description=%s, want %s", u.Name, got, want)
		}
	}
}

// optionValue is the value of the unit's first option section.name.
func optionValue(u *schema.Unit, section, name string) string {
	for _, o := range u.Options {
		if o.Section == section && o.Name == name {
			return o.Value
		}
	}
	return ""
}

// Issue 21, item 7: KAYLEE_ID is unique per instance. A global unit is one
// fleet unit that fleet runs on every machine: its KAYLEE_ID, container
// name, rkt uuid file and health check target end in systemd's machine
// ID specifier (%m), which systemd expands on each machine, unescaped;
// a % the user wrote stays escaped. Other units keep theirs as they are.
func TestRenderGlobalInstanceIDPerMachine(t *testing.T) {
	health := &Health{TCP: &TCPCheck{Port: 80}}
	tests := []struct {
		name string
		spec Spec
		id   string // the ID as systemd reads it, before expansion
	}{
		{"global docker", Spec{Name: "agent", Global: true, Engine: EngineDocker, Health: health,
			Env: []EnvVar{{Name: "PCT", Value: "50%m"}}, Apps: []App{{Image: "docker://agent:1", Args: []string{"--p=%m"}}}}, "_%m"},
		{"global rkt", Spec{Name: "agent", Global: true, Engine: EngineRkt, Apps: []App{{Image: "docker://agent:1"}}}, "_%m"},
		{"global podman", Spec{Name: "agent", Global: true, Engine: EnginePodman, Health: health,
			Env: []EnvVar{{Name: "PCT", Value: "50%m"}}, Apps: []App{{Image: "docker://agent:1", Args: []string{"--p=%m"}}, {Image: "side:2"}}}, "_%m"},
		{"replicated docker", Spec{Name: "agent", Replicas: 2, Engine: EngineDocker, Health: health, Apps: []App{{Image: "docker://agent:1"}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			units, err := Render(&tt.spec, RenderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			u := units[0]
			id, _ := ParseUnitName(DefaultUnitPrefix, u.Name)
			want := id.InstanceID() + tt.id
			if got := optionValue(u, "Service", "Environment"); got != `"KAYLEE_ID=`+want+`"` {
				t.Fatalf("Environment=%s, want KAYLEE_ID=%s", got, want)
			}
			var uses []string
			for _, o := range u.Options {
				if o.Section != "Service" || !strings.HasPrefix(o.Name, "Exec") {
					continue
				}
				for _, w := range strings.Fields(o.Value) {
					if strings.Contains(w, id.InstanceID()) {
						uses = append(uses, w)
						if !strings.Contains(w, want) || strings.Contains(w, want+"%") || strings.Contains(w, id.InstanceID()+"_%%m") {
							t.Errorf("%s=… holds the instance ID as %s, want %s", o.Name, w, want)
						}
					}
				}
			}
			if len(uses) < 3 {
				t.Fatalf("instance ID used %d times in Exec lines: %v", len(uses), uses)
			}
			text := unitText(units)
			if tt.spec.Engine == EngineDocker && !strings.Contains(text, "--name "+want+" ") {
				t.Fatalf("docker --name is not %s:\n%s", want, text)
			}
			if tt.spec.Env != nil && (!strings.Contains(text, `"PCT=50%%m"`) || !strings.Contains(text, "--p=%%m")) {
				t.Fatalf("a %% the user wrote is not escaped:\n%s", text)
			}
		})
	}
}

func TestRenderKinds(t *testing.T) {
	tests := []struct {
		file   string
		units  int
		xfleet map[string][]string
	}{
		{"global", 1, map[string][]string{"Global": {"true"}, "MachineMetadata": {"role=worker", "role=edge"}, "Conflicts": nil}},
		{"machineid", 1, map[string][]string{"MachineID": {"2b6f0cc904d137be2e1730235f5664094b831186"}, "Conflicts": nil, "Global": nil}},
		{"single", 1, map[string][]string{"Conflicts": {"k2:cron:*.service", "k2:backup-*:*.service"}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			units, err := Render(loadOne(t, "testdata/render/"+tt.file+".yaml"), RenderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(units) != tt.units {
				t.Fatalf("%d units, want %d", len(units), tt.units)
			}
			for name, want := range tt.xfleet {
				if got := options(units[0], "X-Fleet", name); strings.Join(got, "|") != strings.Join(want, "|") {
					t.Errorf("X-Fleet %s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

func TestRenderEscaping(t *testing.T) {
	s := loadOne(t, "testdata/render/docker.yaml")
	units, _ := Render(s, RenderOptions{})
	env := options(units[0], "Service", "Environment")
	if want := `"GREETING=say \"hi\" at 100%% \\ $HOME"`; env[1] != want {
		t.Errorf("Environment = %s, want %s", env[1], want)
	}
	start := options(units[0], "Service", "ExecStart")[0]
	if !strings.Contains(start, "-e KAYLEE_ID -e GREETING") || strings.Contains(start, "say") {
		t.Errorf("docker gets env values through the environment, not the command line: %s", start)
	}
	c := loadOne(t, "testdata/render/countly.yaml")
	cu, _ := Render(c, RenderOptions{})
	start = options(cu[0], "Service", "ExecStart")[0]
	if !strings.Contains(start, "--format '$$ip:80' /services/countly/${KAYLEE_ID} ---") {
		t.Errorf("seed's $$ and ${KAYLEE_ID} must reach systemd as written: %s", start)
	}
	cr := loadOne(t, "testdata/render/single.yaml")
	su, _ := Render(cr, RenderOptions{})
	if start = options(su[0], "Service", "ExecStart")[0]; !strings.Contains(start, "'date +%%s'") {
		t.Errorf("%% must be escaped as %%%%: %s", start)
	}
}

func TestParseUnitName(t *testing.T) {
	good := UnitName{Prefix: "k2", Name: "api-1", SpecHash: "0123abcd", Group: "a1b2c3", Index: 12}
	if got, ok := ParseUnitName("k2", good.String()); !ok || got != good {
		t.Fatalf("round trip: %+v %v", got, ok)
	}
	for _, bad := range []string{
		"k2:api:0123abcd:a1b2c3:1",          // no suffix
		"k3:api:0123abcd:a1b2c3:1.service",  // other prefix
		"k2:api:0123abcd:a1b2c3.service",    // missing index
		"k2:API:0123abcd:a1b2c3:1.service",  // bad name
		"k2:api:0123abcX:a1b2c3:1.service",  // bad hash
		"k2:api:0123abcd:a1b2c3:01.service", // non-canonical index
		"k2:api:0123abcd:a1b2c3:-1.service",
		"etcd-member.service",
	} {
		if _, ok := ParseUnitName("k2", bad); ok {
			t.Errorf("ParseUnitName accepted %q", bad)
		}
	}
}

func BenchmarkLoadRender(b *testing.B) {
	data, _ := os.ReadFile("testdata/countly.yaml")
	b.ReportAllocs()
	for b.Loop() {
		docs, err := Load("countly.yaml", data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Render(&docs[0].Spec, RenderOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRenderPullPolicy pins the exact pull lines of each policy and engine:
// {id} stands for the instance ID, {uuid} for rkt's uuid file.
func TestRenderPullPolicy(t *testing.T) {
	const (
		dockerRm  = "-/usr/bin/docker rm -f {id}"
		dockerRun = "/usr/bin/docker run%s --rm --name {id} -e KAYLEE_ID --label=io.kaylee.unit=api --label=io.kaylee.instance={id} --label=io.kaylee.machine=%%m nginx:1.25"
		rktStop   = "-/usr/bin/rkt stop --force=true --uuid-file={uuid}"
		rktRm     = "-/usr/bin/rkt rm --uuid-file={uuid}"
		rktRun    = "/usr/bin/rkt run%s --insecure-options=image --inherit-env --uuid-file-save={uuid} docker://nginx:1.25 ---"
	)
	tests := []struct {
		engine, pull string
		pre          []string
		start        string
	}{
		{"docker", "", []string{dockerRm}, fmt.Sprintf(dockerRun, "")},
		{"docker", "missing", []string{dockerRm}, fmt.Sprintf(dockerRun, "")},
		{"docker", "always", []string{dockerRm, "/usr/bin/docker pull nginx:1.25"}, fmt.Sprintf(dockerRun, "")},
		{"docker", "never", []string{dockerRm}, fmt.Sprintf(dockerRun, " --pull=never")},
		// rkt's default is always, as monder/kaylee's rkt fetch was: a
		// restart updates :latest.
		{"rkt", "", []string{rktStop, rktRm, "/usr/bin/rkt fetch --insecure-options=image --pull-policy=update docker://nginx:1.25"}, fmt.Sprintf(rktRun, "")},
		{"rkt", "missing", []string{rktStop, rktRm, "/usr/bin/rkt fetch --insecure-options=image --pull-policy=new docker://nginx:1.25"}, fmt.Sprintf(rktRun, "")},
		{"rkt", "always", []string{rktStop, rktRm, "/usr/bin/rkt fetch --insecure-options=image --pull-policy=update docker://nginx:1.25"}, fmt.Sprintf(rktRun, "")},
		{"rkt", "never", []string{rktStop, rktRm}, fmt.Sprintf(rktRun, " --pull-policy=never")},
	}
	for _, tt := range tests {
		t.Run(tt.engine+"/"+tt.pull, func(t *testing.T) {
			s := &Spec{Name: "api", Engine: tt.engine, Apps: []App{{Image: "docker://nginx:1.25", Pull: tt.pull}}}
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			units, err := Render(s, RenderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			n, _ := ParseUnitName("k2", units[0].Name)
			expand := strings.NewReplacer("{id}", n.InstanceID(), "{uuid}", "/var/run/kaylee_"+n.InstanceID()+".uuid").Replace
			var want []string
			for _, p := range tt.pre {
				want = append(want, expand(p))
			}
			if got := options(units[0], "Service", "ExecStartPre"); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("ExecStartPre:\n got %q\nwant %q", got, want)
			}
			if got := options(units[0], "Service", "ExecStart"); len(got) != 1 || got[0] != expand(tt.start) {
				t.Errorf("ExecStart:\n got %q\nwant %q", got, expand(tt.start))
			}
		})
	}
}

// TestRenderRktPullMixed: each app fetches with its own policy, and rkt
// run's pod-wide --pull-policy=never only comes when every app is never.
func TestRenderRktPullMixed(t *testing.T) {
	tests := []struct {
		pulls      []string
		fetches    []string // images with a fetch line, in order
		runNever   bool
		fetchFlags []string
	}{
		{[]string{"never", "never", "never"}, nil, true, nil},
		{[]string{"never", "", "never"}, []string{"b"}, false, []string{"--pull-policy=update"}},
		{[]string{"always", "never", "missing"}, []string{"a", "c"}, false, []string{"--pull-policy=update", "--pull-policy=new"}},
		{[]string{"", "", ""}, []string{"a", "b", "c"}, false, []string{"--pull-policy=update", "--pull-policy=update", "--pull-policy=update"}},
		{[]string{"missing", "", "missing"}, []string{"a", "b", "c"}, false, []string{"--pull-policy=new", "--pull-policy=update", "--pull-policy=new"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.pulls, ","), func(t *testing.T) {
			s := &Spec{Name: "pod"}
			for i, p := range tt.pulls {
				s.Apps = append(s.Apps, App{Image: string(rune('a' + i)), Pull: p})
			}
			units, err := Render(s, RenderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for i, img := range tt.fetches {
				want = append(want, "/usr/bin/rkt fetch --insecure-options=image "+tt.fetchFlags[i]+" "+img)
			}
			var got []string
			for _, pre := range options(units[0], "Service", "ExecStartPre") {
				if strings.Contains(pre, " fetch ") {
					got = append(got, pre)
				}
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("fetch lines:\n got %q\nwant %q", got, want)
			}
			start := options(units[0], "Service", "ExecStart")[0]
			if has := strings.HasPrefix(start, "/usr/bin/rkt run --pull-policy=never "); has != tt.runNever {
				t.Errorf("rkt run --pull-policy=never: %v, want %v: %s", has, tt.runNever, start)
			}
			if strings.Count(start, "--pull-policy") > 1 {
				t.Errorf("rkt run has more than one --pull-policy: %s", start)
			}
		})
	}
}

// TestRenderDockerLabelsAndStop: the labels come before the user's args,
// %m (ours) reaches systemd as a specifier while the user's % is escaped,
// and only docker units count docker stop's exit codes as success.
func TestRenderDockerLabelsAndStop(t *testing.T) {
	s := &Spec{Name: "web", Engine: EngineDocker, Replicas: 2, Args: []string{"--memory=64m", "--label=note=100%"},
		Apps: []App{{Image: "nginx", Cmd: "sh", Args: []string{"-c", "'date +%s'"}}}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	units, err := Render(s, RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		n, _ := ParseUnitName("k2", u.Name)
		id := n.InstanceID()
		start := options(u, "Service", "ExecStart")[0]
		labels := "-e KAYLEE_ID --label=io.kaylee.unit=web --label=io.kaylee.instance=" + id + " --label=io.kaylee.machine=%m --memory=64m --label=note=100%% nginx sh -c 'date +%%s'"
		if !strings.HasSuffix(start, labels) {
			t.Errorf("ExecStart of %s:\n %s\nwant it to end with\n %s", u.Name, start, labels)
		}
		if strings.Contains(start, "%%m") {
			t.Errorf("machine label escaped: %s", start)
		}
		if got := options(u, "Service", "SuccessExitStatus"); len(got) != 1 || got[0] != "143 137" {
			t.Errorf("SuccessExitStatus = %q, want [143 137]", got)
		}
	}
	rkt, _ := Render(&Spec{Name: "pod", Apps: []App{{Image: "x"}}}, RenderOptions{})
	if got := options(rkt[0], "Service", "SuccessExitStatus"); got != nil {
		t.Errorf("rkt unit has SuccessExitStatus %q", got)
	}
	if start := options(rkt[0], "Service", "ExecStart")[0]; strings.Contains(start, "--label") || strings.Contains(start, "%m") {
		t.Errorf("rkt unit has docker labels: %s", start)
	}
}

// TestRenderHealth pins the exact ExecStartPost line of each check and
// engine: Kaylee's script, then the check's values as separate words.
// {id} stands for the instance ID.
func TestRenderHealth(t *testing.T) {
	script := "/bin/bash -c " + healthScriptWord + " kaylee-health {id} "
	tests := []struct {
		name, engine string
		health       *Health
		want         string
	}{
		{"http docker", "docker", &Health{HTTP: &HTTPCheck{Port: 8080, Path: "/healthz"}},
			script + "http 8080 /healthz 5 2 60 3 /usr/bin/docker"},
		{"http default path rkt", "", &Health{HTTP: &HTTPCheck{Port: 80}, Failures: 1},
			script + "http 80 / 5 2 60 1 -"},
		{"tcp rkt rounded up", "rkt", &Health{TCP: &TCPCheck{Port: 5432}, Interval: "500ms", Timeout: "1001ms", StartPeriod: "1m30s"},
			script + "tcp 5432 - 1 2 90 3 -"},
		{"tcp docker longest", "docker", &Health{TCP: &TCPCheck{Port: 65535}, Interval: "1h", Timeout: "1h", StartPeriod: "1h", Failures: 100},
			script + "tcp 65535 - 3600 3600 3600 100 /usr/bin/docker"},
		{"exec docker", "docker", &Health{Exec: []string{"/usr/bin/check", "--quick", "--user=a@b:c,d+e"}, Interval: "10s"},
			script + "exec - - 10 2 60 3 /usr/bin/docker /usr/bin/check --quick --user=a@b:c,d+e"},
		{"exec rkt", "rkt", &Health{Exec: []string{"/bin/true"}, Timeout: "1us"},
			script + "exec - - 5 1 60 3 - /bin/true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Spec{Name: "api", Engine: tt.engine, Replicas: 2, Apps: []App{{Image: "nginx"}}, Health: tt.health}
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			units, err := Render(s, RenderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range units {
				n, _ := ParseUnitName("k2", u.Name)
				want := strings.ReplaceAll(tt.want, "{id}", n.InstanceID())
				if got := options(u, "Service", "ExecStartPost"); len(got) != 1 || got[0] != want {
					t.Fatalf("ExecStartPost:\n got %q\nwant %q", got, want)
				}
				// Right after ExecStart; the start itself stays unbounded
				// (the script bounds itself by startPeriod).
				for i, o := range u.Options {
					if o.Name == "ExecStart" && u.Options[i+1].Name != "ExecStartPost" {
						t.Errorf("ExecStartPost does not follow ExecStart: %s", u.Options[i+1].Name)
					}
				}
				if got := options(u, "Service", "TimeoutStartSec"); len(got) != 1 || got[0] != "0" {
					t.Errorf("TimeoutStartSec = %q", got)
				}
				// What systemd runs: bash, the script exactly as written
				// in Go (without indentation), and the values.
				argv := execArgv(t, options(u, "Service", "ExecStartPost")[0])
				if argv[0] != BashPath || argv[1] != "-c" || argv[2] != plainHealthScript() || argv[3] != "kaylee-health" || argv[4] != n.InstanceID() {
					t.Errorf("argv: %q", argv[:5])
				}
			}
		})
	}
	// No health, no ExecStartPost.
	units, _ := Render(&Spec{Name: "api", Apps: []App{{Image: "x"}}}, RenderOptions{})
	if got := options(units[0], "Service", "ExecStartPost"); got != nil {
		t.Errorf("unit without health has ExecStartPost %q", got)
	}
}

// TestHealthScriptWord: the script is one single-quoted word of an Exec
// line in which systemd changes nothing but its own escapes.
func TestHealthScriptWord(t *testing.T) {
	w := healthScriptWord
	if !strings.HasPrefix(w, "'") || !strings.HasSuffix(w, "'") || strings.Contains(w[1:len(w)-1], "'") {
		t.Fatal("the script must be one single-quoted word without a single quote inside")
	}
	if strings.Contains(healthScript, "'") || strings.Contains(healthScript, "`") {
		t.Fatal("healthScript holds a quote or backtick")
	}
	if strings.ContainsAny(w, "\n\r\t\x00") || strings.HasSuffix(w, `\`) {
		t.Fatal("the script word holds a control character")
	}
	// Every $ and % reaches systemd doubled (execArgv refuses a lone one).
	if got := execArgv(t, "/bin/bash -c "+w); got[2] != plainHealthScript() {
		t.Fatalf("systemd would give bash\n%s\nnot\n%s", got[2], plainHealthScript())
	}
	if strings.Count(w, "$$") != strings.Count(healthScript, "$") || strings.Count(w, "%%") != strings.Count(healthScript, "%") {
		t.Fatal("a $ or % is not doubled")
	}
}

// TestRenderRefusesBadHealth: Render never puts an unvalidated check word
// on an Exec line.
func TestRenderRefusesBadHealth(t *testing.T) {
	for _, h := range []*Health{
		{HTTP: &HTTPCheck{Port: 80, Path: "/a b"}},
		{Exec: []string{"/bin/sh", "-c", "reboot; true"}},
		{Exec: []string{"/bin/x", "$HOME"}},
		{TCP: &TCPCheck{Port: 1}, Interval: "forever"},
		{},
	} {
		if _, err := Render(&Spec{Name: "a", Apps: []App{{Image: "x"}}, Health: h}, RenderOptions{}); err == nil {
			t.Errorf("rendered %+v", h)
		}
	}
	_, err := Render(&Spec{Name: "a", Apps: []App{{Image: "x"}}, Health: &Health{HTTP: &HTTPCheck{Port: 80, Path: "/a b"}}}, RenderOptions{})
	if want := `health.http.path: "/a b" may only hold letters, digits and / . _ ~ ? = & - (no %, spaces, quotes or $)`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// TestRenderMountServiceGate: a systemd-mountservice-<svc> volume makes the
// unit want <svc>@<id>.service, start after it, and refuse to start while it
// is not active: systemd starts a unit whose Wants= dependency failed
// anyway, so without the gate the pod ran on an unmounted directory. The
// gate is the first ExecStartPre (before the engine's own and the volume
// plugins'), so nothing runs before the mounts are there; Restart=always
// retries it, and each restart pulls the mount service in again.
func TestRenderMountServiceGate(t *testing.T) {
	const gate = "/usr/bin/systemctl is-active "
	ebs := Volume{ID: "vol-a7039121", Driver: "systemd-mountservice-ebs", Source: "data", Path: "/data"}
	nfs := Volume{ID: "share_1.home", Driver: "systemd-mountservice-nfs-v4", Path: "/home"}
	host := Volume{Source: "/srv/conf", Path: "/conf"}
	plugin := Volume{ID: "vol-9", Driver: "blocker", Path: "/backup"}
	tests := []struct {
		name      string
		spec      Spec
		wantDeps  []string // in order
		wantFirst string   // the first ExecStartPre
	}{
		{"rkt, one mount service", Spec{Name: "es", Replicas: 2, Volumes: []Volume{host, ebs}, Apps: []App{{Image: "docker://es:8"}}},
			[]string{"ebs@vol-a7039121.service"}, gate + "ebs@vol-a7039121.service"},
		{"docker, two mount services and a plugin", Spec{Name: "es", Engine: EngineDocker, Volumes: []Volume{plugin, ebs, nfs}, Apps: []App{{Image: "es:8"}}},
			[]string{"ebs@vol-a7039121.service", "nfs-v4@share_1.home.service"}, gate + "ebs@vol-a7039121.service"},
		{"global rolling", Spec{Name: "es", Engine: EngineDocker, Global: true, Update: &Update{Strategy: StrategyRolling}, Volumes: []Volume{ebs}, Apps: []App{{Image: "es:8"}}},
			[]string{"ebs@vol-a7039121.service"}, gate + "ebs@vol-a7039121.service"},
		{"no mount service: no gate", Spec{Name: "es", Engine: EngineDocker, Volumes: []Volume{host, plugin}, Apps: []App{{Image: "es:8"}}},
			nil, VolumePluginDir + "/blocker vol-9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.spec.Validate(); err != nil {
				t.Fatal(err)
			}
			units, err := Render(&tt.spec, RenderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range units {
				pre := options(u, "Service", "ExecStartPre")
				var gates []string
				for _, p := range pre {
					if svc, ok := strings.CutPrefix(p, gate); ok {
						gates = append(gates, svc)
					}
				}
				if !slices.Equal(gates, tt.wantDeps) {
					t.Errorf("%s: ExecStartPre gates on %q, want %q\nExecStartPre: %q", u.Name, gates, tt.wantDeps, pre)
				}
				if len(pre) == 0 || pre[0] != tt.wantFirst {
					t.Errorf("%s: first ExecStartPre %q, want %q", u.Name, pre, tt.wantFirst)
				}
				for _, dep := range tt.wantDeps {
					for _, opt := range []string{"Wants", "After"} {
						if !slices.Contains(options(u, "Unit", opt), dep) {
							t.Errorf("%s: no %s=%s: %q", u.Name, opt, dep, options(u, "Unit", opt))
						}
					}
					// Requires= (or BindsTo=, Requisite=) fails the start job
					// with result "dependency", which Restart= never retries.
					for _, opt := range []string{"Requires", "BindsTo", "Requisite"} {
						if slices.Contains(options(u, "Unit", opt), dep) {
							t.Errorf("%s: %s=%s: a failed mount would never be retried", u.Name, opt, dep)
						}
					}
				}
			}
		})
	}
}
