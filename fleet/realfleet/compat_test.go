package realfleet_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/fleet/realfleet"
)

// TestRealCompatEnvNewlines: an env value with newlines (a multi-line PEM
// key, which monder/kaylee ran through its quoting) goes through the whole
// chain on real fleet and systemd: Kaylee's fleet unit option, the unit file
// fleetd writes on the machine (one line, C escapes), systemd's Environment=
// reading, `docker run -e NAME`, and the process in the container sees
// exactly the value, byte for byte.
func TestRealCompatEnvNewlines(t *testing.T) {
	shareable(t) // t.Parallel, longest first: see newEnv
	e := newEnv(t, "re")
	e.server()
	pem := "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEA\nq7BFUpkGp3+M/x\"quoted\" 100% $HOME \\n not an escape\\\n\tCRLF line\r\n-----END PRIVATE KEY-----\n"
	// YAML's double-quoted strings read Go's escapes \n \r \t \" \\ alike.
	body := webUnit("tls", 1, 1, "v1") + "env:\n- name: TLS_KEY\n  value: " + strconv.Quote(pem) + "\n- name: PLAIN\n  value: after\n"
	if out, errs, code := e.kaylee("run", "--wait", "--timeout", "3m", e.unit("tls", body)); code != 0 {
		t.Fatalf("run --wait: exit %d\n%s%s", code, out, errs)
	}
	cs := e.waitContainers("tls", 1, "v1", 30*time.Second)
	ctx := context.Background()
	for _, name := range []string{"TLS_KEY", "PLAIN"} {
		want := map[string]string{"TLS_KEY": pem, "PLAIN": "after"}[name]
		code, got, err := cs[0].Get(ctx, "/getenv?name="+url.QueryEscape(name))
		if err != nil || code != 200 || got != want {
			t.Errorf("the container's %s is %q (%d %v), want %q", name, got, code, err, want)
		}
	}

	// The option fleet holds, and the unit file fleetd wrote from it.
	units, err := e.c.API(t).Units()
	if err != nil {
		t.Fatal(err)
	}
	var option, unitName string
	for _, u := range units {
		if !strings.HasPrefix(u.Name, "re:tls:") {
			continue
		}
		unitName = u.Name
		for _, o := range u.Options {
			if o.Name == "Environment" && strings.HasPrefix(o.Value, `"TLS_KEY=`) {
				option = o.Value
			}
		}
	}
	if option == "" || strings.ContainsAny(option, "\n\r") {
		t.Fatalf("fleet unit %s: Environment option %q, want one line holding TLS_KEY", unitName, option)
	}
	st, _ := e.status("tls")
	m, ok := e.c.Machine(st.Units[0].MachineID)
	if !ok {
		t.Fatalf("status has the unit on %q", st.Units[0].MachineID)
	}
	file, err := e.c.Exec(ctx, m, "systemctl", "cat", unitName)
	if err != nil {
		t.Fatalf("systemctl cat %s: %v\n%s", unitName, err, file)
	}
	if !strings.Contains(file, "\nEnvironment="+option+"\n") {
		t.Errorf("the unit file on %s lacks the line Environment=%s:\n%s", m.Name, option, file)
	}
	t.Logf("unit file line on %s: Environment=%s", m.Name, option)
}

// TestRealCompatPluginArgsAndUnmount: a script volume plugin is called as
// monder/kaylee called it, <driver> <id> <options> before the start and
// <driver> -u <id> after the stop, by real systemd; an unmount that fails
// makes the stopped unit end failed (a volume still mounted shows), one
// that succeeds leaves it clean, and kaylee rm removes both.
func TestRealCompatPluginArgsAndUnmount(t *testing.T) {
	shareable(t) // t.Parallel, longest first: see newEnv
	e := newEnv(t, "ru")
	const driver = "argrec"
	if err := os.MkdirAll(e.c.PluginDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := e.c.PluginDir()
	// The plugin logs its arguments next to itself (the machines see the
	// directory as /var/lib/kaylee/plugins/volumes) and fails -u for an id
	// that has a fail-<id> file there.
	script := "#!/bin/sh\nd=$(dirname \"$0\")\necho \"$*\" >> \"$d/" + driver + ".log\"\n" +
		"if [ \"$1\" = -u ] && [ -e \"$d/fail-$2\" ]; then echo \"cannot unmount $2: busy\" >&2; exit 1; fi\nexit 0\n"
	if err := os.WriteFile(filepath.Join(dir, driver), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, driver+".log")
	_ = os.Remove(logFile)
	suffix := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff)
	good, bad := "v-ok-"+suffix, "v-busy-"+suffix
	if err := os.WriteFile(filepath.Join(dir, "fail-"+bad), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, f := range []string{driver, driver + ".log", "fail-" + bad} {
			os.Remove(filepath.Join(dir, f))
		}
		os.RemoveAll("/mnt/" + driver) // docker creates the host side of the volume
	})
	e.server()
	withVolume := func(name, id string) string {
		return webUnit(name, 1, 1, "v1") + fmt.Sprintf("volumes:\n- id: %s\n  driver: %s\n  options: -o ro,noatime\n  path: /v\n", id, driver)
	}
	if out, errs, code := e.kaylee("run", "--wait", "--timeout", "3m", e.unit("good", withVolume("good", good)), e.unit("bad", withVolume("bad", bad))); code != 0 {
		t.Fatalf("run --wait: exit %d\n%s%s", code, out, errs)
	}
	where := map[string]string{} // Kaylee unit → fleet unit
	machine := map[string]realfleet.Machine{}
	for _, name := range []string{"good", "bad"} {
		st, _ := e.status(name)
		m, ok := e.c.Machine(st.Units[0].MachineID)
		if !ok {
			t.Fatalf("%s on %q", name, st.Units[0].MachineID)
		}
		where[name], machine[name] = st.Units[0].Name, m
	}
	readLog := func() string { b, _ := os.ReadFile(logFile); return string(b) }
	for _, id := range []string{good, bad} {
		if !strings.Contains(readLog(), "\n"+id+" -o ro,noatime\n") && !strings.HasPrefix(readLog(), id+" -o ro,noatime\n") {
			t.Errorf("the plugin was not called as <driver> <id> <options> for %s; its calls:\n%s", id, readLog())
		}
	}

	e.must("rm", "good", "bad")
	e.waitFor("good and bad removed", 2*time.Minute, func() (bool, string) {
		units, _ := e.c.API(t).Units()
		n := 0
		for _, u := range units {
			if strings.HasPrefix(u.Name, e.unitPrefix+":") {
				n++
			}
		}
		_, g := e.status("good")
		_, b := e.status("bad")
		return n == 0 && !g && !b, fmt.Sprintf("%d fleet units, statuses kept: good %v bad %v", n, g, b)
	})
	for _, id := range []string{good, bad} {
		if !strings.Contains(readLog(), "\n-u "+id+"\n") {
			t.Errorf("the plugin was not called as <driver> -u <id> for %s; its calls:\n%s", id, readLog())
		}
	}
	for _, tt := range []struct {
		name        string
		want, never []string
	}{
		{"good", []string{"Deactivated successfully"}, []string{"Failed with result"}},
		{"bad", []string{"cannot unmount " + bad + ": busy", "Control process exited, code=exited, status=1/FAILURE", "Failed with result 'exit-code'"}, nil},
	} {
		journal, _ := e.c.Exec(context.Background(), machine[tt.name], "journalctl", "--no-pager", "-o", "cat", "-u", where[tt.name])
		for _, w := range tt.want {
			if !strings.Contains(journal, w) {
				t.Errorf("%s (%s on %s): journal lacks %q:\n%s", tt.name, where[tt.name], machine[tt.name].Name, w, tail(journal, 15))
			}
		}
		for _, w := range tt.never {
			if strings.Contains(journal, w) {
				t.Errorf("%s (%s): journal has %q:\n%s", tt.name, where[tt.name], w, tail(journal, 15))
			}
		}
		t.Logf("%s: %s", tt.name, strings.Join(lastLines(journal, 3), " | "))
	}
}

func lastLines(s string, n int) []string {
	return strings.Split(tail(s, n), "\n")
}

// rktStub stands for rkt on the machines (rkt is archived and on no
// current host): it logs its calls, runs a pod as a sleep, and fails both
// garbage collections, so that a test sees what systemd does with the
// lines Kaylee renders around them.
const rktStub = `#!/bin/sh
echo "rkt $*" >> /run/kaylee-rkt-stub.log
case "$1" in
run) exec sleep infinity ;;
gc|image) echo "rkt $*: failing on purpose" >&2; exit 1 ;;
esac
exit 0
`

// TestRealCompatRktPullAndGC: with a stand-in for rkt, a real rkt unit
// fetches its image before every start (rkt's default pull policy is
// always, as monder/kaylee's rkt fetch was, so kaylee restart fetches
// again), and after its stop runs rkt gc and rkt image gc; both failing
// leaves the unit cleanly inactive (their "-"), and kaylee rm removes it.
func TestRealCompatRktPullAndGC(t *testing.T) {
	shareable(t) // t.Parallel, longest first: see newEnv
	e := newEnv(t, "rx")
	ctx := context.Background()
	for _, m := range e.c.Machines {
		p := filepath.Join(e.c.Root(m), "usr", "bin", "rkt")
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s has a /usr/bin/rkt already", m.Name)
		}
		if err := os.WriteFile(p, []byte(rktStub), 0o755); err != nil {
			t.Fatal(err)
		}
		_, _ = e.c.Exec(ctx, m, "rm", "-f", "/run/kaylee-rkt-stub.log")
		t.Cleanup(func() { os.Remove(p) })
	}
	stubLog := func() string {
		var b strings.Builder
		for _, m := range e.c.Machines {
			out, _ := e.c.Exec(ctx, m, "sh", "-c", "cat /run/kaylee-rkt-stub.log 2>/dev/null || true")
			b.WriteString(out)
		}
		return b.String()
	}
	e.server()
	const image = "docker://" + realfleet.Image + ":v1"
	unit := e.unit("pod", "name: pod\nengine: rkt\napps:\n- image: "+image+"\n")
	if out, errs, code := e.kaylee("run", "--wait", "--timeout", "2m", unit); code != 0 {
		t.Fatalf("run --wait: exit %d\n%s%s", code, out, errs)
	}
	fetch := "rkt fetch --insecure-options=image --pull-policy=update " + image
	if n := strings.Count(stubLog(), fetch); n != 1 {
		t.Fatalf("%d fetches with --pull-policy=update before the first start, want 1; rkt calls:\n%s", n, stubLog())
	}
	first, _ := e.status("pod")
	e.must("restart", "pod")
	e.waitFor("pod restarted and running", 2*time.Minute, func() (bool, string) {
		st, _ := e.status("pod")
		return st.Phase == "running" && st.SpecHash != first.SpecHash, st.Phase + " " + st.SpecHash + ": " + st.Message
	})
	if n := strings.Count(stubLog(), fetch); n != 2 {
		t.Errorf("%d fetches after kaylee restart, want 2 (one per start: :latest would be updated); rkt calls:\n%s", n, stubLog())
	}

	st, _ := e.status("pod")
	m, ok := e.c.Machine(st.Units[0].MachineID)
	if !ok {
		t.Fatalf("pod on %q", st.Units[0].MachineID)
	}
	fleetUnit := st.Units[0].Name
	// The unit's name comes back in every run of the test (a fresh store,
	// the same spec): read the journal of this stop only.
	since := fmt.Sprintf("@%d", time.Now().Add(-time.Second).Unix())
	e.must("rm", "pod")
	e.waitFor("pod removed", 2*time.Minute, func() (bool, string) {
		units, _ := e.c.API(t).Units()
		for _, u := range units {
			if strings.HasPrefix(u.Name, e.unitPrefix+":") {
				return false, u.Name + " still in fleet"
			}
		}
		_, known := e.status("pod")
		return !known, "status kept"
	})
	journal, _ := e.c.Exec(ctx, m, "journalctl", "--no-pager", "-o", "cat", "--since", since, "-u", fleetUnit)
	for _, want := range []string{"rkt gc: failing on purpose", "rkt image gc: failing on purpose", "Deactivated successfully"} {
		if !strings.Contains(journal, want) {
			t.Errorf("%s on %s: journal lacks %q:\n%s", fleetUnit, m.Name, want, tail(journal, 15))
		}
	}
	if strings.Contains(journal, "Failed with result") {
		t.Errorf("%s on %s: a failing gc failed the stop:\n%s", fleetUnit, m.Name, tail(journal, 15))
	}
	calls := stubLog()
	if i, j := strings.LastIndex(calls, "rkt rm --uuid-file="), strings.LastIndex(calls, "rkt image gc"); i < 0 || j < i || !strings.Contains(calls[i:], "rkt gc\n") {
		t.Errorf("after the stop, want rkt rm, rkt gc and rkt image gc in that order; rkt calls:\n%s", calls)
	}
	t.Logf("%s: %s", fleetUnit, strings.Join(lastLines(journal, 3), " | "))
}
