package sync

import (
	"context"
	"strings"
	"testing"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// A domain routes to one unit: a pass does not give a unit a domain that
// another unit claims in the same revision (both are errors, both units
// left as they were, as for a name defined twice), nor one that a stored
// unit keeping its value holds: another source's, one made with kaylee
// run, or one of this source's own that this pass leaves as it was. The
// refused unit keeps its stored value (or is not created). A wildcard
// and a name it covers are two claims, not a clash.

// site is a unit with one http port and domains (line 5).
func site(name, image string, domains ...string) string {
	return "name: " + name + "\napps:\n- image: docker://" + image + "\nports: [{name: http, port: 80}]\ndomains: ['" + strings.Join(domains, "', '") + "']\n"
}

func TestPassDomainClaims(t *testing.T) {
	const also = "; a domain routes to one unit: remove it from one of the two"
	for _, tt := range []struct {
		name  string
		setup func(w *teams) // after team-b's pass, before team-a's
		a     map[string]string
		opts  Options
		errs  []string          // team-a's errors, all of them
		want  map[string]string // unit → a fragment of its stored JSON; "" not stored
	}{
		{"two files of one source", nil,
			map[string]string{"shop.yaml": site("shop", "shop", "shop.example.com"), "blog.yaml": site("blog", "blog", "blog.example.com", "shop.example.com")}, Options{},
			[]string{
				`units/blog.yaml:5: domains[1]: "shop.example.com" is also claimed by unit "shop" in units/shop.yaml:5` + also,
				`units/shop.yaml:5: domains[0]: "shop.example.com" is also claimed by unit "blog" in units/blog.yaml:5` + also,
			}, map[string]string{"shop": "", "blog": ""}},
		{"two files of one source, units stored before", func(w *teams) {
			w.sync("team-a", map[string]string{"shop.yaml": site("shop", "shop:1", "shop.example.com"), "blog.yaml": site("blog", "blog:1", "blog.example.com")}, Options{})
		}, map[string]string{"shop.yaml": site("shop", "shop:2", "shop.example.com"), "blog.yaml": site("blog", "blog:2", "blog.example.com", "shop.example.com")}, Options{},
			[]string{
				`units/blog.yaml:5: domains[1]: "shop.example.com" is also claimed by unit "shop" in units/shop.yaml:5` + also,
				`units/shop.yaml:5: domains[0]: "shop.example.com" is also claimed by unit "blog" in units/blog.yaml:5` + also,
			}, map[string]string{"shop": `"docker://shop:1"`, "blog": `"domains":["blog.example.com"]`}},
		{"another source's unit", nil,
			map[string]string{"shop.yaml": site("shop", "shop", "shop.example.com", "www.example.com")}, Options{},
			[]string{`units/shop.yaml:5: domains[1]: "www.example.com" is claimed by unit "web" of source "team-b" (units/web.yaml)` + also + "; the unit is not created"},
			map[string]string{"shop": ""}},
		{"another source's unit, existing unit left as it was", func(w *teams) {
			w.sync("team-a", map[string]string{"shop.yaml": site("shop", "shop:1", "shop.example.com")}, Options{})
		}, map[string]string{"shop.yaml": site("shop", "shop:2", "shop.example.com", "www.example.com")}, Options{},
			[]string{`units/shop.yaml:5: domains[1]: "www.example.com" is claimed by unit "web" of source "team-b" (units/web.yaml)` + also + "; the unit is left as it was"},
			map[string]string{"shop": `"image":"docker://shop:1"}],"ports":[{"name":"http","port":80}],"domains":["shop.example.com"]}`}},
		{"a unit made with kaylee run", func(w *teams) {
			w.run(site("ops", "ops", "ops.example.com"))
		}, map[string]string{"shop.yaml": site("shop", "shop", "ops.example.com")}, Options{},
			[]string{`units/shop.yaml:5: domains[0]: "ops.example.com" is claimed by unit "ops", stored with kaylee run (no source)` + also + "; the unit is not created"},
			map[string]string{"shop": "", "ops": `"domains":["ops.example.com"]`}},
		{"a wildcard and a name it covers", nil,
			map[string]string{"help.yaml": site("help", "help", "*.www.example.com", "a.help.example.com")}, Options{},
			nil, map[string]string{"help": `"domains":["*.www.example.com","a.help.example.com"]`}},
		{"moved from one unit to another in one revision", func(w *teams) {
			w.sync("team-a", map[string]string{"shop.yaml": site("shop", "shop", "shop.example.com", "old.example.com"), "blog.yaml": site("blog", "blog", "blog.example.com")}, Options{})
		}, map[string]string{"shop.yaml": site("shop", "shop", "shop.example.com"), "blog.yaml": site("blog", "blog", "blog.example.com", "old.example.com")}, Options{},
			nil, map[string]string{"shop": `"domains":["shop.example.com"]`, "blog": `"domains":["blog.example.com","old.example.com"]`}},
		{"held by a unit of its own whose file fails", func(w *teams) {
			w.sync("team-a", map[string]string{"shop.yaml": site("shop", "shop", "shop.example.com", "old.example.com")}, Options{})
		}, map[string]string{"shop.yaml": site("shop", "shop", "shop.example.com") + "replicas: -1\n", "blog.yaml": site("blog", "blog", "old.example.com")}, Options{},
			[]string{
				`units/shop.yaml:6: replicas: -1 is out of range: 1 to 1000 (leave it out for a single unit)`,
				`units/blog.yaml:5: domains[0]: "old.example.com" is claimed by unit "shop" of this source (units/shop.yaml), left as it was in this pass` + also + "; the unit is not created",
			}, map[string]string{"shop": `"domains":["shop.example.com","old.example.com"]`, "blog": ""}},
		{"held by a unit refused in the same pass", func(w *teams) {
			w.sync("team-a", map[string]string{"shop.yaml": site("shop", "shop", "old.example.com")}, Options{})
		}, map[string]string{"shop.yaml": site("shop", "shop", "www.example.com"), "blog.yaml": site("blog", "blog", "old.example.com")}, Options{},
			[]string{
				`units/blog.yaml:5: domains[0]: "old.example.com" is claimed by unit "shop" of this source (units/shop.yaml), left as it was in this pass` + also + "; the unit is not created",
				`units/shop.yaml:5: domains[0]: "www.example.com" is claimed by unit "web" of source "team-b" (units/web.yaml)` + also + "; the unit is left as it was",
			}, map[string]string{"shop": `"domains":["old.example.com"]`, "blog": ""}},
		{"a unit this pass prunes", func(w *teams) {
			w.sync("team-a", map[string]string{"shop.yaml": site("shop", "shop", "old.example.com")}, Options{})
		}, map[string]string{"blog.yaml": site("blog", "blog", "old.example.com")}, Options{MaxPrune: 1},
			nil, map[string]string{"shop": "", "blog": `"domains":["old.example.com"]`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newTeams(t, "team-a", "team-b")
			if r := w.sync("team-b", map[string]string{"web.yaml": site("web", "web", "www.example.com", "*.help.example.com")}, Options{}); len(r.Errors) > 0 {
				t.Fatalf("team-b: %s", errorStrings(r))
			}
			if tt.setup != nil {
				tt.setup(w)
			}
			web := w.stored()["web"]
			r := w.sync("team-a", tt.a, tt.opts)
			if got, want := errorStrings(r), strings.Join(tt.errs, "\n"); got != want {
				t.Fatalf("team-a's errors:\n%s\nwant:\n%s", got, want)
			}
			after := w.stored()
			for name, frag := range tt.want {
				if got := after[name]; frag == "" && got != "" || !strings.Contains(got, frag) {
					t.Errorf("%s in etcd: %s, want %s", name, got, frag)
				}
			}
			if after["web"] != web {
				t.Errorf("team-b's web changed: %s → %s", web, after["web"])
			}
		})
	}
}

// TestPassDomainsChangeNoHash: a change of domains is an update of the
// stored unit, shown in the pass's field diff, that keeps its spec hash:
// the scheduler rolls nothing.
func TestPassDomainsChangeNoHash(t *testing.T) {
	e := newEnv(t)
	e.commit(map[string]string{"shop.yaml": site("shop", "shop", "shop.example.com")})
	e.mustPass(Options{})
	before := e.stored()["shop"]
	e.commit(map[string]string{"shop.yaml": site("shop", "shop", "shop.example.com", "*.shop.example.com")})
	r := e.mustPass(Options{})
	if len(r.Changes) != 1 || r.Changes[0].Action != Update || strings.Join(r.Changes[0].Diff, "\n") != `~ domains: ["shop.example.com"] → ["shop.example.com","*.shop.example.com"]` {
		t.Fatalf("changes: %+v", r.Changes)
	}
	after := e.stored()["shop"]
	if after == before || !strings.Contains(after, `"*.shop.example.com"`) {
		t.Fatalf("stored: %s → %s", before, after)
	}
	hash := func(raw string) string {
		d, err := deploy.DecodeJSON("shop", []byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		return d.Spec.Hash(0)
	}
	if hash(before) != hash(after) {
		t.Errorf("a change of domains changed the spec hash: %s → %s", hash(before), hash(after))
	}
	u, err := e.store.GetUnit(context.Background(), "shop")
	if err != nil || u.Spec.Hash(0) != hash(before) {
		t.Errorf("the store's unit: %v, hash %s", err, u.Spec.Hash(0))
	}
}
