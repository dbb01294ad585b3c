package realfleet_test

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRealCompatEnvNewlines: an env value with newlines (a multi-line PEM
// key, which monder/kaylee ran through its quoting) goes through the whole
// chain on real fleet and systemd: Kaylee's fleet unit option, the unit file
// fleetd writes on the machine (one line, C escapes), systemd's Environment=
// reading, `docker run -e NAME`, and the process in the container sees
// exactly the value, byte for byte.
func TestRealCompatEnvNewlines(t *testing.T) {
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
