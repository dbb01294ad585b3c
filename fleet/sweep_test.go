package fleet

import (
	"testing"
	"time"
)

// Only the unit files Kaylee rendered under its own prefix are its own:
// not another prefix's, not the original monder/kaylee's.
func TestOwnUnitFile(t *testing.T) {
	tests := []struct {
		text string
		want bool
	}{
		{`Environment="KAYLEE_ID=k2_countly_e8530328_f0bc2c_0"`, true},
		{`Environment="KAYLEE_ID=k2_node-exporter_6b9e0134_659dde_0_%m"`, true}, // a global unit's
		{`Environment="KAYLEE_ID=k3_countly_e8530328_f0bc2c_0"`, false},         // another prefix
		{`Environment="KAYLEE_ID=k22_countly_e8530328_f0bc2c_0"`, false},
		{`Environment=KAYLEE_ID=k2_1a2b3c4d_0`, false},      // the original's: <name>_<hash>_<i>
		{`Environment=KAYLEE_ID=countly_1a2b3c4d_0`, false}, // the original's
		{`ExecStart=/bin/true`, false},
	}
	for _, tc := range tests {
		if got := ownUnitFile("k2").MatchString(tc.text); got != tc.want {
			t.Errorf("%s: own %v, want %v", tc.text, got, tc.want)
		}
	}
}

// A sweep is due SweepDelay after the term starts and after a destroy,
// and once more when a destroy came within SweepDelay before a sweep's
// read (its unit's last heartbeat may recreate its directory after).
func TestSweeperDue(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	s := newSweeper(2*time.Minute, t0)
	if s.ready(t0.Add(time.Minute)) || !s.ready(t0.Add(2*time.Minute)) {
		t.Fatalf("first sweep: due %v, want 2m after the term starts", s.next().Sub(t0))
	}
	s.swept(t0.Add(2 * time.Minute))
	if !s.next().IsZero() {
		t.Fatalf("after it, with no destroy: due %v, want none", s.next())
	}
	s.destroyed(t0.Add(3 * time.Minute))
	s.destroyed(t0.Add(4 * time.Minute)) // the first destroy's sweep stands
	if got := s.next().Sub(t0); got != 5*time.Minute {
		t.Fatalf("after destroys at 3m and 4m: due at %v, want 5m", got)
	}
	s.swept(t0.Add(5 * time.Minute))
	if got := s.next().Sub(t0); got != 6*time.Minute {
		t.Fatalf("after a sweep at 5m, the destroy at 4m: due at %v, want 6m", got)
	}
	s.swept(t0.Add(6 * time.Minute))
	if !s.next().IsZero() {
		t.Fatalf("after the sweep at 6m: due %v, want none", s.next())
	}
	s.destroyed(t0.Add(7 * time.Minute))
	s.retry(t0.Add(9 * time.Minute)) // the sweep at 9m failed
	if got := s.next().Sub(t0); got != 11*time.Minute {
		t.Fatalf("after a failed sweep at 9m: due at %v, want 11m", got)
	}
	s.stop() // a client that cannot sweep
	s.destroyed(t0.Add(12 * time.Minute))
	if !s.next().IsZero() {
		t.Fatalf("stopped: due %v, want none", s.next())
	}
}
