package deploy

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// aliasBomb is the unit file of issue 20: one app whose args are n words,
// anchored, and the app repeated m times by alias. It is about 2n+4m bytes
// and expands to about n·m values.
func aliasBomb(n, m int) string {
	var b strings.Builder
	b.WriteString("name: bomb\napps:\n- &a {image: x, args: &b [")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('a')
	}
	b.WriteString("]}\n")
	for range m {
		b.WriteString("- *a\n")
	}
	return b.String()
}

// nestedBomb is the billion laughs: each level a list of k aliases to the
// level below, in a field Kaylee does not know, so that only the walker's
// own recursion would expand it.
func nestedBomb(levels, k int) string {
	var b strings.Builder
	b.WriteString("name: bomb\napps: [{image: x}]\nenv:\n- name: L0\n  value: &l0 lol\n")
	for l := 1; l <= levels; l++ {
		fmt.Fprintf(&b, "- name: L%d\n  value: &l%d [", l, l)
		for i := range k {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "*l%d", l-1)
		}
		b.WriteString("]\n")
	}
	return b.String()
}

// allocated is what f allocates, in bytes (deterministic enough to bound,
// unlike time).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A unit file's decoding is bounded: aliases that expand past MaxValues
// values, or nest deeper than the decoder allows, are one error naming the
// file and line, reached with bounded memory.
func TestAliasBombIsRefused(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
	}{
		{"apps×args, 21 KB", aliasBomb(5000, 2500), "bomb.yaml:5: apps[2]: aliases expand to more than 10000 values"},
		{"apps×args, 42 KB", aliasBomb(10000, 5000), "bomb.yaml:4: apps[1]: aliases expand to more than 10000 values"},
		{"apps×args, 1 MB", aliasBomb(250000, 100000), "bomb.yaml:4: apps[1]: aliases expand to more than 10000 values"},
		{"billion laughs in env", nestedBomb(9, 10), "bomb.yaml:13: env[4].value[7]: aliases expand to more than 10000 values"},
		{"an alias to itself", "name: bomb\napps: &a [*a]\n", "bomb.yaml:2: apps[0]: an alias refers to the value that holds it"},
		{"nested 40 deep", "name: bomb\napps:\n- image: x\n  args: " + strings.Repeat("[", 40) + strings.Repeat("]", 40) + "\n", "bomb.yaml:4: apps[0].args" + strings.Repeat("[0]", 30) + ": nested more than 32 levels deep"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			mem := allocated(func() { _, err = Load("bomb.yaml", []byte(tt.in)) })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load(%d bytes): error %v, want it to contain %q", len(tt.in), err, tt.want)
			}
			// Decoding without aliases costs some hundred bytes a value; a
			// file of this size must stay within a few MB.
			if limit := uint64(64<<20) + 64*uint64(len(tt.in)); mem > limit {
				t.Fatalf("Load(%d bytes) allocated %d MB, want at most %d MB", len(tt.in), mem>>20, limit>>20)
			}
		})
	}
}

// Anchors as people use them stay fine: an env list and an app repeated.
func TestAnchorsWithinBounds(t *testing.T) {
	in := "name: web\nenv: &env\n- {name: A, value: a}\n- {name: B, value: b}\napps:\n- &app {image: x, args: [serve, --port, '80']}\n- *app\n- *app\n"
	docs, err := Load("web.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(docs[0].Spec.Apps); got != 3 || docs[0].Spec.Apps[2].Args[1] != "--port" {
		t.Fatalf("apps %+v, want the anchored app three times", docs[0].Spec.Apps)
	}
}

// The cost of refusing a bomb against reading a plain file of the same
// size (the baseline): go test -run - -bench LoadHostile -benchmem ./deploy
func BenchmarkLoadHostile(b *testing.B) {
	plain := func(size int) string {
		var s strings.Builder
		s.WriteString("name: plain\napps:\n- image: x\n  args: [")
		for s.Len() < size {
			s.WriteString("a,")
		}
		s.WriteString("a]\n")
		return s.String()
	}
	for _, bb := range []struct {
		name string
		in   string
	}{
		{"plain-21KB", plain(22545)},
		{"bomb-21KB", aliasBomb(5000, 2500)},
		{"plain-42KB", plain(45045)},
		{"bomb-42KB", aliasBomb(10000, 5000)},
		{"laughs-1KB", nestedBomb(9, 10)},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bb.in)))
			for b.Loop() {
				Load("u.yaml", []byte(bb.in))
			}
		})
	}
}
