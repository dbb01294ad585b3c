package sync

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

type env struct {
	t     *testing.T
	repo  *gittest.Repo
	src   *gitsource.Source
	store *store.Store
	etcd  *etcdtest.Server
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := etcdtest.New(t)
	r := gittest.NewRepo(t)
	src, err := gitsource.New(gitsource.Config{URL: r.FileURL(), Path: "units", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, repo: r, src: src, store: store.New(e.Client(t), store.DefaultPrefix), etcd: e}
}

// commit writes files under units/ and commits.
func (e *env) commit(files map[string]string) string {
	e.t.Helper()
	w := map[string]string{"README.md": "units live in units/\n"}
	for k, v := range files {
		w["units/"+k] = v
	}
	e.repo.Write(w)
	return e.repo.Commit("change")
}

func (e *env) pass(o Options) (*Result, error) {
	e.t.Helper()
	snap, err := e.src.Fetch(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	if o.Source == "" {
		o.Source = "units"
	}
	return Pass(context.Background(), e.store, snap, o)
}

func (e *env) mustPass(o Options) *Result {
	e.t.Helper()
	r, err := e.pass(o)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// stored returns name → canonical JSON of every unit in etcd.
func (e *env) stored() map[string]string {
	e.t.Helper()
	units, _, err := e.store.ListUnits(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]string{}
	for _, u := range units {
		out[u.Name] = string(u.Raw)
	}
	return out
}

func (e *env) revision() int64 {
	r, err := e.etcd.Client(e.t).Get(context.Background(), "/")
	if err != nil {
		e.t.Fatal(err)
	}
	return r.Header.Revision
}

func counts(r *Result) string {
	return fmt.Sprintf("c%d u%d p%d n%d e%d", r.Count(Create), r.Count(Update), r.Count(Prune), r.Count(Unchanged)+r.Count(Held), len(r.Errors))
}

const (
	webV1 = "name: web\nreplicas: 2\napps:\n- image: docker://nginx:1\n"
	webV2 = "name: web\nreplicas: 3\napps:\n- image: docker://nginx:1\n"
	apiDB = "name: api\napps:\n- image: docker://api\n---\nname: worker\napps:\n- image: docker://worker\n"
)

func TestPassLifecycle(t *testing.T) {
	e := newEnv(t)
	rev := e.commit(map[string]string{"web.yaml": webV1, "api.yaml": apiDB})

	r := e.mustPass(Options{URL: "repo"})
	if counts(r) != "c3 u0 p0 n0 e0" || r.Summary() != "main@"+rev[:7]+": 3 created, 0 updated, 0 pruned, 0 unchanged" {
		t.Fatalf("first pass: %s / %s", counts(r), r.Summary())
	}
	if got := e.stored()["web"]; got != `{"name":"web","replicas":2,"apps":[{"image":"docker://nginx:1"}]}` {
		t.Fatalf("web in etcd: %s", got)
	}
	rec, err := e.store.GetSyncRecord(context.Background(), "units")
	if err != nil || rec.Revision != rev || rec.Ref != "main" || rec.Inventory["worker"] != "units/api.yaml" || rec.Created != 3 {
		t.Fatalf("sync record: %+v %v", rec, err)
	}

	// Nothing changed: nothing but the record is written.
	before := e.revision()
	if r := e.mustPass(Options{}); counts(r) != "c0 u0 p0 n3 e0" {
		t.Fatalf("no-op pass: %s", counts(r))
	}
	if after := e.revision(); after != before+1 {
		t.Fatalf("no-op pass wrote %d revisions, want 1 (the record)", after-before)
	}

	// A hand-made unit (kaylee run) is never pruned by git.
	if _, err := e.store.PutUnit(context.Background(), &deploy.Spec{Name: "manual", Apps: []deploy.App{{Image: "docker://x"}}}, store.Fence{}); err != nil {
		t.Fatal(err)
	}
	// A good change among a broken file: web updates; api and worker,
	// whose file broke, stay exactly as they were.
	apiBefore := e.stored()["api"]
	e.commit(map[string]string{"web.yaml": webV2, "api.yaml": "name: api\napps:\n- image: docker://api:2\n  bogus: 1\n---\nname: worker\napps: [\n"})
	r = e.mustPass(Options{})
	if counts(r) != "c0 u1 p0 n2 e2" {
		t.Fatalf("pass with a broken file: %s %+v", counts(r), r.Errors)
	}
	var msgs []string
	for _, se := range r.Errors {
		msgs = append(msgs, se.String())
	}
	if !strings.Contains(strings.Join(msgs, "\n"), `units/api.yaml:4: unknown field "bogus"`) {
		t.Fatalf("errors %q lack file, line and field", msgs)
	}
	s := e.stored()
	if s["api"] != apiBefore || s["worker"] == "" || !strings.Contains(s["web"], `"replicas":3`) || s["manual"] == "" {
		t.Fatalf("after a broken file: %v", s)
	}

	// Fix the file and drop worker: worker is pruned, manual is not.
	e.commit(map[string]string{"api.yaml": "name: api\napps:\n- image: docker://api:2\n"})
	r = e.mustPass(Options{})
	if counts(r) != "c0 u1 p1 n1 e0" {
		t.Fatalf("prune pass: %s", counts(r))
	}
	s = e.stored()
	if _, ok := s["worker"]; ok || s["manual"] == "" || !strings.Contains(s["api"], "api:2") {
		t.Fatalf("after prune: %v", s)
	}

	// Dry run: a plan with a field diff, and no write at all.
	e.commit(map[string]string{"web.yaml": webV1})
	before = e.revision()
	r = e.mustPass(Options{DryRun: true})
	if e.revision() != before || r.Count(Update) != 1 {
		t.Fatalf("dry run wrote (%d revisions) or planned %s", e.revision()-before, counts(r))
	}
	for _, c := range r.Changes {
		if c.Name == "web" && (len(c.Diff) != 1 || c.Diff[0] != "~ replicas: 3 → 2") {
			t.Fatalf("dry-run diff of web: %q", c.Diff)
		}
	}
}

func TestPassSafetyRules(t *testing.T) {
	e := newEnv(t)
	files := map[string]string{}
	for i := range 4 {
		files[fmt.Sprintf("u%d.yaml", i)] = fmt.Sprintf("name: u%d\napps:\n- image: docker://x\n", i)
	}
	e.commit(files)
	e.mustPass(Options{})

	// Removing 3 of 4 (75% > 50%) is refused, and writes nothing.
	e.commit(map[string]string{"u0.yaml": "", "u1.yaml": "", "u2.yaml": ""})
	before := e.revision()
	_, err := e.pass(Options{})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "prune 3 of the 4 units of source \"units\" (75%, more than the 50% allowed)") {
		t.Fatalf("large prune: %v", err)
	}
	if e.revision() != before || len(e.stored()) != 4 {
		t.Fatalf("a refused pass wrote something")
	}
	if r := e.mustPass(Options{Force: true}); r.Count(Prune) != 3 {
		t.Fatalf("forced: %s", counts(r))
	}

	// Emptying the source is refused unless allowed.
	e.commit(map[string]string{"u3.yaml": "", "NOTES.md": "units were here\n"})
	_, err = e.pass(Options{Force: true})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "leave it empty") {
		t.Fatalf("emptying: %v", err)
	}
	if len(e.stored()) != 1 {
		t.Fatalf("a refused pass pruned: %v", e.stored())
	}
	if r := e.mustPass(Options{AllowEmpty: true}); r.Count(Prune) != 1 || len(e.stored()) != 0 {
		t.Fatalf("allowed empty: %s %v", counts(r), e.stored())
	}
}

func TestPassDuplicatesAndOwners(t *testing.T) {
	e := newEnv(t)
	e.commit(map[string]string{"a.yaml": webV1, "b.yaml": "name: api\napps:\n- image: docker://api\n"})
	e.mustPass(Options{})
	// web defined twice: both files get an error, web keeps its value.
	e.commit(map[string]string{"dup.yaml": webV2})
	r := e.mustPass(Options{})
	if len(r.Errors) != 2 || !strings.Contains(r.Errors[0].String(), `units/a.yaml:1: unit "web" is also defined in units/dup.yaml:1`) {
		t.Fatalf("duplicate errors: %+v", r.Errors)
	}
	if !strings.Contains(e.stored()["web"], `"replicas":2`) {
		t.Fatalf("a duplicated unit changed: %s", e.stored()["web"])
	}
	// Another source cannot take a unit this one owns.
	r2 := gittest.NewRepo(t)
	r2.Write(map[string]string{"api.yaml": "name: api\nreplicas: 5\napps:\n- image: docker://api\n"})
	r2.Commit("other")
	src2, _ := gitsource.New(gitsource.Config{URL: r2.FileURL(), CacheDir: t.TempDir()})
	snap, err := src2.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res, err := Pass(context.Background(), e.store, snap, Options{Source: "other"})
	if err != nil || len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Message, `belongs to git source "units"`) {
		t.Fatalf("ownership: %+v %v", res, err)
	}
	if strings.Contains(e.stored()["api"], "replicas") {
		t.Fatalf("another source changed api: %s", e.stored()["api"])
	}
}

func TestDefaultSourceName(t *testing.T) {
	for _, tt := range []struct{ url, path, want string }{
		{"https://github.com/org/kaylee.git", "examples", "kaylee-examples"},
		{"git@github.com:org/units.git", "", "units"},
		{"/home/me/Repo", "a/b", "repo-a-b"},
		{"file:///srv/git/deploy/", ".", "deploy"},
		// A URL without a path: the host, never the user info.
		{"http://kaylee:s3cretPW@git.example.com", "", "git.example.com"},
		{"http://***@git.example.com", "", "git.example.com"},
	} {
		if got := DefaultSourceName(tt.url, tt.path); got != tt.want {
			t.Errorf("DefaultSourceName(%q, %q) = %q, want %q", tt.url, tt.path, got, tt.want)
		}
	}
}

// A unit rolled back (store.Rollback) stays rolled back while git still
// has the version the rollback replaced; a change of its file, or resume,
// makes sync follow git again.
func TestPassKeepsRollback(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	webV3 := strings.Replace(webV2, "replicas: 3", "replicas: 4", 1)
	history := func(rev int64) {
		t.Helper()
		raw := e.stored()["web"]
		if err := e.store.PutHistory(ctx, &store.HistoryEntry{Unit: "web", Revision: rev, SpecHash: fmt.Sprint("h", rev), Spec: []byte(raw),
			Outcome: store.OutcomeDeployed, Deployed: time.Now()}, nil, store.Fence{}); err != nil {
			t.Fatal(err)
		}
	}
	e.commit(map[string]string{"web.yaml": webV1})
	e.mustPass(Options{})
	v1 := e.stored()["web"]
	history(1)
	e.commit(map[string]string{"web.yaml": webV2})
	e.mustPass(Options{})
	v2 := e.stored()["web"]
	history(2)

	if _, err := e.store.Rollback(ctx, "web", "", "test"); err != nil {
		t.Fatal(err)
	}
	if got := e.stored()["web"]; got != v1 {
		t.Fatalf("after rollback the store has %s, want %s", got, v1)
	}
	res := e.mustPass(Options{})
	if got := e.stored()["web"]; got != v1 {
		t.Fatalf("sync undid the rollback: %s", got)
	}
	if !strings.Contains(res.Summary(), "1 kept rolled back") || res.Changes[0].Action != Kept ||
		!strings.Contains(res.Changes[0].Note, "rolled back to revision 1") {
		t.Fatalf("pass over a rolled-back unit: %s %+v", res.Summary(), res.Changes)
	}
	rec, err := e.store.GetSyncRecord(ctx, "units")
	if err != nil || rec.RolledBack["web"] != 1 {
		t.Fatalf("record: %+v %v", rec, err)
	}

	// The file changes in git: sync follows it, and the pin is gone.
	e.commit(map[string]string{"web.yaml": webV3})
	if res := e.mustPass(Options{}); res.Count(Update) != 1 {
		t.Fatalf("after a change in git: %s", res.Summary())
	}
	v3 := e.stored()["web"]
	if v3 == v1 || v3 == v2 {
		t.Fatalf("store after the change in git: %s", v3)
	}
	if pins, _ := e.store.RollbackPins(ctx); len(pins) != 0 {
		t.Fatalf("pin left after git changed: %+v", pins)
	}

	// Rolled back again, then resumed: sync follows git at once.
	history(3)
	if _, err := e.store.Rollback(ctx, "web", "2", "test"); err != nil {
		t.Fatal(err)
	}
	if e.mustPass(Options{}).Count(Kept) != 1 || e.stored()["web"] != v2 {
		t.Fatalf("second rollback not kept: %s", e.stored()["web"])
	}
	if _, pinned, err := e.store.Resume(ctx, "web", "test"); err != nil || !pinned {
		t.Fatalf("resume: %v %v", pinned, err)
	}
	if res := e.mustPass(Options{}); res.Count(Update) != 1 || e.stored()["web"] != v3 {
		t.Fatalf("after resume: %s, stored %s", res.Summary(), e.stored()["web"])
	}
}

// settingsDown is a store whose scheduler settings cannot be read.
type settingsDown struct{ *store.Store }

func (settingsDown) GetSchedulerSettings(context.Context) (*store.SchedulerSettings, error) {
	return nil, errors.New("etcd: context deadline exceeded")
}

// A pass that cannot read the scheduler's default engine writes nothing:
// validated as rkt, a file the default engine refuses would be stored,
// then refused by the scheduler.
func TestPassWithoutSchedulerSettingsWritesNothing(t *testing.T) {
	e := newEnv(t)
	e.commit(map[string]string{"web.yaml": "name: web\napps:\n- image: a\n"})
	snap, err := e.src.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = Pass(context.Background(), settingsDown{e.store}, snap, Options{Source: "units"})
	if err == nil || !strings.Contains(err.Error(), "reading the scheduler's default engine: etcd: context deadline exceeded") {
		t.Fatalf("pass: %v, want the settings' error", err)
	}
	if got := e.stored(); len(got) != 0 {
		t.Errorf("stored %v, want nothing", got)
	}
}

// raceRecords is a store that runs another pass (meanwhile) right after
// the first time it lists the sync records, as a second CI job or sync
// loop does between a pass's read and its write.
type raceRecords struct {
	*store.Store
	meanwhile func()
}

func (r *raceRecords) ListSyncRecords(ctx context.Context) (map[string]*store.SyncRecord, error) {
	recs, err := r.Store.ListSyncRecords(ctx)
	if f := r.meanwhile; f != nil {
		r.meanwhile = nil
		f()
	}
	return recs, err
}

// Two sources that claim the same new units at once: one gets them,
// the other is told whose they are, as if they had run one after the
// other. A unit in two sources' inventories would be pruned by the first
// pass of either that no longer defines it, and each pass would report
// it as another's. 60 units take the pass past one transaction: its
// owning record makes the claim.
func TestPassClaimRace(t *testing.T) {
	for _, n := range []int{1, 60} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			e := newEnv(t)
			mine, theirs := map[string]string{}, map[string]string{}
			for i := range n {
				name := fmt.Sprintf("web%d", i)
				mine[name+".yaml"] = strings.Replace(webV1, "name: web", "name: "+name, 1)
				theirs[name+".yaml"] = strings.Replace(webV2, "name: web", "name: "+name, 1)
			}
			e.commit(mine)
			r2 := gittest.NewRepo(t)
			r2.Write(theirs)
			r2.Commit("other")
			src2, err := gitsource.New(gitsource.Config{URL: r2.FileURL(), CacheDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			snap2, err := src2.Fetch(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			snap, err := e.src.Fetch(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			st := &raceRecords{Store: e.store, meanwhile: func() {
				if res, err := Pass(context.Background(), e.store, snap2, Options{Source: "other"}); err != nil || res.Count(Create) != n {
					t.Errorf("the other source's pass: %v %v", res, err)
				}
			}}
			res, err := Pass(context.Background(), st, snap, Options{Source: "units"})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Errors) != n || !strings.Contains(res.Errors[0].Message, `belongs to git source "other"`) {
				t.Errorf("the pass that lost the race: %s, errors %+v; want each unit's owner named", counts(res), res.Errors)
			}
			recs, err := e.store.ListSyncRecords(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var owners []string
			for src, rec := range recs {
				if _, ok := rec.Inventory["web0"]; ok {
					owners = append(owners, src)
				}
			}
			sort.Strings(owners)
			if len(owners) != 1 || owners[0] != "other" || !strings.Contains(e.stored()["web0"], `"replicas":3`) {
				t.Errorf("web0 is in the inventories of %v and stored as %s; want other's alone (3 replicas)", owners, e.stored()["web0"])
			}
		})
	}
}
