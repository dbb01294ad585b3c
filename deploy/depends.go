package deploy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// A unit's dependsOn names the units whose rollout must be done before
// its own starts (its first start and every update): the scheduler
// waits until each of them runs its current spec (fleet package). Names
// are unit names; a unit cannot depend on itself nor name a unit twice.
// Unknown names and cycles are checked across the units of a source
// (DependsOnProblems). dependsOn changes no fleet unit and is not part
// of the spec hash.

// checkDependsOn checks each entry of dependsOn on its own.
func (c *checker) checkDependsOn(s *Spec) {
	seen := map[string]int{}
	for i, dep := range s.DependsOn {
		field := fmt.Sprintf("dependsOn[%d]", i)
		switch j, dup := seen[dep]; {
		case dep == "":
			c.fail(field, "required: the name of a unit this one waits for")
		case len(dep) > MaxNameLen || !nameRe.MatchString(dep):
			c.fail(field, "%q is not a unit name (lowercase letters, digits and -, starting and ending with a letter or digit)", dep)
		case dep == s.Name:
			c.fail(field, "%q is this unit itself: a unit cannot wait for itself; remove it", dep)
		case dup:
			c.fail(field, "%q is also dependsOn[%d]: name a unit once", dep, j)
		default:
			seen[dep] = i
		}
	}
}

// DependsOnProblems checks the dependsOn of documents against the units
// known: the documents' and stored's (unit name → its dependsOn: the
// units stored elsewhere, which the documents' names override). A name
// that is no known unit, and a cycle, are errors on each document that
// has them, at its dependsOn entry or field; scope says where units were
// looked for ("this source or of etcd"). Documents with errors are known
// units but are not checked. It returns the errors by document, nil for
// none.
func DependsOnProblems(docs []*Document, stored map[string][]string, scope string) map[*Document]error {
	known := map[string]bool{}
	graph := map[string][]string{}
	where := map[string]string{}
	for name, deps := range stored {
		known[name], graph[name], where[name] = true, deps, name+": stored in etcd"
	}
	byName := map[string]*Document{}
	for _, d := range docs {
		if d.Spec.Name == "" {
			continue
		}
		known[d.Spec.Name] = true
		if d.Err != nil || byName[d.Spec.Name] != nil {
			continue
		}
		byName[d.Spec.Name] = d
		graph[d.Spec.Name] = d.Spec.DependsOn
		where[d.Spec.Name] = fmt.Sprintf("%s:%d", d.File, d.LineOf("dependsOn"))
	}
	names := make([]string, 0, len(known))
	for n := range known {
		names = append(names, n)
	}
	slices.Sort(names)
	out := map[*Document]error{}
	for _, d := range docs {
		if d.Err != nil || byName[d.Spec.Name] != d {
			continue
		}
		var errs []error
		for i, dep := range d.Spec.DependsOn {
			if known[dep] {
				continue
			}
			field := fmt.Sprintf("dependsOn[%d]", i)
			msg := fmt.Sprintf("%q is no unit of %s", dep, scope)
			if s := suggest(dep, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += "; add that unit or remove the name"
			}
			errs = append(errs, &FieldError{File: d.File, Line: d.LineOf(field), Field: field, Msg: msg})
		}
		if cycle := cycleFrom(d.Spec.Name, graph); cycle != nil {
			var at []string
			for _, n := range cycle[1 : len(cycle)-1] {
				at = append(at, where[n])
			}
			errs = append(errs, &FieldError{File: d.File, Line: d.LineOf("dependsOn"), Field: "dependsOn",
				Msg: fmt.Sprintf("cycle %s (%s): no unit of it could ever start; remove one of its dependsOn entries", strings.Join(cycle, " -> "), strings.Join(at, ", "))})
		}
		if len(errs) > 0 {
			out[d] = errors.Join(errs...)
		}
	}
	return out
}

// cycleFrom returns the shortest path of dependsOn edges from name back
// to itself (name first and last), or nil when there is none. Edges are
// followed in their order, so the answer does not vary.
func cycleFrom(name string, graph map[string][]string) []string {
	parent := map[string]string{}
	queue := []string{}
	for _, dep := range graph[name] {
		if _, seen := parent[dep]; seen || dep == name {
			continue
		}
		parent[dep] = name
		queue = append(queue, dep)
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, dep := range graph[n] {
			if dep == name {
				path := []string{name}
				for at := n; at != name; at = parent[at] {
					path = append(path, at)
				}
				slices.Reverse(path[1:])
				return append(path, name)
			}
			if _, seen := parent[dep]; seen {
				continue
			}
			parent[dep] = n
			queue = append(queue, dep)
		}
	}
	return nil
}
