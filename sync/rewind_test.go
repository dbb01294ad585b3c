package sync

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

const (
	appVulnerable = "name: app\napps:\n- image: docker://app:1.0-vulnerable\n"
	appFixed      = "name: app\napps:\n- image: docker://app:1.1-fixed\n"
	appFixedMore  = "name: app\nreplicas: 2\napps:\n- image: docker://app:1.1-fixed\n"
)

// A branch moved back to an older commit (git push --force origin A:main
// after B), or rewritten so that it no longer holds the commit applied
// (an amended B'), is refused: whoever can move the branch cannot
// redeploy an older state, signed or not. Over file:// and smart HTTP,
// without and with signature verification. Nothing is written but the
// attempt and the event; the unit in etcd stays B's.
func TestRewindRefused(t *testing.T) {
	gpg := gittest.NewGPGSigner(t, "Alice <alice@example.com>")
	sshKey := gittest.NewSSHSigner(t, "alice@example.com")
	tests := []struct {
		name   string
		http   bool
		signer gittest.Signer // nil: unsigned, no verification
		// move moves main away from B (and returns where it points).
		move func(r *gittest.Repo, a, b string, s gittest.Signer) string
	}{
		{name: "back to A, file", move: back},
		{name: "back to A, smart HTTP", http: true, move: back},
		{name: "back to A, signed OpenPGP, file", signer: gpg, move: back},
		{name: "back to A, signed SSH, smart HTTP", http: true, signer: sshKey, move: back},
		{name: "amended B', file", move: amend},
		{name: "amended B', signed SSH, smart HTTP", http: true, signer: sshKey, move: amend},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			r := gittest.NewRepo(t)
			commit := func(files map[string]string, msg string) string {
				r.Write(files)
				if tt.signer != nil {
					return r.CommitSigned(msg, tt.signer)
				}
				return r.Commit(msg)
			}
			cfg := gitsource.Config{URL: r.FileURL(), Ref: "main", Path: "units", CacheDir: t.TempDir()}
			if tt.http {
				cfg.URL = r.ServeHTTP("", "")
			}
			switch s := tt.signer.(type) {
			case *gittest.GPGSigner:
				cfg.Verify = &gitsource.Verify{Mode: gitsource.VerifyHEAD, Keyring: s.PublicKey}
			case *gittest.SSHSigner:
				cfg.Verify = &gitsource.Verify{Mode: gitsource.VerifyHEAD, AllowedSigners: []byte(s.AllowedSigner("") + "\n")}
			}
			src, err := gitsource.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			e := etcdtest.New(t)
			st := store.New(e.Client(t), store.DefaultPrefix)
			l := &Loop{Fetcher: src, Store: st, Options: Options{Source: "team", URL: cfg.URL, Path: "units"}, ID: "test"}

			a := commit(map[string]string{"units/app.yaml": appVulnerable}, "A: 1.0")
			if _, err := l.Once(ctx, store.Fence{}); err != nil {
				t.Fatalf("A: %v", err)
			}
			b := commit(map[string]string{"units/app.yaml": appFixed}, "B: the fix")
			if res, err := l.Once(ctx, store.Fence{}); err != nil || res.Count(Update) != 1 {
				t.Fatalf("B: %v %v", res, err)
			}
			to := tt.move(r, a, b, tt.signer)

			res, err := l.Once(ctx, store.Fence{})
			if err == nil {
				t.Fatalf("main moved from B %s to %s, not a descendant: the pass applied it: %s; app in etcd: %s",
					b[:7], to[:7], res.Summary(), storedApp(t, st))
			}
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), to[:7]) || !strings.Contains(err.Error(), b[:7]) {
				t.Fatalf("error %v: want a refusal naming %s and %s", err, to[:7], b[:7])
			}
			if got := storedApp(t, st); !strings.Contains(got, "app:1.1-fixed") {
				t.Fatalf("app in etcd after the refusal: %s", got)
			}
			rec, err := st.GetSyncRecord(ctx, "team")
			if err != nil || rec.Revision != b {
				t.Fatalf("record after the refusal: %+v %v: want revision %s", rec, err, b)
			}
		})
	}
}

// back force-moves main to A.
func back(r *gittest.Repo, a, _ string, _ gittest.Signer) string {
	r.Git("reset", "-q", "--hard", a)
	return a
}

// amend replaces B by B': the same change (and more), on A, not on B.
func amend(r *gittest.Repo, a, _ string, s gittest.Signer) string {
	r.Git("reset", "-q", "--hard", a)
	r.Write(map[string]string{"units/app.yaml": appFixedMore})
	if s != nil {
		return r.CommitSigned("B': the fix, amended", s)
	}
	return r.Commit("B': the fix, amended")
}

func storedApp(t *testing.T, st *store.Store) string {
	t.Helper()
	u, err := st.GetUnit(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	return string(u.Raw)
}
