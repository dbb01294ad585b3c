package sync

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// Sources shows no repository credentials, even those an older version
// wrote into etcd as they were: the repository and the last attempt's
// message are masked.
func TestSourcesMaskCredentials(t *testing.T) {
	e := etcdtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cli := e.Client(t)
	const raw = "https://ghp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA@git.example.com/units.git"
	for key, value := range map[string]string{
		"/k/sync/a":     `{"source":"a","url":"` + raw + `","ref":"main","revision":"abc"}`,
		"/k/attempts/a": `{"source":"a","result":"failed","message":"listing refs of ` + raw + `: EOF"}`,
	} {
		if _, err := cli.Put(ctx, key, value); err != nil {
			t.Fatal(err)
		}
	}
	all, err := Sources(ctx, store.New(cli, "/k"))
	if err != nil || len(all) != 1 {
		t.Fatalf("Sources: %+v %v", all, err)
	}
	const shown = "https://***@git.example.com/units.git"
	if s := all[0]; s.Repo != shown || s.Attempt.Message != "listing refs of "+shown+": EOF" || strings.Contains(s.Attempt.Message, "ghp_") {
		t.Errorf("source a: repo %q, message %q; want both masked", s.Repo, s.Attempt.Message)
	}
}
