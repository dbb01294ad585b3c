package realfleet_test

import (
	"slices"
	"sync"
	"testing"
)

// TestAdmissionLongestFirst: the admitter starts tests longest first,
// whatever order go test registers them in; a test it has no figure for
// goes first; equal figures keep go test's order. With one slot the order
// the tests run in is the order they were admitted in.
func TestAdmissionLongestFirst(t *testing.T) {
	for _, tt := range []struct {
		name    string
		seconds map[string]int // by subtest name
		run     []string       // go test's order
		want    []string
	}{
		{"longest first", map[string]int{"short": 10, "long": 300, "mid": 100}, []string{"short", "long", "mid"}, []string{"long", "mid", "short"}},
		{"unknown first", map[string]int{"short": 10, "long": 300}, []string{"short", "long", "new"}, []string{"new", "long", "short"}},
		{"ties in go test's order", map[string]int{"a": 50, "b": 50, "c": 60}, []string{"a", "b", "c"}, []string{"c", "a", "b"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := &admitter{slots: 1, seconds: map[string]int{}}
			for n, s := range tt.seconds {
				a.seconds[t.Name()+"/group/"+n] = s
			}
			var mu sync.Mutex
			var order []string
			t.Run("group", func(t *testing.T) {
				for _, n := range tt.run {
					t.Run(n, func(t *testing.T) {
						a.take(t)
						mu.Lock()
						order = append(order, n)
						mu.Unlock()
					})
				}
			})
			if !slices.Equal(order, tt.want) {
				t.Errorf("admitted %v, want %v", order, tt.want)
			}
		})
	}
}
