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
			// What kaylee sources and the console show: the attempt.
			want := `sync refused: source "team": main@` + to[:7] + " (" + to + ") does not descend from main@" + b[:7] + " (" + b + "), the revision last applied"
			attempts, err := st.ListSyncAttempts(ctx)
			if at := attempts["team"]; err != nil || at.Result != store.AttemptRefused || at.Revision != to ||
				!strings.HasPrefix(at.Message, want) || !strings.HasSuffix(at.Message, "allow rewinds for this source to apply it; nothing was written") {
				t.Fatalf("attempt %+v %v: want refused, %s, %q…", at, err, to, want)
			}
			// The event log says it once, however often the pass is refused.
			if _, err := l.Once(ctx, store.Fence{}); !errors.Is(err, ErrRewind) {
				t.Fatalf("second pass: %v", err)
			}
			if evs := sourceEvents(t, st, store.EventSyncFailed); len(evs) != 1 || !strings.HasPrefix(evs[0].Message, "refused: "+want) || evs[0].Revision != to {
				t.Fatalf("sync-failed events %+v: want one, %q", evs, "refused: "+want)
			}

			// The branch moves on from B: applied as usual.
			r.Git("reset", "-q", "--hard", b)
			c := commit(map[string]string{"units/app.yaml": appFixedMore, "units/db.yaml": "name: db\napps:\n- image: docker://db\n"}, "C: on B")
			res, err = l.Once(ctx, store.Fence{})
			if err != nil || res.Revision != c || res.Count(Update) != 1 || res.Count(Create) != 1 || res.Rewound != nil {
				t.Fatalf("C, a descendant of B, after the refusal: %+v %v", res, err)
			}
			if evs := sourceEvents(t, st, store.EventSyncOK); len(evs) != 1 {
				t.Fatalf("sync-ok events %+v: want one", evs)
			}
		})
	}
}

// A rewind allowed (per source, or for one run) is applied, recorded in
// the attempt and the result's summary, and told as an event of its own.
// A source still on A after a refused rewind that moves on from A (not
// from B) is refused again.
func TestRewindAllowed(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	l := &Loop{Fetcher: e.src, Store: e.store, Options: Options{Source: "team"}, ID: "test"}
	a := e.commit(map[string]string{"app.yaml": appVulnerable})
	if _, err := l.Once(ctx, store.Fence{}); err != nil {
		t.Fatal(err)
	}
	b := e.commit(map[string]string{"app.yaml": appFixed})
	if _, err := l.Once(ctx, store.Fence{}); err != nil {
		t.Fatal(err)
	}
	e.repo.Git("reset", "-q", "--hard", a)
	a2 := e.commit(map[string]string{"app.yaml": appVulnerable, "db.yaml": "name: db\napps:\n- image: docker://db\n"})
	if _, err := l.Once(ctx, store.Fence{}); !errors.Is(err, ErrRewind) || !strings.Contains(err.Error(), a2[:7]) {
		t.Fatalf("A2 on A, after B: %v", err)
	}

	l.Options.AllowRewind = "--allow-rewind"
	res, err := l.Once(ctx, store.Fence{})
	want := "rewound from main@" + b[:7] + " (" + b + ") to main@" + a2[:7] + " (" + a2 + "), which does not descend from it; allowed by --allow-rewind"
	if err != nil || res.Rewound == nil || res.Count(Update) != 1 || !strings.HasSuffix(res.Summary(), want) {
		t.Fatalf("allowed rewind: %+v %v", res, err)
	}
	if got := storedApp(t, e.store); !strings.Contains(got, "app:1.0-vulnerable") {
		t.Fatalf("app after the allowed rewind: %s", got)
	}
	attempts, err := e.store.ListSyncAttempts(ctx)
	if at := attempts["team"]; err != nil || at.Result != store.AttemptSynced || at.Message != want {
		t.Fatalf("attempt %+v %v, want synced, %q", at, err, want)
	}
	if evs := sourceEvents(t, e.store, store.EventRewound); len(evs) != 1 || evs[0].Message != want || evs[0].Revision != a2 {
		t.Fatalf("rewound events %+v, want %q", evs, want)
	}
	// From now on A2 is what was applied: moving on from it needs nothing.
	l.Options.AllowRewind = ""
	e.commit(map[string]string{"app.yaml": appFixed, "db.yaml": "name: db\napps:\n- image: docker://db\n"})
	if res, err := l.Once(ctx, store.Fence{}); err != nil || res.Rewound != nil || res.Count(Update) != 1 {
		t.Fatalf("after the allowed rewind, on A2: %+v %v", res, err)
	}
}

// The history phase on its own, on a real repository: what it lets
// through, what it refuses, and that a question it cannot answer is not a
// yes.
func TestCheckHistory(t *testing.T) {
	r := gittest.NewRepo(t)
	a := r.Commit("A")
	r.Commit("X")
	b := r.Commit("B")
	c := r.Commit("C")
	r.Git("checkout", "-q", "-b", "amended", a)
	amended := r.Commit("B'")
	r.Git("checkout", "-q", "main")
	revs := map[string]string{"A": a, "B": b, "C": c, "B'": amended}
	tests := []struct {
		name        string
		last, at    string // "" last: no record (a first sync)
		allow       string
		noHistory   bool
		wantRewound bool
		wantErr     string
	}{
		{name: "first sync", at: "A"},
		{name: "unchanged", last: "B", at: "B"},
		{name: "forward", last: "A", at: "C"},
		{name: "back", last: "C", at: "A", wantErr: "does not descend from main@" + c[:7]},
		{name: "amended", last: "B", at: "B'", wantErr: "does not descend from main@" + b[:7]},
		{name: "back, allowed", last: "C", at: "A", allow: "allowRewind: true", wantRewound: true},
		{name: "no history given", last: "C", at: "A", noHistory: true},
		{name: "last applied is not a commit hash", last: "main", at: "A", wantErr: "cannot tell whether"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			r.Git("branch", "-f", "follow", revs[tt.at])
			src, err := gitsource.New(gitsource.Config{URL: r.FileURL(), Ref: "follow", CacheDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			snap, err := src.Fetch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			snap.Ref = "main"
			var last *store.SyncRecord
			if tt.last != "" {
				last = &store.SyncRecord{Source: "team", Ref: "main", Revision: revs[tt.last]}
				if revs[tt.last] == "" {
					last.Revision = tt.last
				}
			}
			o := Options{Source: "team", History: src, AllowRewind: tt.allow}
			if tt.noHistory {
				o.History = nil
			}
			rw, err := checkHistory(ctx, last, snap, o)
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || rw != nil {
					t.Fatalf("got %+v, %v; want an error with %q", rw, err, tt.wantErr)
				}
				if strings.Contains(tt.wantErr, "descend") != errors.Is(err, ErrRewind) {
					t.Fatalf("errors.Is(%v, ErrRewind) = %v", err, errors.Is(err, ErrRewind))
				}
			case err != nil:
				t.Fatal(err)
			case (rw != nil) != tt.wantRewound:
				t.Fatalf("rewound %+v, want %v", rw, tt.wantRewound)
			case rw != nil && (rw.From != revs[tt.last] || rw.To != revs[tt.at] || rw.AllowedBy != tt.allow):
				t.Fatalf("rewound %+v", rw)
			}
		})
	}
}

func sourceEvents(t *testing.T, st *store.Store, kind string) []store.Event {
	t.Helper()
	evs, _, err := st.ListEvents(context.Background(), "team", 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []store.Event
	for _, e := range evs {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
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
