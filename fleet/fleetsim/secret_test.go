package fleetsim

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// TestSystemdSecretsRemovalIsNoCheck: the ExecStartPost deploy renders
// for a unit with secrets (the removal of its decrypted files) is no
// health check here: the replica of a real rendered unit without a
// health check runs at once, even when the simulation would fail a
// check. A change of deploy's line that fleetsim does not follow breaks
// this test.
func TestSystemdSecretsRemovalIsNoCheck(t *testing.T) {
	data, err := os.ReadFile("../../deploy/testdata/render/secret-docker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := deploy.Load("secret-docker.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if docs[0].Spec.Health != nil {
		t.Fatal("the unit has a health check")
	}
	units, err := deploy.Render(&docs[0].Spec, deploy.RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	post := 0
	for _, o := range units[0].Options {
		if o.Name == "ExecStartPost" {
			post++
		}
	}
	if post == 0 {
		t.Fatal("the rendered unit has no ExecStartPost")
	}
	// Every rendered unit counts as unhealthy: a health check would
	// never pass.
	s := newSystemd(systemdConfig{startDelay: 20 * time.Millisecond, restartScale: 1, healthDelay: 20 * time.Millisecond,
		unhealthyMarker: "docker run", startPeriod: 20 * time.Millisecond})
	if err := s.Load(units[0].Name, *schema.MapSchemaUnitOptionsToUnitFile(units[0].Options)); err != nil {
		t.Fatal(err)
	}
	if err := s.TriggerStart(units[0].Name); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(states(s, units[0].Name, 200*time.Millisecond), " "); got != "activating/start-pre active/running" {
		t.Fatalf("states %q, want activating/start-pre active/running: the removal of the secrets was taken for a health check", got)
	}
}
