package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// evidenceFile is what deploy's evidence step writes (see
// deploy.TestEvidenceScriptWritesFile), with extra journal lines.
func evidenceFile(lines ...string) string {
	var b strings.Builder
	b.WriteString("time=2026-12-03T10:00:00Z\nresult=exit-code\ncode=exited\nstatus=125\nrestarts=3\nprobe=kaylee-health: k2_api_0123abcd_0a1b2c_0 not healthy within 30s (last: HTTP 500 from 172.17.0.2:8080)\n")
	for _, l := range lines {
		b.WriteString("j=" + l + "\n")
	}
	return b.String()
}

// TestPublishEvidence: a file the evidence step leaves appears in etcd as
// the unit's evidence, under the publisher's lease, bounded, with the
// unit's env values hidden; a file removed takes its key with it; a
// publisher that stops takes its machine's evidence with it (the lease).
func TestPublishEvidence(t *testing.T) {
	cli := etcdtest.New(t).Client(t)
	s := store.New(cli, "/ev")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	spec := &deploy.Spec{Name: "api", Engine: deploy.EngineDocker, Apps: []deploy.App{{Image: "nope:1"}},
		Env: []deploy.EnvVar{{Name: "TOKEN", Value: "s3cret-token"}, {Name: "N", Value: "1"}}}
	if _, err := s.PutUnit(ctx, spec, store.Fence{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const fleetUnit = "k2:api:0123abcd:0a1b2c:0.service"
	long := strings.Repeat("y", 1000)
	var lines []string
	for i := range 30 {
		lines = append(lines, fmt.Sprintf("line %d", i))
	}
	lines = append(lines, long, "connecting with token s3cret-token to db", "docker: Unable to find image 'nope:1' locally")
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(fleetUnit, evidenceFile(lines...))
	write(".e.tmp123", "time=2026-12-03T10:00:00Z\n")            // a write in progress
	write("k2_api_0123abcd_0a1b2c_0.probe", "HTTP 500 from x\n") // a probe's answer

	done := make(chan error, 1)
	pctx, stop := context.WithCancel(ctx)
	go func() {
		done <- PublishEvidence(pctx, EvidenceConfig{Store: s, Dir: dir, Machine: "m1", Every: 100 * time.Millisecond, TTL: 5 * time.Second})
	}()
	key := "/ev/evidence/api/" + fleetUnit + "/m1"
	var kv *clientv3.GetResponse
	waitFor(t, "the evidence key", func() bool {
		var err error
		kv, err = cli.Get(ctx, key)
		return err == nil && len(kv.Kvs) == 1
	})
	if kv.Kvs[0].Lease == 0 {
		t.Errorf("%s has no lease: stale evidence would stay", key)
	}
	raw := string(kv.Kvs[0].Value)
	var e store.Evidence
	if err := json.Unmarshal(kv.Kvs[0].Value, &e); err != nil {
		t.Fatal(err)
	}
	if e.Unit != "api" || e.FleetUnit != fleetUnit || e.Machine != "m1" || e.ExitCode != "exited" || e.ExitStatus != "125" || e.Restarts != 3 ||
		e.Probe != "HTTP 500 from 172.17.0.2:8080" || !e.Time.Equal(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("evidence: %s", raw)
	}
	if len(e.Journal) != store.EvidenceLinesMax || e.Journal[len(e.Journal)-1] != "docker: Unable to find image 'nope:1' locally" {
		t.Errorf("journal: %d lines, want the last %d: %q", len(e.Journal), store.EvidenceLinesMax, e.Journal)
	}
	total := 0
	for _, l := range e.Journal {
		total += len(l)
		if len(l) > store.EvidenceLineMax {
			t.Errorf("a journal line of %d bytes, bound %d", len(l), store.EvidenceLineMax)
		}
	}
	if total > store.EvidenceJournalMax {
		t.Errorf("journal of %d bytes, bound %d", total, store.EvidenceJournalMax)
	}
	if strings.Contains(raw, "s3cret") || !strings.Contains(raw, "connecting with token *** to db") {
		t.Errorf("the env value is not hidden: %s", raw)
	}
	if got := e.Summary(); got != `exit status 125; last health check: "HTTP 500 from 172.17.0.2:8080"; last line: "docker: Unable to find image 'nope:1' locally"` {
		t.Errorf("summary: %s", got)
	}
	if all, _ := cli.Get(ctx, "/ev/evidence/", clientv3.WithPrefix(), clientv3.WithCountOnly()); all.Count != 1 {
		t.Errorf("%d evidence keys, want 1 (temporary and probe files are not evidence)", all.Count)
	}

	// The file goes (the machine rebooted, or it grew older than Keep): its key too.
	if err := os.Remove(filepath.Join(dir, fleetUnit)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the key of the file removed to go", func() bool {
		r, err := cli.Get(ctx, key)
		return err == nil && len(r.Kvs) == 0
	})

	// A publisher that stops leaves its lease to expire: the evidence goes.
	write(fleetUnit, evidenceFile("again"))
	waitFor(t, "the evidence key again", func() bool {
		r, err := cli.Get(ctx, key)
		return err == nil && len(r.Kvs) == 1
	})
	r, _ := cli.Get(ctx, key)
	stop()
	<-done
	ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(r.Kvs[0].Lease))
	if err != nil || ttl.TTL > 5 || ttl.TTL < 0 {
		t.Errorf("lease of a stopped publisher: TTL %v, %v; want it to expire within 5s", ttl.TTL, err)
	}
}

func TestParseEvidenceRefusesOtherFiles(t *testing.T) {
	if _, err := ParseEvidence(strings.NewReader("hello\nworld\n")); err == nil || !strings.Contains(err.Error(), "not an evidence file") {
		t.Errorf("err %v", err)
	}
	// One enormous line does not make the reader fail or hold it all.
	e, err := ParseEvidence(strings.NewReader("time=2026-12-03T10:00:00Z\nj=" + strings.Repeat("z", 100000) + "\n"))
	if err != nil || len(e.Journal) > 1 {
		t.Errorf("%v, %d lines", err, len(e.Journal))
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
