package fleetreg

import (
	"fmt"
	"testing"
	"time"

	etcd "github.com/coreos/etcd/client"
)

// A watch that starts again lists its directory: what changed since the
// last listing or event is counted, and nothing else, so that a watch
// that keeps falling behind on a loaded etcd does not make a pass each
// time.
func TestResetCountsWhatChanged(t *testing.T) {
	const hold = time.Minute
	t0 := time.Now()
	listing := func(kv ...string) *etcd.Node {
		dir := &etcd.Node{Key: "/f/states", Dir: true}
		units := map[string]*etcd.Node{}
		for i := 0; i < len(kv); i += 2 {
			unit := kv[i][:1]
			u := units[unit]
			if u == nil {
				u = &etcd.Node{Key: "/f/states/" + unit, Dir: true}
				units[unit] = u
				dir.Nodes = append(dir.Nodes, u)
			}
			u.Nodes = append(u.Nodes, &etcd.Node{Key: "/f/states/" + kv[i], Value: kv[i+1]})
		}
		return dir
	}
	type step struct {
		at   time.Duration
		dir  *etcd.Node
		want string // changes and expiries added: "c1 x0"
	}
	for _, tt := range []struct {
		name          string
		expiryChanges bool
		steps         []step
	}{
		{name: "the same listing again", steps: []step{
			{0, listing("a/m1", "v", "b/m1", "v"), "c1 x0"},
			{time.Second, listing("a/m1", "v", "b/m1", "v"), "c0 x0"},
		}},
		{name: "a value changed", steps: []step{
			{0, listing("a/m1", "v"), "c1 x0"},
			{time.Second, listing("a/m1", "w"), "c1 x0"},
		}},
		{name: "a new state", steps: []step{
			{0, listing("a/m1", "v"), "c1 x0"},
			{time.Second, listing("a/m1", "v", "a/m2", "v"), "c1 x0"},
		}},
		{name: "a state gone, back within the hold", steps: []step{
			{0, listing("a/m1", "v", "b/m1", "v"), "c1 x0"},
			{time.Second, listing("a/m1", "v"), "c0 x1"},
			{2 * time.Second, listing("a/m1", "v"), "c0 x0"},
			{30 * time.Second, listing("a/m1", "v", "b/m1", "v"), "c0 x0"},
		}},
		{name: "a state gone, back after the hold", steps: []step{
			{0, listing("a/m1", "v", "b/m1", "v"), "c1 x0"},
			{time.Second, listing("a/m1", "v"), "c0 x1"},
			{time.Second + hold + time.Second, listing("a/m1", "v", "b/m1", "v"), "c1 x0"},
		}},
		{name: "a state gone, back with another value", steps: []step{
			{0, listing("a/m1", "v", "b/m1", "v"), "c1 x0"},
			{time.Second, listing("a/m1", "v"), "c0 x1"},
			{2 * time.Second, listing("a/m1", "v", "b/m1", "w"), "c1 x0"},
		}},
		{name: "a machine gone", expiryChanges: true, steps: []step{
			{0, listing("m1/object", "v", "m2/object", "v"), "c1 x0"},
			{time.Second, listing("m1/object", "v"), "c1 x0"},
			{2 * time.Second, listing("m1/object", "v", "m2/object", "v"), "c1 x0"},
		}},
		{name: "no directory", steps: []step{
			{0, nil, "c1 x0"},
			{time.Second, nil, "c0 x0"},
			{2 * time.Second, listing("a/m1", "v"), "c1 x0"},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &stateValues{expiryChanges: tt.expiryChanges}
			for i, st := range tt.steps {
				c0, x0 := s.counts()
				s.reset(st.dir, hold, t0.Add(st.at))
				c1, x1 := s.counts()
				if got := fmt.Sprintf("c%d x%d", c1-c0, x1-x0); got != st.want {
					t.Errorf("listing %d: %s, want %s", i, got, st.want)
				}
			}
		})
	}
}
