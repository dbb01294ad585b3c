package deploy

import (
	"fmt"
	"testing"
)

func TestParseOriginalUnitName(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" for not the original's
	}{
		{"k2:countly:1a2b3c:0f0f0f:1.service", "k2 countly 1a2b3c 0f0f0f 1"},
		{"k2:countly:1a2b3c:0f0f0f:12.service", "k2 countly 1a2b3c 0f0f0f 12"},
		{"k2:Odd_Name.x:abcdef:012345:1.service", "k2 Odd_Name.x abcdef 012345 1"},
		{"k2:countly:1a2b3c4d:0f0f0f:0.service", ""}, // Kaylee's own: 8 digits
		{"k2:countly:1a2b3c:primary:0.service", ""},  // a probe
		{"k3:countly:1a2b3c:0f0f0f:1.service", ""},   // other prefix
		{"k2:countly:1A2B3C:0f0f0f:1.service", ""},   // upper case is not %x
		{"k2::1a2b3c:0f0f0f:1.service", ""},
		{"k2:countly:1a2b3c:0f0f0f:01.service", ""},
		{"k2:countly:1a2b3c:0f0f0f:1", ""},
		{"k2:countly:1a2b3c:0f0f0f:1.timer", ""},
		{"k2:a:b:1a2b3c:0f0f0f:1.service", ""},
	}
	for _, tt := range tests {
		u, ok := ParseOriginalUnitName("k2", tt.in)
		got := ""
		if ok {
			got = fmt.Sprintf("%s %s %s %s %d", u.Prefix, u.Name, u.SpecHash, u.Group, u.Index)
			if u.String() != tt.in {
				t.Errorf("%s: String() = %s", tt.in, u.String())
			}
		}
		if got != tt.want {
			t.Errorf("ParseOriginalUnitName(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if _, own := ParseUnitName("k2", tt.in); own && ok {
			t.Errorf("%s parses as both Kaylee's and the original's", tt.in)
		}
	}
}
