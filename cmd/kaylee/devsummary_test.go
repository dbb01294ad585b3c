package main

import (
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
)

// dev's summary says a unit is rolled back, at the revision its rollback
// restored (not git's), and suspended, as kaylee status does.
func TestDevSummaryShowsRollbackAndSuspension(t *testing.T) {
	t.Parallel()
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"units/web.yaml": "name: web\napps:\n- image: docker://web:1\n"})
	rev1 := repo.Commit("web 1")
	p, addr := startDevOnRepo(t, repo.Dir)
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": addr, "USER": "ops"}
	ip := `192\.0\.2\.\d`
	waitSummary(t, p.out, `(?m)^  web\s+running\s+1/1\s+(1\s+)?`+rev1[:7]+`\s+`+ip+`\n`)
	repo.Write(map[string]string{"units/web.yaml": "name: web\napps:\n- image: docker://web:2\n"})
	rev2 := repo.Commit("web 2")
	waitSummary(t, p.out, `(?m)^  web\s+running\s+1/1\s+(1\s+)?`+rev2[:7]+`\s+`+ip+`\n`)
	waitFor(t, 10*time.Second, "revision 2 deployed", func() bool {
		return strings.Contains(kaylee(t, env, "history", "web").stdout, "2         ")
	})
	if r := kaylee(t, env, "rollback", "web"); r.code != 0 {
		t.Fatalf("rollback: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	waitSummary(t, p.out, `(?m)^  web   rolled back  1/1      1        `+rev1[:7]+`   `+ip+`\n`)
	if r := kaylee(t, env, "suspend", "web"); r.code != 0 {
		t.Fatalf("suspend: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	waitSummary(t, p.out, `(?m)^  web   suspended  1/1      1        `+rev1[:7]+`   `+ip+`\n`)
}
