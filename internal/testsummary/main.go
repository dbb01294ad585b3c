// Command testsummary reads `go test -json` on its standard input and
// prints what `go test` prints without -v: a line per package, and the
// whole output of each failed test, of a package that failed outside a
// test (a timeout, a panic, a build error). At the end it names the tests
// that were skipped and the slowest tests, so that a CI log says where the
// time went and which tests did not run. With -durations FILE it also
// writes every test's duration, one per line, slowest first.
//
//	go test -json ./... | go run ./internal/testsummary -durations test-durations.tsv
//
// Its exit status is 0 unless its input cannot be read: go test's own
// exit status says whether the tests passed.
package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

func main() {
	durations := flag.String("durations", "", "write every test's duration to this file (package, test, seconds; slowest first)")
	slowest := flag.Int("slowest", 15, "how many of the slowest top-level tests to name at the end")
	flag.Parse()
	s := newSummary()
	if err := s.read(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "testsummary: %v\n", err)
		os.Exit(2)
	}
	s.tail(os.Stdout, *slowest)
	if *durations != "" {
		if err := s.writeDurations(*durations); err != nil {
			fmt.Fprintf(os.Stderr, "testsummary: %v\n", err)
			os.Exit(2)
		}
	}
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	Elapsed    float64
	ImportPath string // build-output, build-fail
}

// result is one finished test.
type result struct {
	pkg, test string
	elapsed   time.Duration
}

// summary follows a run: the output of tests still running (by package
// and top-level test), each package's own output, and what finished.
type summary struct {
	running map[string]map[string][]string // package → top-level test → output lines
	pkgOut  map[string][]string            // package → output outside tests
	build   map[string][]string            // import path → build output
	done    []result                       // tests that passed or failed, subtests too
	skipped []result
}

func newSummary() *summary {
	return &summary{running: map[string]map[string][]string{}, pkgOut: map[string][]string{}, build: map[string][]string{}}
}

// read follows the events of r, printing to w as packages end.
func (s *summary) read(r io.Reader, w io.Writer) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			// Not an event (go test printed something itself): pass it on.
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		s.add(e, w)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading go test's output: %w", err)
	}
	return nil
}

// add takes one event.
func (s *summary) add(e event, w io.Writer) {
	switch e.Action {
	case "build-output":
		s.build[e.ImportPath] = append(s.build[e.ImportPath], e.Output)
		return
	case "build-fail":
		io.WriteString(w, strings.Join(s.build[e.ImportPath], ""))
		delete(s.build, e.ImportPath)
		return
	}
	if e.Test == "" {
		s.addPackage(e, w)
		return
	}
	root, _, _ := strings.Cut(e.Test, "/")
	tests := s.running[e.Package]
	if tests == nil {
		tests = map[string][]string{}
		s.running[e.Package] = tests
	}
	switch e.Action {
	case "output":
		if !strings.HasPrefix(e.Output, "=== ") {
			tests[root] = append(tests[root], e.Output)
		}
	case "pass", "fail", "skip":
		r := result{pkg: e.Package, test: e.Test, elapsed: time.Duration(e.Elapsed * float64(time.Second))}
		if e.Action == "skip" {
			s.skipped = append(s.skipped, r)
		} else {
			s.done = append(s.done, r)
		}
		if e.Test != root {
			return // its lines go with its top-level test's
		}
		if e.Action == "fail" {
			io.WriteString(w, strings.Join(tests[root], ""))
		}
		delete(tests, root)
	}
}

// addPackage takes an event of a package outside its tests: its output
// is printed when it ends; all of it, and what its running tests printed,
// when it failed.
func (s *summary) addPackage(e event, w io.Writer) {
	switch e.Action {
	case "output":
		s.pkgOut[e.Package] = append(s.pkgOut[e.Package], e.Output)
	case "pass", "skip":
		for _, l := range s.pkgOut[e.Package] {
			if strings.HasPrefix(l, "ok ") || strings.HasPrefix(l, "?   ") {
				io.WriteString(w, l)
			}
		}
		s.forget(e.Package)
	case "fail":
		// A test still running when its package failed: a timeout or
		// a panic, told in its own output.
		tests := s.running[e.Package]
		for _, name := range slices.Sorted(mapKeys(tests)) {
			io.WriteString(w, strings.Join(tests[name], ""))
		}
		for _, l := range s.pkgOut[e.Package] {
			if l != "PASS\n" {
				io.WriteString(w, l)
			}
		}
		s.forget(e.Package)
	}
}

func (s *summary) forget(pkg string) {
	delete(s.running, pkg)
	delete(s.pkgOut, pkg)
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// tail names the skipped tests and the n slowest top-level ones.
func (s *summary) tail(w io.Writer, n int) {
	if len(s.skipped) > 0 {
		fmt.Fprintf(w, "--- %d tests skipped:\n", len(s.skipped))
		for _, r := range s.skipped {
			fmt.Fprintf(w, "  %s %s\n", r.pkg, r.test)
		}
	}
	top := slices.DeleteFunc(slices.Clone(s.done), func(r result) bool { return strings.Contains(r.test, "/") })
	byTime(top)
	if n > len(top) {
		n = len(top)
	}
	if n > 0 {
		fmt.Fprintf(w, "--- the %d slowest tests:\n", n)
		for _, r := range top[:n] {
			fmt.Fprintf(w, "  %7.1fs  %s %s\n", r.elapsed.Seconds(), r.pkg, r.test)
		}
	}
}

// writeDurations writes every finished test's duration, slowest first.
func (s *summary) writeDurations(path string) error {
	all := slices.Clone(s.done)
	byTime(all)
	var b strings.Builder
	for _, r := range all {
		fmt.Fprintf(&b, "%s\t%s\t%.2f\n", r.pkg, r.test, r.elapsed.Seconds())
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("writing the tests' durations: %w", err)
	}
	return nil
}

func byTime(rs []result) {
	slices.SortStableFunc(rs, func(a, b result) int {
		if c := cmp.Compare(b.elapsed, a.elapsed); c != 0 {
			return c
		}
		return strings.Compare(a.pkg+" "+a.test, b.pkg+" "+b.test)
	})
}
