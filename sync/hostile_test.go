package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store"
)

// Hostile revisions after a good sync: each is applied as far as it is
// good, and what it breaks keeps its last good state in etcd. (The
// repositories themselves are tested in gitsource/hostile_test.go; the
// benchmarks are in hostile_bench_test.go.)

// padded is a unit file of exactly n bytes: body and a comment.
func padded(body string, n int) string {
	return body + "#" + strings.Repeat("x", n-len(body)-2) + "\n"
}

func errorStrings(r *Result) string {
	var out []string
	for _, e := range r.Errors {
		out = append(out, e.String())
	}
	return strings.Join(out, "\n")
}

// A revision with a file over MaxFileSize, a symlink loop or a chain too
// long, or a tree too deep: the file's units (or, for the tree, every
// unit) stay as they were; the rest of the revision applies.
func TestHostileRevisionKeepsState(t *testing.T) {
	const (
		apiV1 = "name: api\napps:\n- image: docker://api:1\n"
		apiV2 = "name: api\napps:\n- image: docker://api:2\n"
	)
	for _, tt := range []struct {
		name    string
		change  func(e *env) string // makes the hostile revision (api moves to apiV2 with it)
		wantErr string              // the pass's error; "" when it applies
		errs    string              // its file errors
		webV2   bool                // web applied as webV2 (else kept at webV1)
	}{
		{"web.yaml of MaxFileSize+1 bytes", func(e *env) string {
			return e.commit(map[string]string{"web.yaml": padded(webV2, gitsource.MaxFileSize+1), "api.yaml": apiV2})
		}, "", "units/web.yaml: 1048577 bytes; unit files over 1048576 bytes are refused", false},
		{"web.yaml of exactly MaxFileSize bytes", func(e *env) string {
			return e.commit(map[string]string{"web.yaml": padded(webV2, gitsource.MaxFileSize), "api.yaml": apiV2})
		}, "", "", true},
		{"web.yaml a symlink loop", func(e *env) string {
			e.repo.Symlink("units/web.yaml", "loop.yaml")
			e.repo.Symlink("units/loop.yaml", "web.yaml")
			return e.commit(map[string]string{"api.yaml": apiV2})
		}, "", "units/loop.yaml: symlink to web.yaml: a symlink loop (units/loop.yaml -> units/web.yaml -> units/loop.yaml); not followed\n" +
			"units/web.yaml: symlink to loop.yaml: a symlink loop (units/web.yaml -> units/loop.yaml -> units/web.yaml); not followed", false},
		{"web.yaml a symlink to itself", func(e *env) string {
			e.repo.Symlink("units/web.yaml", "web.yaml")
			return e.commit(map[string]string{"api.yaml": apiV2})
		}, "", "units/web.yaml: symlink to web.yaml: a symlink loop (units/web.yaml -> units/web.yaml); not followed", false},
		{"web.yaml a chain of 41 symlinks", func(e *env) string {
			e.repo.Write(map[string]string{"real/web.yaml": webV2})
			for i := range gitsource.MaxSymlinks {
				e.repo.Symlink(fmt.Sprintf("chain/c%02d", i), fmt.Sprintf("c%02d", i+1))
			}
			e.repo.Symlink(fmt.Sprintf("chain/c%02d", gitsource.MaxSymlinks), "../real/web.yaml")
			e.repo.Symlink("units/web.yaml", "../chain/c00")
			return e.commit(map[string]string{"api.yaml": apiV2})
		}, "", "units/web.yaml: symlink to ../chain/c00: more than 40 symlinks to follow (units/web.yaml -> chain/c00 -> … -> chain/c38 -> chain/c39); not followed", false},
		{"web.yaml through a directory that loops", func(e *env) string {
			e.repo.Write(map[string]string{"real/web.yaml": webV2})
			e.repo.Symlink("units/dir/loop", "..")
			e.repo.Symlink("units/web.yaml", "dir/loop/dir/loop/../real/web.yaml")
			return e.commit(map[string]string{"api.yaml": apiV2})
		}, "", "", true},
		{"web.yaml an alias bomb of 42 KB", func(e *env) string {
			return e.commit(map[string]string{"web.yaml": aliasBomb("web", 10000, 5000), "api.yaml": apiV2})
		}, "", "units/web.yaml:4: apps[1]: aliases expand to more than 10000 values; write the values out, or use fewer aliases", false},
		{"a tree 4,097 deep", func(e *env) string {
			e.commit(map[string]string{"api.yaml": apiV2, "web.yaml": webV2})
			body := "name: deep\napps:\n- image: docker://x\n"
			e.repo.FastImport(func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "commit refs/heads/main\ncommitter t <t@e> 1700000000 +0000\ndata 4\ndeep\nfrom refs/heads/main^0\nM 644 inline units/%sdeep.yaml\ndata %d\n%s\n",
					strings.Repeat("d/", gitsource.MaxTreeDepth), len(body), body)
				return err
			})
			return e.repo.Git("rev-parse", "main")
		}, "units/d/d/d/…/d (4097 levels): directories nested deeper than 4096 levels at ", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			good := e.commit(map[string]string{"web.yaml": webV1, "api.yaml": apiV1, "db.yaml": "name: db\napps:\n- image: docker://db\n"})
			l := &Loop{Fetcher: e.src, Store: e.store, Options: Options{Source: "units"}}
			if res, err := l.Once(context.Background(), store.Fence{}); err != nil || counts(res) != "c3 u0 p0 n0 e0" {
				t.Fatalf("good revision: %v %v", res, err)
			}
			before := e.stored()
			rev := tt.change(e)
			res, err := l.Once(context.Background(), store.Fence{})
			after := e.stored()
			attempt, aerr := lastAttempt(e)
			if aerr != nil {
				t.Fatal(aerr)
			}
			if tt.wantErr != "" {
				want := tt.wantErr + rev[:7] + "; the revision is refused (nothing was changed)"
				if err == nil || err.Error() != want {
					t.Fatalf("pass: %v\nwant %s", err, want)
				}
				if !reflect.DeepEqual(after, before) {
					t.Fatalf("a refused revision changed etcd:\n%v\nwas\n%v", after, before)
				}
				if rec, err := e.store.GetSyncRecord(context.Background(), "units"); err != nil || rec.Revision != good {
					t.Fatalf("record: %+v %v, want revision %s", rec, err, good)
				}
				if attempt.Result != store.AttemptFailed || !strings.HasPrefix(attempt.Message, want) {
					t.Fatalf("attempt %+v", attempt)
				}
				return
			}
			if err != nil || res.Revision != rev {
				t.Fatalf("pass: %v %v, want revision %s", res, err, rev)
			}
			if got := errorStrings(res); got != tt.errs {
				t.Fatalf("file errors:\n%s\nwant:\n%s", got, tt.errs)
			}
			if after["db"] != before["db"] || !strings.Contains(after["api"], "api:2") {
				t.Fatalf("the good files did not apply: %v", after)
			}
			wantWeb := before["web"]
			if tt.webV2 {
				wantWeb = `{"name":"web","replicas":3,"apps":[{"image":"docker://nginx:1"}]}`
			}
			if after["web"] != wantWeb {
				t.Fatalf("web in etcd: %s, want %s", after["web"], wantWeb)
			}
			if tt.errs != "" && attempt.Result != store.AttemptFileErrors {
				t.Fatalf("attempt %+v", attempt)
			}
		})
	}
}

// lastAttempt is the source's last attempt record.
func lastAttempt(e *env) (*store.SyncAttempt, error) {
	all, err := e.store.ListSyncAttempts(context.Background())
	if err != nil {
		return nil, err
	}
	if all["units"] == nil {
		return nil, errors.New("no attempt recorded")
	}
	return all["units"], nil
}

// manyFiles is n unit files, 100 to a directory (d000/ …).
func manyFiles(n int, image string) map[string]string {
	files := map[string]string{}
	for i := range n {
		files[fmt.Sprintf("d%03d/svc-%05d.yaml", i/100, i)] = fmt.Sprintf("name: svc-%05d\nreplicas: 2\napps:\n- image: docker://%s\n", i, image)
	}
	return files
}

// 2,000 unit files in 20 directories: the first pass creates them all,
// a no-op pass writes only its record, a revision changing 1 in 100 and
// breaking one file updates those and holds that one, and one removing
// most of them is refused with nothing written.
func TestHostileManyFiles(t *testing.T) {
	const n = 2000
	e := newEnv(t)
	first := e.commit(manyFiles(n, "x:1"))
	r := e.mustPass(Options{})
	if counts(r) != fmt.Sprintf("c%d u0 p0 n0 e0", n) || r.Revision != first || len(e.stored()) != n {
		t.Fatalf("first pass: %s, %d units", counts(r), len(e.stored()))
	}
	before := e.revision()
	if r := e.mustPass(Options{}); counts(r) != fmt.Sprintf("c0 u0 p0 n%d e0", n) {
		t.Fatalf("no-op pass: %s", counts(r))
	}
	if d := e.revision() - before; d != 1 {
		t.Fatalf("no-op pass over %d units wrote %d revisions, want 1 (the record)", n, d)
	}

	change := map[string]string{}
	for i := 0; i < n; i += 100 {
		change[fmt.Sprintf("d%03d/svc-%05d.yaml", i/100, i)] = fmt.Sprintf("name: svc-%05d\nreplicas: 2\napps:\n- image: docker://x:2\n", i)
	}
	change["d007/svc-00777.yaml"] = "name: svc-00777\nreplicas: many\n"
	held := e.stored()["svc-00777"]
	e.commit(change)
	r = e.mustPass(Options{})
	if counts(r) != fmt.Sprintf("c0 u%d p0 n%d e1", n/100, n-n/100) || !strings.HasPrefix(errorStrings(r), "units/d007/svc-00777.yaml:2: ") {
		t.Fatalf("change pass: %s %s", counts(r), errorStrings(r))
	}
	s := e.stored()
	if s["svc-00777"] != held || !strings.Contains(s["svc-01900"], "x:2") || strings.Contains(s["svc-01901"], "x:2") {
		t.Fatalf("after the change: svc-00777 %s, svc-01900 %s, svc-01901 %s", s["svc-00777"], s["svc-01900"], s["svc-01901"])
	}

	remove := map[string]string{}
	for i := range n * 3 / 4 {
		remove[fmt.Sprintf("d%03d/svc-%05d.yaml", i/100, i)] = ""
	}
	e.commit(remove)
	before = e.revision()
	_, err := e.pass(Options{})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "prune 1500 of the 2000 units") {
		t.Fatalf("removing 1,500: %v", err)
	}
	if e.revision() != before || !reflect.DeepEqual(e.stored(), s) {
		t.Fatal("a refused pass wrote something")
	}
}

// A sync loop whose cache directory a crash damaged: its next pass, by a
// restarted agent at the same revision or by the running one after the
// ref moved, fetches afresh and applies the right revision; a revision
// that is then refused keeps the units as they were.
func TestHostileLoopAfterDamagedCache(t *testing.T) {
	var damages []gittest.Damage
	for _, d := range gittest.Damages() {
		switch d.Name {
		case "packs truncated to half", "objects deleted", "empty HEAD and config":
			damages = append(damages, d)
		}
	}
	for _, d := range damages {
		for _, then := range []string{"restart at the same revision", "ref moved", "ref moved to a refused revision"} {
			t.Run(d.Name+", "+then, func(t *testing.T) {
				e := newEnv(t)
				cache := t.TempDir()
				newLoop := func() *Loop {
					src, err := gitsource.New(gitsource.Config{URL: e.repo.FileURL(), Path: "units", CacheDir: cache})
					if err != nil {
						t.Fatal(err)
					}
					return &Loop{Fetcher: src, Store: e.store, Options: Options{Source: "units"}}
				}
				files := map[string]string{}
				for i := range 4 {
					files[fmt.Sprintf("u%d.yaml", i)] = fmt.Sprintf("name: u%d\napps:\n- image: docker://x:1\n", i)
				}
				rev := e.commit(files)
				l := newLoop()
				if res, err := l.Once(context.Background(), store.Fence{}); err != nil || counts(res) != "c4 u0 p0 n0 e0" {
					t.Fatalf("first pass: %v %v", res, err)
				}
				before := e.stored()
				repos, _ := filepath.Glob(filepath.Join(cache, "git", "*[0-9a-f]"))
				if len(repos) != 1 {
					t.Fatalf("cache repositories %v", repos)
				}
				d.Do(t, repos[0])

				want := "c0 u0 p0 n4 e0"
				switch then {
				case "restart at the same revision":
					l = newLoop()
				case "ref moved":
					rev = e.commit(map[string]string{"u0.yaml": "name: u0\napps:\n- image: docker://x:2\n", "u4.yaml": "name: u4\napps:\n- image: docker://x:1\n"})
					want = "c1 u1 p0 n3 e0"
				default:
					rev = e.commit(map[string]string{"u0.yaml": "", "u1.yaml": "", "u2.yaml": ""})
				}
				res, err := l.Once(context.Background(), store.Fence{})
				if then == "ref moved to a refused revision" {
					if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "prune 3 of the 4 units") {
						t.Fatalf("after the damage: %v", err)
					}
					if !reflect.DeepEqual(e.stored(), before) {
						t.Fatalf("a refused pass changed etcd: %v", e.stored())
					}
					if a, err := lastAttempt(e); err != nil || a.Result != store.AttemptRefused || a.Revision != rev {
						t.Fatalf("attempt %+v %v, want refused at %s", a, err, rev)
					}
					return
				}
				if err != nil || res.Revision != rev || counts(res) != want {
					t.Fatalf("after the damage: %v %v; want %s at %s", res, err, want, rev)
				}
				s := e.stored()
				if then == "ref moved" {
					if !strings.Contains(s["u0"], "x:2") || s["u4"] == "" || s["u1"] != before["u1"] {
						t.Fatalf("units after the damage: %v", s)
					}
				} else if !reflect.DeepEqual(s, before) {
					t.Fatalf("units after the damage: %v, want %v", s, before)
				}
				if rec, err := e.store.GetSyncRecord(context.Background(), "units"); err != nil || rec.Revision != rev {
					t.Fatalf("record %+v %v, want revision %s", rec, err, rev)
				}
			})
		}
	}
}

// aliasBomb is issue 20's unit file: an app whose args are n words,
// repeated m times by alias (about 2n+4m bytes, n·m values expanded).
func aliasBomb(name string, n, m int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\napps:\n- &a {image: x, args: [%s]}\n", name, strings.TrimSuffix(strings.Repeat("a,", n), ","))
	for range m {
		b.WriteString("- *a\n")
	}
	return b.String()
}

// A pass's context ends the reading of a revision: the pass returns the
// context's error, naming where it stopped, and writes nothing.
func TestPassStopsWithItsContext(t *testing.T) {
	e := newEnv(t)
	e.commit(manyFiles(50, "x:1"))
	snap, err := e.src.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	before := e.revision()
	// The reading of the files names where it stopped (a pass reads the
	// scheduler's default engine first: it stops there).
	if _, err := parse(ctx, snap, ""); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "reading the unit files of main@"+snap.Revision[:7]+": stopped at units/d000/svc-00000.yaml") {
		t.Fatalf("parse with a cancelled context: %v", err)
	}
	_, err = Pass(ctx, e.store, snap, Options{Source: "units"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("pass with a cancelled context: %v", err)
	}
	if e.revision() != before {
		t.Fatal("a cancelled pass wrote to etcd")
	}
}
