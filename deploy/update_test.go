package deploy

import (
	"strings"
	"testing"
	"time"
)

func TestUpdateAccepted(t *testing.T) {
	tests := map[string]struct {
		in       string
		json     string // the update part of the canonical JSON
		surge    int    // SurgeOf(10)
		minReady time.Duration
		deadline time.Duration
	}{
		"count": {unit("replicas: 10\nupdate:\n  maxSurge: 3\n"), `"update":{"maxSurge":3}`, 3, 0, 0},
		"percentage rounds up": {unit("replicas: 10\nupdate: {maxSurge: 25%}\n"),
			`"update":{"maxSurge":"25%"}`, 3, 0, 0},
		"quoted count is a count": {unit("replicas: 10\nupdate: {maxSurge: '2'}\n"), `"update":{"maxSurge":2}`, 2, 0, 0},
		"durations": {unit("replicas: 2\nupdate: {minReady: 0s, progressDeadline: 20m}\n"),
			`"update":{"minReady":"0s","progressDeadline":"20m"}`, 1, 0, 20 * time.Minute},
		"single unit durations": {unit("update: {minReady: 30s}\n"), `"update":{"minReady":"30s"}`, 1, 30 * time.Second, 0},
		"rolling global":        {unit("global: true\nupdate: {strategy: rolling, maxUnavailable: 50%}\n"), `"update":{"strategy":"rolling","maxUnavailable":"50%"}`, 1, 0, 0},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			docs, err := Load("u.yaml", []byte(tt.in))
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			s := &docs[0].Spec
			if j := string(s.CanonicalJSON()); !strings.Contains(j, tt.json) || !strings.HasSuffix(j, tt.json+"}") {
				t.Errorf("canonical JSON %s: want it to end with %s", j, tt.json)
			}
			// The canonical JSON reads back to the same spec.
			back, err := DecodeJSON("etcd", s.CanonicalJSON())
			if err != nil {
				t.Fatalf("canonical JSON does not read back: %v", err)
			}
			if string(back.Spec.CanonicalJSON()) != string(s.CanonicalJSON()) {
				t.Errorf("round trip: %s != %s", back.Spec.CanonicalJSON(), s.CanonicalJSON())
			}
			if got := s.Update.SurgeOf(10); got != tt.surge {
				t.Errorf("SurgeOf(10) = %d, want %d", got, tt.surge)
			}
			if got := s.Update.MinReadyDuration(0); got != tt.minReady {
				t.Errorf("MinReadyDuration = %s, want %s", got, tt.minReady)
			}
			if got := s.Update.ProgressDeadlineDuration(0); got != tt.deadline {
				t.Errorf("ProgressDeadlineDuration = %s, want %s", got, tt.deadline)
			}
		})
	}
}

func TestUpdateRefused(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"zero surge", unit("replicas: 2\nupdate:\n  maxSurge: 0\n"), "u.yaml:6: update.maxSurge: 0 is out of range: 1 to 1000"},
		{"zero percent", unit("replicas: 2\nupdate:\n  maxSurge: 0%\n"), "u.yaml:6: update.maxSurge: 0% is out of range: 1% to 100%"},
		{"too much", unit("replicas: 2\nupdate:\n  maxSurge: 101%\n"), "update.maxSurge: 101% is out of range"},
		{"not an amount", unit("replicas: 2\nupdate:\n  maxSurge: two\n"), `u.yaml:6: update.maxSurge: "two" is neither a count nor a percentage`},
		{"negative", unit("replicas: 2\nupdate:\n  maxSurge: -1\n"), `update.maxSurge: "-1" is neither a count nor a percentage`},
		{"surge on a single unit", unit("update:\n  maxSurge: 2\n"), "u.yaml:5: update.maxSurge: applies to a unit with replicas"},
		{"surge on global", unit("global: true\nupdate:\n  maxSurge: 2\n"), "update.maxSurge: applies to a unit with replicas"},
		{"unavailable on replicas", unit("replicas: 3\nupdate:\n  maxUnavailable: 1\n"), "u.yaml:6: update.maxUnavailable: applies to a global unit with strategy: rolling"},
		{"unavailable without rolling", unit("global: true\nupdate:\n  maxUnavailable: 1\n"), "update.maxUnavailable: applies to a global unit with strategy: rolling"},
		{"rolling without global", unit("replicas: 2\nupdate:\n  strategy: rolling\n"), "u.yaml:6: update.strategy: rolling applies to a global unit"},
		{"rolling with conflicts", unit("global: true\nconflicts: [x]\nupdate:\n  strategy: rolling\n"), "update.strategy: a rolling global unit runs as one fleet unit pinned to each machine"},
		{"unknown strategy", unit("global: true\nupdate:\n  strategy: rollin\n"), `update.strategy: "rollin" is not a strategy (did you mean "rolling"?)`},
		{"bad duration", unit("update:\n  minReady: 10\n"), `u.yaml:5: update.minReady: "10" is not a duration`},
		{"negative duration", unit("update:\n  minReady: -1s\n"), `update.minReady: "-1s" is out of range: 0 to 24h`},
		{"zero deadline", unit("update:\n  progressDeadline: 0s\n"), `update.progressDeadline: "0s" is out of range: more than 0 to 24h`},
		{"long deadline", unit("update:\n  progressDeadline: 25h\n"), `update.progressDeadline: "25h" is out of range`},
		{"unknown field", unit("update:\n  maxsurge: 1\n"), `u.yaml:5: unknown field "maxsurge" (did you mean "maxSurge"?)`},
		{"newline", unit("update:\n  minReady: \"1s\\nExecStartPre=/bin/sh\"\n"), "update.minReady: must not contain a newline"},
		{"not a mapping", unit("update: fast\n"), `u.yaml:4: update: expected a mapping of fields, got "fast"`},
		{"list surge", unit("replicas: 2\nupdate: {maxSurge: [1]}\n"), "update.maxSurge: expected a string, got a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("u.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("accepted:\n%s", tt.in)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

// The update policy is not part of the spec hash (a new maxSurge or
// minReady must not roll every replica), but a global unit's strategy is:
// it changes the fleet units.
func TestUpdateAndSpecHash(t *testing.T) {
	load := func(in string) *Spec {
		t.Helper()
		docs, err := Load("u.yaml", []byte(in))
		if err != nil {
			t.Fatal(err)
		}
		return &docs[0].Spec
	}
	plain := load(unit("replicas: 3\n"))
	policy := load(unit("replicas: 3\nupdate: {maxSurge: 2, minReady: 1s, progressDeadline: 1m}\n"))
	if plain.Hash(0) != policy.Hash(0) {
		t.Errorf("update policy changed the spec hash: %s != %s", plain.Hash(0), policy.Hash(0))
	}
	global := load(unit("global: true\n"))
	rolling := load(unit("global: true\nupdate: {strategy: rolling}\n"))
	faster := load(unit("global: true\nupdate: {strategy: rolling, maxUnavailable: 2}\n"))
	if global.Hash(0) == rolling.Hash(0) {
		t.Errorf("strategy rolling kept the spec hash %s", global.Hash(0))
	}
	if rolling.Hash(0) != faster.Hash(0) {
		t.Errorf("maxUnavailable changed the spec hash: %s != %s", rolling.Hash(0), faster.Hash(0))
	}
	if string(plain.CanonicalJSON()) == string(policy.CanonicalJSON()) {
		t.Error("the policy is missing from the canonical JSON")
	}
}

func TestAmountOf(t *testing.T) {
	tests := []struct {
		a       Amount
		total   int
		up      bool
		want    int
		wantBad bool
	}{
		{"2", 10, true, 2, false},
		{"25%", 10, true, 3, false},
		{"25%", 10, false, 2, false},
		{"10%", 3, false, 1, false}, // never below the floor
		{"100%", 12, true, 12, false},
		{"x", 10, true, 1, true},
	}
	for _, tt := range tests {
		got, ok := tt.a.Of(tt.total, tt.up, 1)
		if got != tt.want || ok == tt.wantBad {
			t.Errorf("%q.Of(%d, %v) = %d, %v; want %d, %v", tt.a, tt.total, tt.up, got, ok, tt.want, !tt.wantBad)
		}
	}
}
