package deploy

import (
	"testing"
	"time"
)

func TestParseTimespan(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"10", 10 * time.Second, true},
		{" 0.1 ", 100 * time.Millisecond, true},
		{"500ms", 500 * time.Millisecond, true},
		{"1min 30s", 90 * time.Second, true},
		{"2h", 2 * time.Hour, true},
		{"1min30s", 90 * time.Second, true},
		{"", 0, false},
		{"soon", 0, false},
		{"10 parsecs", 0, false},
		{"-5", 0, false},
		{"1e9h", 0, false},
		{"999999h 999999h", 0, false},
	} {
		got, ok := ParseTimespan(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseTimespan(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzParseTimespan: no panic, and an accepted span is never negative nor
// over the bound.
func FuzzParseTimespan(f *testing.F) {
	for _, s := range []string{"10", "500ms", "1min 30s", "2h", "0.5 s", "soon"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseTimespan(s)
		if ok && (d < 0 || d > maxTimespan) {
			t.Fatalf("ParseTimespan(%q) = %v", s, d)
		}
		if !ok && d != 0 {
			t.Fatalf("ParseTimespan(%q) refused with %v", s, d)
		}
	})
}
