package realfleet_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// TestRealSecretsGoneAfterDestroy: a running replica's fleet unit
// destroyed at once (fleetctl destroy; Kaylee's destroy after its stop
// timeout), which fleet unloads without systemd running its
// ExecStopPost, leaves no decrypted value on its machine.
func TestRealSecretsGoneAfterDestroy(t *testing.T) {
	shareable(t) // t.Parallel, longest first: see newEnv
	e := newEnv(t, "sd")
	e.server()
	a, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range e.c.Machines {
		e.writeIdentity(m, a)
	}
	clear, _ := secretValue(t)
	e.must("run", "--wait", "--timeout", "3m", e.unit("db", secretUnit("db", 1, "role=worker", encryptArmored(t, clear, a.Recipient()))))
	cs := e.waitContainers("db", 1, "v1", 30*time.Second)
	e.checkEnvHash(cs, clear)
	m, _ := e.c.Machine(cs[0].Machine)
	ctx := context.Background()
	dir := deploy.SecretsDir + "/" + cs[0].Name
	t.Cleanup(func() { _, _ = e.c.Exec(ctx, m, "rm", "-rf", dir) }) // what a failure leaves
	e.stopProcs()                                                   // Kaylee would put the unit back
	api := e.c.API(t)
	units, err := api.Units()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		if strings.HasPrefix(u.Name, e.unitPrefix+":db:") {
			if err := api.DestroyUnit(u.Name); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.waitFor("db's container gone", time.Minute, func() (bool, string) {
		left := e.containers("db")
		return len(left) == 0, ""
	})
	e.waitFor(dir+" gone on "+m.Name, 30*time.Second, func() (bool, string) {
		out, _ := e.c.Exec(ctx, m, "sh", "-c", "ls -la "+dir+" 2>&1; systemctl list-units --all --no-legend '"+e.unitPrefix+":*'")
		return strings.Contains(out, "No such file"), out
	})
}
