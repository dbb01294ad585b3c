package store

import "testing"

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://kaylee:s3cret@git.example.com/ops/units.git": "https://***@git.example.com/ops/units.git",
		"https://ghp_AAAA@git.example.com/ops/units.git":      "https://***@git.example.com/ops/units.git",
		"git@github.com:org/units.git":                        "git@github.com:org/units.git",
		"ssh://git@github.com/org/units.git":                  "ssh://git@github.com/org/units.git",
		"file:///srv/units":                                   "file:///srv/units",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
