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
	"github.com/kaylee-gitops/kaylee/store"
)

// The plan is pure: these tables need neither etcd nor git.

func unitFile(name string, replicas int) string {
	return fmt.Sprintf("name: %s\nreplicas: %d\napps:\n- image: docker://x\n", name, replicas)
}

func canonical(t *testing.T, name string, replicas int) *store.Unit {
	t.Helper()
	docs, err := deploy.Load(name+".yaml", []byte(unitFile(name, replicas)))
	if err != nil {
		t.Fatal(err)
	}
	return &store.Unit{Name: name, Raw: docs[0].Spec.CanonicalJSON()}
}

// world is the store before a pass: units with their replicas, and which
// source owns which units (source → names).
type world struct {
	units map[string]int
	owns  map[string][]string
	pin   map[string]int // unit → replicas of the version a rollback replaced
}

func (w world) state(t *testing.T) *state {
	s := &state{units: map[string]*store.Unit{}, records: map[string]*store.SyncRecord{}, pins: map[string]*store.RollbackPin{}}
	for name, n := range w.units {
		s.units[name] = canonical(t, name, n)
	}
	for src, names := range w.owns {
		inv := map[string]string{}
		for _, n := range names {
			inv[n] = n + ".yaml"
		}
		s.records[src] = &store.SyncRecord{Source: src, Revision: "0000000", Inventory: inv}
	}
	for name, n := range w.pin {
		s.pins[name] = &store.RollbackPin{Unit: name, Revision: 3, Replaced: store.ContentHash(canonical(t, name, n).Raw)}
	}
	return s
}

func snapshot(files map[string]string) *gitsource.Snapshot {
	s := &gitsource.Snapshot{Revision: "1111111111111111111111111111111111111111", Ref: "main"}
	for path, data := range files {
		s.Files = append(s.Files, gitsource.File{Path: path, Data: []byte(data)})
	}
	return s
}

// changes renders a result as "a:create b:prune …" in name order.
func changes(r *Result) string {
	var out []string
	for _, c := range r.Changes {
		out = append(out, c.Name+":"+string(c.Action))
	}
	return strings.Join(out, " ")
}

func TestPlan(t *testing.T) {
	tests := []struct {
		name    string
		world   world
		files   map[string]string
		opts    Options
		changes string
		puts    string // names written
		prune   string
		refused string // part of the refusal
		errors  string // file errors, joined by " | "
		owned   string // the record's inventory after
	}{
		{name: "first pass creates",
			files:   map[string]string{"a.yaml": unitFile("a", 1), "b.yaml": unitFile("b", 2)},
			changes: "a:create b:create", puts: "a b", owned: "a b"},
		{name: "unchanged and updated",
			world:   world{units: map[string]int{"a": 1, "b": 2}, owns: map[string][]string{"src": {"a", "b"}}},
			files:   map[string]string{"a.yaml": unitFile("a", 1), "b.yaml": unitFile("b", 3)},
			changes: "a:unchanged b:update", puts: "b", owned: "a b"},
		{name: "removed file prunes",
			world:   world{units: map[string]int{"a": 1, "b": 2, "c": 1}, owns: map[string][]string{"src": {"a", "b", "c"}}},
			files:   map[string]string{"a.yaml": unitFile("a", 1), "b.yaml": unitFile("b", 2)},
			changes: "a:unchanged b:unchanged c:prune", prune: "c", owned: "a b"},
		{name: "a unit of kaylee run is never pruned",
			world:   world{units: map[string]int{"a": 1, "manual": 1}, owns: map[string][]string{"src": {"a"}}},
			files:   map[string]string{"a.yaml": unitFile("a", 1)},
			changes: "a:unchanged", owned: "a"},
		{name: "a failing file holds its unit",
			world:   world{units: map[string]int{"a": 1, "b": 1}, owns: map[string][]string{"src": {"a", "b"}}},
			files:   map[string]string{"a.yaml": unitFile("a", 1), "b.yaml": "name: b\nreplicas: many\n"},
			changes: "a:unchanged b:held", owned: "a b", errors: "b.yaml:2: replicas"},
		{name: "another source's unit is an error, not a takeover",
			world:   world{units: map[string]int{"a": 1}, owns: map[string][]string{"other": {"a"}}},
			files:   map[string]string{"a.yaml": unitFile("a", 5)},
			changes: "", owned: "", errors: `a.yaml:1: unit "a" belongs to git source "other"`},
		{name: "a name defined twice is held",
			world:   world{units: map[string]int{"a": 1}, owns: map[string][]string{"src": {"a"}}},
			files:   map[string]string{"a.yaml": unitFile("a", 1), "again.yaml": unitFile("a", 2)},
			changes: "a:held", owned: "a", errors: `a.yaml:1: unit "a" is also defined in again.yaml:1`},
		{name: "a rolled-back unit is kept while git has what it replaced",
			world:   world{units: map[string]int{"a": 1}, owns: map[string][]string{"src": {"a"}}, pin: map[string]int{"a": 2}},
			files:   map[string]string{"a.yaml": unitFile("a", 2)},
			changes: "a:kept", owned: "a"},
		{name: "a new commit of a rolled-back unit ends the pin",
			world:   world{units: map[string]int{"a": 1}, owns: map[string][]string{"src": {"a"}}, pin: map[string]int{"a": 2}},
			files:   map[string]string{"a.yaml": unitFile("a", 3)},
			changes: "a:update", puts: "a", owned: "a"},
		{name: "pruning more than half is refused",
			world:   world{units: map[string]int{"a": 1, "b": 1, "c": 1, "d": 1}, owns: map[string][]string{"src": {"a", "b", "c", "d"}}},
			files:   map[string]string{"a.yaml": unitFile("a", 1)},
			changes: "a:unchanged b:prune c:prune d:prune", prune: "b c d",
			refused: `prune 3 of the 4 units of source "src" (75%, more than the 50% allowed)`},
		{name: "force allows it",
			world:   world{units: map[string]int{"a": 1, "b": 1, "c": 1, "d": 1}, owns: map[string][]string{"src": {"a", "b", "c", "d"}}},
			files:   map[string]string{"a.yaml": unitFile("a", 1)},
			opts:    Options{Force: true},
			changes: "a:unchanged b:prune c:prune d:prune", prune: "b c d", owned: "a"},
		{name: "a lower max-prune refuses less",
			world:   world{units: map[string]int{"a": 1, "b": 1, "c": 1, "d": 1}, owns: map[string][]string{"src": {"a", "b", "c", "d"}}},
			files:   map[string]string{"a.yaml": unitFile("a", 1), "b.yaml": unitFile("b", 1), "c.yaml": unitFile("c", 1)},
			opts:    Options{MaxPrune: 0.2},
			changes: "a:unchanged b:unchanged c:unchanged d:prune", prune: "d",
			refused: "(25%, more than the 20% allowed)"},
		{name: "emptying is refused",
			world:   world{units: map[string]int{"a": 1, "b": 1}, owns: map[string][]string{"src": {"a", "b"}}},
			files:   map[string]string{},
			opts:    Options{Force: true},
			changes: "a:prune b:prune", prune: "a b", refused: "leave it empty"},
		{name: "allow-empty alone empties the source",
			world:   world{units: map[string]int{"a": 1, "b": 1}, owns: map[string][]string{"src": {"a", "b"}}},
			files:   map[string]string{},
			opts:    Options{AllowEmpty: true},
			changes: "a:prune b:prune", prune: "a b", owned: ""},
		{name: "a unit already gone is not pruned again",
			world:   world{units: map[string]int{"a": 1}, owns: map[string][]string{"src": {"a", "gone"}}},
			files:   map[string]string{"a.yaml": unitFile("a", 1)},
			changes: "a:unchanged", owned: "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			o.Source, o.Now = "src", func() time.Time { return time.Unix(0, 0) }
			snap := snapshot(tt.files)
			p, _ := parse(context.Background(), snap, "")
			cs, err := plan(snap, p, tt.world.state(t), o)
			if got := changes(cs.Result); got != tt.changes {
				t.Errorf("changes %q, want %q", got, tt.changes)
			}
			var puts []string
			for _, p := range cs.Puts {
				puts = append(puts, p.Name)
			}
			if got := strings.Join(puts, " "); got != tt.puts {
				t.Errorf("puts %q, want %q", got, tt.puts)
			}
			if got := strings.Join(cs.Prune, " "); got != tt.prune {
				t.Errorf("prune %q, want %q", got, tt.prune)
			}
			var errs []string
			for _, e := range cs.Result.Errors {
				errs = append(errs, e.String())
			}
			if got := strings.Join(errs, " | "); tt.errors == "" && got != "" || !strings.Contains(got, tt.errors) {
				t.Errorf("errors %q, want %q", got, tt.errors)
			}
			if tt.refused != "" {
				if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.refused) {
					t.Fatalf("err %v, want a refusal with %q", err, tt.refused)
				}
				if cs.Record != nil || cs.Own != nil {
					t.Fatal("a refused plan has records to write")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var owned []string
			for n := range cs.Record.Inventory {
				owned = append(owned, n)
			}
			sort.Strings(owned)
			if got := strings.Join(owned, " "); got != tt.owned {
				t.Errorf("inventory %q, want %q", got, tt.owned)
			}
			if (len(cs.Puts)+len(cs.Prune) > 0) != (cs.Own != nil) {
				t.Errorf("own record %v with %d writes", cs.Own != nil, len(cs.Puts)+len(cs.Prune))
			}
			if cs.Own != nil {
				for n := range cs.Record.Inventory {
					if _, ok := cs.Own.Inventory[n]; !ok {
						t.Errorf("the owning record misses new unit %s", n)
					}
				}
				for _, n := range cs.Prune {
					if _, ok := cs.Own.Inventory[n]; !ok {
						t.Errorf("the owning record misses pruned unit %s", n)
					}
				}
			}
		})
	}
}

func TestOutcome(t *testing.T) {
	tests := []struct {
		name string
		res  *Result
		err  error
		want string
	}{
		{"clean", &Result{}, nil, store.AttemptSynced},
		{"file errors", &Result{Errors: []store.SyncError{{File: "a.yaml", Message: "bad"}}}, nil, store.AttemptFileErrors},
		{"refused", nil, fmt.Errorf("pass: %w", &RefusedError{Source: "s", Empty: true}), store.AttemptRefused},
		{"unverified", nil, &gitsource.VerificationError{Ref: "main", Revision: "abc", Reason: "not signed"}, store.AttemptUnverified},
		{"git unreachable", nil, errors.New("dial tcp: refused"), store.AttemptFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Outcome(tt.res, tt.err); got != tt.want {
				t.Errorf("Outcome = %q, want %q", got, tt.want)
			}
		})
	}
}

// Issue 25: a unit that names no engine is validated and warned about as
// the scheduler's default engine runs it: under docker, a two-app unit
// is refused (its file changes nothing) and a one-app unit is not told it
// runs with rkt.
func TestParseWithDefaultEngine(t *testing.T) {
	snap := snapshot(map[string]string{
		"pod.yaml": "name: pod\napps:\n- image: a\n- image: b\n",
		"web.yaml": "name: web\napps:\n- image: a\n",
	})
	for _, tt := range []struct {
		engine, errors, warnings string
	}{
		{"", "", "pod.yaml:2: engine: none given, so pod runs with rkt (the seed format's default), which is archived and on no current host; write engine: docker, or engine: rkt to keep it\n" +
			"web.yaml:2: engine: none given, so web runs with rkt (the seed format's default), which is archived and on no current host; write engine: docker, or engine: rkt to keep it\n"},
		{"docker", "pod.yaml:2: apps: engine docker runs one app per unit, found 2: split them into units, or use engine podman, which runs them as one pod (pod names no engine: it runs with the scheduler's default engine docker)\n", ""},
	} {
		p, err := parse(context.Background(), snap, tt.engine)
		if err != nil {
			t.Fatal(err)
		}
		lines := func(es []store.SyncError) string {
			var b strings.Builder
			for _, e := range es {
				fmt.Fprintf(&b, "%s:%d: %s\n", e.File, e.Line, e.Message)
			}
			return b.String()
		}
		if got := lines(p.errors); got != tt.errors {
			t.Errorf("default %q: errors\n%s\nwant\n%s", tt.engine, got, tt.errors)
		}
		if got := lines(p.warnings); got != tt.warnings {
			t.Errorf("default %q: warnings\n%s\nwant\n%s", tt.engine, got, tt.warnings)
		}
		if _, held := p.held["pod"]; held != (tt.engine == "docker") {
			t.Errorf("default %q: pod held %v", tt.engine, held)
		}
	}
}
