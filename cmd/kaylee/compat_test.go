package main

import (
	"context"
	"strings"
	"testing"

	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// TestLsWarnsOfIgnoredFields: a unit stored by a script with fields Kaylee
// does not know (monder/kaylee ignored them) is listed, and kaylee ls warns
// of each field ignored, with its key and line.
func TestLsWarnsOfIgnoredFields(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	if _, err := e.Client(t).Put(context.Background(), "/kaylee2/units/web", `{"name":"web","owner":"ci","apps":[{"image":"docker://x"}]}`); err != nil {
		t.Fatal(err)
	}
	r := kaylee(t, map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}, "ls")
	want := `warning: /kaylee2/units/web:1: unknown field "owner" (known fields: `
	if r.code != 0 || r.stdout != "web\n" || !strings.HasPrefix(r.err, want) || !strings.HasSuffix(r.err, "): ignored\n") {
		t.Fatalf("kaylee ls: exit %d\nstdout: %s\nstderr: %s\nwant web listed and %q…): ignored", r.code, r.stdout, r.err, want)
	}
}
