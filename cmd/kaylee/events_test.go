package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// kaylee events: what sync --once did, filtered by name, as text and JSON,
// and followed.
func TestEventsCommand(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"units/web.yaml": unitWeb, "units/api.yaml": unitAPI})
	rev := repo.Commit("first")
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_CACHE_DIR": t.TempDir()}
	syncArgs := []string{"sync", "--once", "--repo", repo.FileURL(), "--path", "units", "--source", "team-a"}

	if r := kaylee(t, env, "events"); r.code != 0 || !strings.Contains(r.stdout, "no events yet") {
		t.Fatalf("events on an empty log: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	if r := kaylee(t, env, syncArgs...); r.code != 0 {
		t.Fatalf("sync: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	r := kaylee(t, env, "events")
	for _, want := range []string{"KIND", "synced", "team-a@" + rev[:7], "stored  api", "created from units/web.yaml"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("events lacks %q:\n%s", want, r.stdout)
		}
	}
	// A broken file: a sync-failed event naming the file and the line.
	repo.Write(map[string]string{"units/api.yaml": "name: api\nreplcas: 2\napps:\n- image: docker://api:2\n"})
	repo.Commit("broken")
	if r := kaylee(t, env, syncArgs...); r.code != 1 {
		t.Fatalf("sync of a broken file: exit %d\n%s%s", r.code, r.stdout, r.err)
	}
	r = kaylee(t, env, "events", "team-a", "-o", "json")
	var evs []store.Event
	if err := json.Unmarshal([]byte(r.stdout), &evs); err != nil {
		t.Fatalf("events -o json: %v\n%s", err, r.stdout)
	}
	last := evs[len(evs)-1]
	if last.Kind != store.EventSyncFailed || !strings.Contains(last.Message, `units/api.yaml:2: unknown field "replcas"`) {
		t.Errorf("last event %+v: want sync-failed with the file error", last)
	}
	if r := kaylee(t, env, "events", "web"); strings.Contains(r.stdout, "api") {
		t.Errorf("events web shows api's:\n%s", r.stdout)
	}
	// BY says who did it: the person who asked (user@host), or the
	// process that acted (the sync's leader).
	asker := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "USER": "ops"}
	if r := kaylee(t, asker, "suspend", "web"); r.code != 0 {
		t.Fatalf("suspend: exit %d %s", r.code, r.err)
	}
	r = kaylee(t, env, "events", "web")
	rows := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if head := strings.Fields(rows[0]); len(head) < 6 || head[4] != "BY" {
		t.Errorf("events header %q: want TIME KIND UNIT SOURCE BY MESSAGE", rows[0])
	}
	if last := rows[len(rows)-1]; !strings.Contains(last, "suspended") || !strings.Contains(last, " ops@") {
		t.Errorf("the suspension's line %q does not say who asked (ops@…)", last)
	}
	// Every line names the event's by, as -o json has it.
	var webEvs []store.Event
	if err := json.Unmarshal([]byte(kaylee(t, env, "events", "web", "-o", "json").stdout), &webEvs); err != nil || len(webEvs) != len(rows)-1 {
		t.Fatalf("events web -o json: %v, %d events for %d lines", err, len(webEvs), len(rows)-1)
	}
	for i, ev := range webEvs {
		if ev.By == "" || !strings.Contains(rows[i+1], "  "+ev.By+"  ") {
			t.Errorf("line %q: want the event's by %q in its BY column", rows[i+1], ev.By)
		}
	}

	// -f prints events as they are written.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"events", "-f", "-o", "json", "--limit", "1", "--etcd-endpoints", e.ClientURL()},
			&stdio{in: strings.NewReader(""), out: pw, err: io.Discard}, func(string) string { return "" })
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		t.Fatal("events -f printed nothing")
	}
	s := store.New(e.Client(t), "/kaylee2")
	if err := s.AppendEvents(ctx, store.Fence{}, store.Event{Kind: store.EventRolloutStarted, Unit: "web", Message: "now"}); err != nil {
		t.Fatal(err)
	}
	if !lines.Scan() || !strings.Contains(lines.Text(), `"kind":"rollout-started"`) {
		t.Fatalf("events -f: %q, want the new event", lines.Text())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("events -f ended with %d on interrupt", code)
	}
}

// The events table adds the CLI's hint to the events of the fleet units
// of monder/kaylee that the scheduler leaves alone.
func TestEventTableHints(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	p := &eventTable{w: &b}
	if err := p.print([]store.Event{{Kind: store.EventOriginalLeftAlone, Unit: "gone",
		Message: "1 fleet unit of monder/kaylee for unit gone, which is not stored: left alone"}}); err != nil {
		t.Fatal(err)
	}
	if want := "which is not stored: left alone; kaylee migrate --remove-original removes them"; !strings.Contains(b.String(), want) {
		t.Errorf("events table:\n%s\nwant %q", b.String(), want)
	}
}
