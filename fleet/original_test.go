package fleet

import (
	"reflect"
	"testing"
)

func TestOriginalUnits(t *testing.T) {
	names := []string{
		"k2:countly:a1b2c3:0f0f0f:2.service",
		"k2:countly:a1b2c3:1e1e1e:1.service",
		"k2:countly:0badc0de:abcdef:0.service", // Kaylee's own
		"k2:old:ffffff:000000:1.service",
		"other:countly:a1b2c3:0f0f0f:1.service", // another prefix
		"k2:countly:a1b2c3:0f0f0f:1.timer",      // not a service
		"etcd.service",
	}
	adopt, left := OriginalUnits("k2", names, map[string]bool{"countly": true, "web": true})
	wantAdopt := map[string][]string{"countly": {"k2:countly:a1b2c3:0f0f0f:2.service", "k2:countly:a1b2c3:1e1e1e:1.service"}}
	wantLeft := map[string][]string{"old": {"k2:old:ffffff:000000:1.service"}}
	if !reflect.DeepEqual(adopt, wantAdopt) {
		t.Errorf("adopt = %v, want %v", adopt, wantAdopt)
	}
	if !reflect.DeepEqual(left, wantLeft) {
		t.Errorf("leftAlone = %v, want %v", left, wantLeft)
	}
}
