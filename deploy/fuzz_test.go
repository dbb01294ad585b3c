package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/fleet/schema"
)

// FuzzLoadRender runs decode → validate → render on arbitrary input and
// checks the promises the rest of Kaylee relies on: no panic, every valid
// unit renders, no rendered value holds a line break, a health check's
// words reach systemd as separate words, rendered names parse back, and
// canonical JSON decodes to the same unit.
func FuzzLoadRender(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/render/*.yaml")
	seeds = append(seeds, "testdata/countly.yaml", "testdata/countly.json")
	for _, p := range seeds {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("name: a\napps:\n- image: x\n  args: [\"a\\nb\"]\n"))
	f.Add([]byte("name: a\nreplicas: 3\nmaxReplicasPerHost: 2\napps: [{image: x}]\n---\nname: b\nglobal: true\napps: [{image: y}]\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("name: a\napps: [{image: x}]\nfreeze:\n- {schedule: \"0 18 * * FRI\", duration: 62h, timeZone: Europe/Berlin, reason: weekend}\n- {schedule: \"61 * * * *\", duration: 0s, timeZone: Nowhere}\n"))
	f.Add([]byte(aliasBomb(20, 10)))
	f.Add([]byte("name: a\nargs: [\"--format '$$ip:80'\", \"';'\", a;b]\nvolumes: [{id: v, driver: d, path: /x, options: \"-o ro ; /evil\"}]\napps: [{image: x, args: [\";\", \"'open\"]}]\n"))
	f.Add([]byte("name: a\nengine: docker\nmachine: [role=x=y, \"az=\\\"a\\\"\"]\napps: [{image: \"x\\\"\", cmd: \"/bin/a\\\\b\"}]\n"))
	f.Add([]byte(nestedBomb(3, 4)))
	f.Add([]byte("name: a\nenv: &e [{name: A, value: a}]\napps: [&p {image: x, args: &g [a, b]}, *p]\nargs: *g\n"))
	f.Add([]byte("name: a\napps: [{image: x}]\nhealth:\n  http: {port: 8080, path: /healthz}\n  interval: 500ms\n  failures: 1\n"))
	f.Add([]byte("name: a\nengine: docker\napps: [{image: x}]\nhealth: {tcp: {port: 5432}, startPeriod: 1h, timeout: 1h}\n"))
	f.Add([]byte("name: a\napps: [{image: x}]\nhealth:\n  exec: [/usr/bin/check, --quick, a=b]\n  http: {port: 0, path: \"/a\\nb\"}\n"))
	f.Add([]byte(`{"name":"a","apps":[{"image":"x"}],"health":{"exec":["/c","%n","$$X"],"interval":"1s"}}`))
	f.Add([]byte("name: a\nreplicas: 4\napps: [{image: x}]\nupdate: {maxSurge: 50%, minReady: 0s, progressDeadline: 2m}\n"))
	f.Add([]byte(`{"name":"a","global":true,"apps":[{"image":"x"}],"update":{"strategy":"rolling","maxUnavailable":2}}`))
	f.Add([]byte("name: a\nreplicas: 2\napps: [{image: x}]\nupdate: {maxSurge: 007, maxUnavailable: '1%'}\n"))
	f.Add([]byte("name: a\nglobal: true\napps: [{image: x}]\nconflicts: ['*', '?*', '*-db', k*, web-*, mongo-n*, db]\n"))
	f.Add([]byte("name: db\nengine: docker\nreplicas: 3\nstateful: true\nonMachineLoss: move\nvolumes: [{id: 'v-${KAYLEE_MEMBER}', source: '/srv/${KAYLEE_MEMBER}', path: /d}, {id: 'e${KAYLEE_MEMBER}', driver: systemd-mountservice-ebs, source: 'x/${KAYLEE_MEMBER}', path: /e}]\napps: [{image: x}]\nprimary: {exec: [/bin/p]}\nupdate: {order: primary-last, maxUnavailable: 50%}\n"))
	f.Add([]byte("name: db\nreplicas: 2\nmaxReplicasPerHost: 1\nstateful: true\nspread: {key: az}\nvolumes: [{id: 'v-${KAYLEE_MEMBER}${X}', driver: d, source: 'a/${KAYLEE_MEMBER}', path: /d}]\nargs: [\"${KAYLEE_MEMBER}\"]\napps: [{image: x}]\nprimary: {http: {port: 80, path: /p}}\n"))
	f.Add([]byte(`{"name":"db","replicas":1,"stateful":true,"onMachineLoss":"wait","volumes":[{"id":"${KAYLEE_MEMBER","source":"/s/${KAYLEE_MEMBER}","path":"/d"}],"apps":[{"image":"x"}],"update":{"order":"highest-first"}}`))
	f.Add([]byte("name: a\nenv: [{name: K, value: \"-----BEGIN-----\\r\\n\\tx\\\\n\\\"%n$A\\\\\\n\"}, {name: B, value: 'C:\\'}]\napps: [{image: x}]\n"))
	f.Add([]byte("name: a\napps: [{image: x}]\nports: [{name: http, port: 80}, {name: m, port: 9}]\ndomains: [a.example.com, '*.help.example.com', xn--bcher-kva.de]\n"))
	f.Add([]byte("name: a\nreplicas: 2\napps: [{image: x}]\nports: [{name: web, port: 80}, {name: dns, port: 53, protocol: udp}]\ndomains: [Shop.Example.com., 'https://a.b:8/x', '*.com', 'a*.b.c', a..b, 10.0.0.1, a.b, a.b]\ndomainsPort: dns\n"))
	f.Add([]byte(`{"name":"a","apps":[{"image":"x"}],"ports":[{"name":"a","port":1},{"name":"b","port":2}],"domains":["x.y","*.x.y"],"domainsPort":"b"}`))
	f.Add([]byte("name: web\napps: [{image: x}]\ndependsOn: [db, web, db, Db, '']\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, _ := Load("fuzz.yaml", data)
		for _, d := range docs {
			if d.Err != nil {
				continue
			}
			// A valid conflicts entry is a name or a family (db-*): a
			// literal name prefix with a dash, at most one trailing *.
			for _, c := range d.Spec.Conflicts {
				lit, glob := strings.CutSuffix(c, "*")
				if strings.ContainsAny(lit, "*?[") || (glob && !strings.Contains(lit, "-")) || strings.HasPrefix(lit, "-") || lit == "" {
					t.Fatalf("conflicts entry %q reaches beyond a named unit or family", c)
				}
			}
			checkDomains(t, &d.Spec)
			checkRendered(t, &d.Spec)
			// A podman pass on every valid unit: it renders when
			// validation takes it for podman, and validation refuses
			// only what podman cannot map (pod args, net, a cmd that is
			// not one path, a longer line).
			if p := d.Spec.WithDefaultEngine(EnginePodman); p.Engine == EnginePodman {
				err := p.Validate()
				for _, fe := range FieldErrors(err) {
					if !strings.HasPrefix(fe.Field, "args[") && fe.Field != "net" && !strings.HasSuffix(fe.Field, ".cmd") && !strings.HasPrefix(fe.Msg, "rendered ") {
						t.Fatalf("valid unit refused for podman: %v\n%s", err, p.CanonicalJSON())
					}
				}
				if err == nil {
					checkRendered(t, p)
				} else if _, rerr := Render(p, RenderOptions{}); rerr == nil && !strings.Contains(err.Error(), "rendered ") {
					t.Fatalf("Render takes what Validate refuses for podman: %v\n%s", err, p.CanonicalJSON())
				}
			}
			canon := d.Spec.CanonicalJSON()
			back, err := DecodeJSON("canonical", canon)
			if err != nil {
				t.Fatalf("canonical JSON does not decode: %v\n%s", err, canon)
			}
			if err := back.Spec.Validate(); err != nil {
				t.Fatalf("canonical JSON does not validate: %v\n%s", err, canon)
			}
			if again := back.Spec.CanonicalJSON(); !bytes.Equal(again, canon) {
				t.Fatalf("canonical JSON is not stable\n%s\n%s", canon, again)
			}
		}
	})
}

// checkRendered renders a valid spec and checks what the rest of Kaylee
// relies on (see FuzzLoadRender).
func checkRendered(t *testing.T, spec *Spec) {
	units, err := Render(spec, RenderOptions{})
	if err != nil {
		t.Fatalf("valid spec does not render: %v\n%s", err, spec.CanonicalJSON())
	}
	if len(units) != spec.Instances() {
		t.Fatalf("%d units for %d instances", len(units), spec.Instances())
	}
	for _, u := range units {
		if _, ok := ParseUnitName(DefaultUnitPrefix, u.Name); !ok {
			t.Fatalf("rendered name %q does not parse", u.Name)
		}
		for _, o := range u.Options {
			if strings.ContainsAny(o.Value, "\n\r\x00") || strings.HasSuffix(o.Value, `\`) {
				t.Fatalf("rendered %s=%q could break the unit file", o.Name, o.Value)
			}
			// A health check's user words stay separate words:
			// systemd runs Kaylee's script with exactly them.
			// Every other Exec line is one command of plain words:
			// no lone ;, no open quote, no escape.
			// A podman unit's ExecStart is Kaylee's supervisor, its
			// words the pod's name, podman and the images.
			if o.Name == "ExecStart" && spec.EngineName() == EnginePodman {
				checkPodSupervisor(t, u, spec, o.Value)
				continue
			}
			if o.Name == "ExecStopPost" && strings.HasPrefix(o.Value, "-"+BashPath+" ") {
				checkEvidenceLine(t, u, o.Value)
				continue
			}
			if o.Name == "ExecStartPre" && strings.HasPrefix(o.Value, BashPath+" "+secretShellFlags+" "+secretPartScriptWord+" ") {
				continue // checked with its decrypt step
			}
			if o.Name == "ExecStartPre" && strings.HasPrefix(o.Value, BashPath+" "+secretShellFlags+" "+secretScriptWord+" ") {
				checkSecretLine(t, spec, o.Value)
				continue
			}
			if strings.HasPrefix(o.Name, "Exec") && o.Name != "ExecStartPost" {
				if p := execFragmentProblem(o.Value); p != "" {
					t.Fatalf("rendered %s=%s: %s", o.Name, o.Value, p)
				}
			}
			if o.Name == "ExecStartPost" && IsSecretsCleanup(o.Value) {
				continue // the secrets' removal (secretsRemoved)
			}
			if o.Name == "ExecStartPost" {
				h := spec.Health
				argv := execArgv(t, o.Value)
				if len(argv) != 13+len(h.Exec) || argv[2] != plainHealthScript() || strings.Join(argv[13:], " ") != strings.Join(h.Exec, " ") {
					t.Fatalf("health line runs %q", argv)
				}
			}
		}
	}
	// An env value, newlines and all, reaches the process as
	// written: systemd reads its Environment= line back to it.
	for _, u := range units {
		env := options(u, "Service", "Environment")
		var plain []EnvVar // a secret has no Environment= line
		for _, e := range spec.Env {
			if e.Secret == "" {
				plain = append(plain, e)
			}
		}
		for i, e := range plain {
			if got := envAssignment(t, env[len(env)-len(plain)+i]); got != e.Name+"="+e.Value {
				t.Fatalf("env[%d] reaches systemd as %q, want %q", i, got, e.Name+"="+e.Value)
			}
		}
	}
	if spec.Stateful {
		checkMembers(t, spec)
	}
}

// checkPodSupervisor checks a podman unit's ExecStart: bash runs
// podSupervisor with the pod's name (KAYLEE_ID), podman and each app's
// image, in app order.
func checkPodSupervisor(t *testing.T, u *schema.Unit, s *Spec, line string) {
	t.Helper()
	// A global unit's _%m is systemd's, the one specifier the line holds.
	argv := execArgv(t, strings.ReplaceAll(line, "_%m", "_%%m"))
	id := strings.TrimSuffix(strings.TrimPrefix(options(u, "Service", "Environment")[0], `"KAYLEE_ID=`), `"`)
	want := []string{BashPath, "-c", plainScript(podSupervisor), "kaylee-pod", id, PodmanPath}
	for _, a := range s.Apps {
		want = append(want, a.Image)
	}
	if !slices.Equal(argv, want) {
		t.Fatalf("pod supervisor runs %q, want %q", argv, want)
	}
}

// checkMembers renders a valid stateful unit with every other member
// placed and checks what the scheduler relies on: one unit per member,
// named by its ordinal whatever its placement, a placed member pinned with
// MachineID and no Conflicts (fleet refuses the pair), no ${KAYLEE_MEMBER}
// left in any rendered value.
func checkMembers(t *testing.T, s *Spec) {
	unplaced, err := Render(s, RenderOptions{})
	if err != nil {
		t.Fatalf("stateful unit does not render: %v", err)
	}
	var members []string
	for i := range s.Replicas {
		m := ""
		if i%2 == 0 {
			m = fmt.Sprintf("%032x", i+1)
		}
		members = append(members, m)
	}
	placed, err := Render(s, RenderOptions{Members: members})
	if err != nil {
		t.Fatalf("stateful unit does not render placed: %v", err)
	}
	if len(placed) != s.Replicas || len(unplaced) != s.Replicas {
		t.Fatalf("%d and %d units for %d members", len(unplaced), len(placed), s.Replicas)
	}
	for i, u := range placed {
		if n, ok := ParseUnitName(DefaultUnitPrefix, u.Name); !ok || n.Index != i || u.Name != unplaced[i].Name {
			t.Fatalf("member %d renders as %q placed, %q unplaced", i, u.Name, unplaced[i].Name)
		}
		ids, conflicts := options(u, "X-Fleet", "MachineID"), options(u, "X-Fleet", "Conflicts")
		if members[i] != "" && (len(ids) != 1 || ids[0] != members[i] || len(conflicts) > 0) {
			t.Fatalf("placed member %d: MachineID %q, Conflicts %q", i, ids, conflicts)
		}
		if members[i] == "" && len(ids) > 0 {
			t.Fatalf("unplaced member %d pinned to %q", i, ids)
		}
		if env := options(u, "Service", "Environment"); !slices.Contains(env, fmt.Sprintf(`"KAYLEE_MEMBER=%d"`, i)) {
			t.Fatalf("member %d: Environment %q", i, env)
		}
		for _, o := range u.Options {
			if strings.Contains(o.Value, MemberRef) {
				t.Fatalf("member %d: %s=%s keeps %s", i, o.Name, o.Value, MemberRef)
			}
		}
	}
}

// checkDomains checks a valid unit's domains: lowercase ASCII host names
// (a * only as a whole first label) within DNS's lengths, none twice, and
// a port for the router to send them to.
func checkDomains(t *testing.T, s *Spec) {
	seen := map[string]bool{}
	for _, d := range s.Domains {
		name, _ := strings.CutPrefix(d, "*.")
		if len(d) > MaxDomainLen || seen[d] || strings.Count(name, ".") < 1 || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789-.") != "" {
			t.Fatalf("domain %q is valid", d)
		}
		for _, l := range strings.Split(name, ".") {
			if l == "" || len(l) > MaxDomainLabelLen || l[0] == '-' || l[len(l)-1] == '-' {
				t.Fatalf("domain %q is valid", d)
			}
		}
		seen[d] = true
	}
	if p, ok := s.HTTPPort(); len(s.Domains) > 0 && (!ok || !p.TCP() || !slices.Contains(s.Ports, p)) {
		t.Fatalf("domains %q route to no tcp port of %v: %+v %v", s.Domains, s.Ports, p, ok)
	}
}
