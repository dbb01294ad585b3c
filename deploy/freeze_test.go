package deploy

import (
	"strings"
	"testing"
	"time"
)

func TestActiveFreeze(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	weekend := FreezeWindow{Schedule: "0 18 * * FRI", Duration: "62h", TimeZone: "Europe/Berlin", Reason: "weekend"}
	nightly := FreezeWindow{Schedule: "0 2 * * *", Duration: "1h", TimeZone: "Europe/Berlin", Reason: "backups"}
	for _, tc := range []struct {
		name    string
		windows []FreezeWindow
		now     string
		want    string // reason, "" when nothing holds
		until   string
	}{
		{"before the weekend (Friday 17:59 in Berlin, CET)", []FreezeWindow{weekend}, "2026-12-04T16:59:00Z", "", ""},
		{"the weekend starts (Friday 18:00 CET = 17:00Z)", []FreezeWindow{weekend}, "2026-12-04T17:00:00Z", "weekend", "2026-12-07T07:00:00Z"},
		{"Sunday night", []FreezeWindow{weekend}, "2026-12-06T22:00:00Z", "weekend", "2026-12-07T07:00:00Z"},
		{"the end is free (Monday 08:00 CET)", []FreezeWindow{weekend}, "2026-12-07T07:00:00Z", "", ""},
		{"summer time: Friday 18:00 CEST = 16:00Z", []FreezeWindow{weekend}, "2026-07-03T16:00:00Z", "weekend", "2026-07-06T06:00:00Z"},
		{"summer time: 17:00Z Thursday is free", []FreezeWindow{weekend}, "2026-07-02T17:00:00Z", "", ""},
		// DST ends on Sunday 2026-10-25: a 62h window from Friday 18:00
		// CEST lasts 62 real hours, ending at 07:00 CET on Monday.
		{"across the end of summer time", []FreezeWindow{weekend}, "2026-10-25T12:00:00Z", "weekend", "2026-10-26T06:00:00Z"},
		{"another zone: New York Friday 18:00 EST = 23:00Z", []FreezeWindow{{Schedule: "0 18 * * 5", Duration: "2h", TimeZone: "America/New_York"}}, "2026-12-04T23:30:00Z", "", "2026-12-05T01:00:00Z"},
		{"UTC when no zone", []FreezeWindow{{Schedule: "0 18 * * 5", Duration: "2h", Reason: "utc"}}, "2026-12-04T18:30:00Z", "utc", "2026-12-04T20:00:00Z"},
		{"UTC when no zone: Berlin's 18:00 is free", []FreezeWindow{{Schedule: "0 18 * * 5", Duration: "2h", Reason: "utc"}}, "2026-12-04T17:30:00Z", "", ""},
		{"day of month and month: Christmas", []FreezeWindow{{Schedule: "0 0 24 12 *", Duration: "72h", Reason: "xmas"}}, "2026-12-26T10:00:00Z", "xmas", "2026-12-27T00:00:00Z"},
		{"day of month and month: not in November", []FreezeWindow{{Schedule: "0 0 24 12 *", Duration: "72h", Reason: "xmas"}}, "2026-11-25T10:00:00Z", "", ""},
		{"overlapping windows join: until is the later end", []FreezeWindow{weekend, {Schedule: "0 6 * * MON", Duration: "4h", TimeZone: "Europe/Berlin", Reason: "monday"}},
			"2026-12-06T22:00:00Z", "weekend", "2026-12-07T09:00:00Z"},
		{"windows that touch join", []FreezeWindow{{Schedule: "0 10 * * *", Duration: "1h", Reason: "a"}, {Schedule: "0 11 * * *", Duration: "1h", Reason: "b"}},
			"2026-12-04T10:30:00Z", "a", "2026-12-04T12:00:00Z"},
		{"a window longer than its period chains: until is capped at 31 days", []FreezeWindow{{Schedule: "0 * * * *", Duration: "90m", Reason: "hourly"}},
			"2026-12-04T10:30:00Z", "hourly", "2027-01-04T10:30:00Z"},
		{"the first window listed is the one told", []FreezeWindow{nightly, {Schedule: "30 1 * * *", Duration: "2h", TimeZone: "Europe/Berlin", Reason: "second"}},
			"2026-12-04T01:15:00Z", "backups", "2026-12-04T02:30:00Z"},
		{"a window that does not check holds nothing", []FreezeWindow{{Schedule: "bad", Duration: "1h"}}, "2026-12-04T01:15:00Z", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, until, ok := ActiveFreeze(tc.windows, at(tc.now))
			if tc.until != "" && tc.want == "" && ok {
				// A window without a reason: check until only.
				if got := until.Format(time.RFC3339); got != tc.until {
					t.Fatalf("until %s, want %s", got, tc.until)
				}
				return
			}
			if ok != (tc.want != "") || w.Reason != tc.want {
				t.Fatalf("ActiveFreeze = %q, %v, %v; want %q", w.Reason, until, ok, tc.want)
			}
			if ok && until.Format(time.RFC3339) != tc.until {
				t.Fatalf("until %s, want %s", until.Format(time.RFC3339), tc.until)
			}
		})
	}
}

// TestActiveFreezeSpringForward: a window that starts at a time the start
// of summer time skips (02:30 on 2026-03-29 in Berlin).
func TestActiveFreezeSpringForward(t *testing.T) {
	w := []FreezeWindow{{Schedule: "30 2 * * *", Duration: "1h", TimeZone: "Europe/Berlin", Reason: "r"}}
	// The day before: 02:30 CET = 01:30Z.
	if _, until, ok := ActiveFreeze(w, time.Date(2026, 3, 28, 1, 45, 0, 0, time.UTC)); !ok || !until.Equal(time.Date(2026, 3, 28, 2, 30, 0, 0, time.UTC)) {
		t.Fatalf("28 March: %v %v", until, ok)
	}
	// The day after: 02:30 CEST = 00:30Z.
	if _, until, ok := ActiveFreeze(w, time.Date(2026, 3, 30, 0, 45, 0, 0, time.UTC)); !ok || !until.Equal(time.Date(2026, 3, 30, 1, 30, 0, 0, time.UTC)) {
		t.Fatalf("30 March: %v %v", until, ok)
	}
	// On the day, whatever cron makes of the skipped time, nothing holds
	// at noon and a freeze never lasts past its hour.
	if _, _, ok := ActiveFreeze(w, time.Date(2026, 3, 29, 12, 0, 0, 0, time.UTC)); ok {
		t.Fatal("29 March noon: frozen")
	}
}

func TestFreezeValidation(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want string
	}{
		{"freeze:\n  - {schedule: \"0 18 * * FRI\", duration: 62h, timeZone: Europe/Berlin, reason: weekend}\n", ""},
		{"freeze:\n  - schedule: \"0 25 * * *\"\n    duration: 1h\n", `u.yaml:4: freeze[0].schedule: "0 25 * * *" is not a cron expression`},
		{"freeze:\n  - schedule: \"0 18 * * FRI\"\n    duration: 1h\n    timeZone: Mars/Olympus\n", `u.yaml:6: freeze[0].timeZone: "Mars/Olympus" is not a known time zone`},
		{"freeze:\n  - schedule: \"0 18 * * FRI\"\n    duration: 0s\n", "u.yaml:5: freeze[0].duration: 0s: must be more than 0"},
		{"freeze:\n  - schedule: \"0 18 * * FRI\"\n    duration: 800h\n", "u.yaml:5: freeze[0].duration: 800h is more than 744h0m0s (31 days)"},
		{"freeze:\n  - schedule: \"0 18 * * FRI\"\n", "u.yaml:4: freeze[0].duration: required"},
		{"freeze:\n  - schedule: \"@every 1h\"\n    duration: 1h\n", "u.yaml:4: freeze[0].schedule: \"@every 1h\": @every is not a time of the calendar"},
		{"freeze:\n  - schedule: \"0 18 * * FRI\"\n    duration: 1h\n    zone: UTC\n", `u.yaml:6: unknown field "zone"`},
	} {
		_, err := Load("u.yaml", []byte("name: web\napps: [{image: x}]\n"+tc.yaml))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.yaml, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want %s", tc.yaml, err, tc.want)
		}
	}
}

// TestFreezeNotInHash: a unit's freeze windows roll nothing out.
func TestFreezeNotInHash(t *testing.T) {
	a := Spec{Name: "web", Apps: []App{{Image: "x"}}}
	b := a
	b.Freeze = []FreezeWindow{{Schedule: "0 18 * * FRI", Duration: "62h"}}
	if a.Hash(0) != b.Hash(0) {
		t.Fatal("freeze changed the spec hash")
	}
	if !strings.Contains(string(b.CanonicalJSON()), `"freeze":[{"schedule":"0 18 * * FRI","duration":"62h"}]`) {
		t.Fatalf("canonical JSON: %s", b.CanonicalJSON())
	}
}

// FuzzActiveFreeze: any window checks or not without panic; one that
// holds ends after now, within MaxFreezeDuration.
func FuzzActiveFreeze(f *testing.F) {
	f.Add("0 18 * * FRI", "62h", "Europe/Berlin", int64(1764954000))
	f.Add("0 0 31 2 *", "1h", "", int64(0))
	f.Add("*/5 * * * *", "744h", "America/New_York", int64(1774745400))
	f.Add("@weekly", "1m", "UTC", int64(-1))
	f.Fuzz(func(t *testing.T, schedule, duration, tz string, unix int64) {
		if len(schedule) > 100 || len(tz) > 50 {
			return
		}
		w := FreezeWindow{Schedule: schedule, Duration: duration, TimeZone: tz}
		_ = w.Check()
		now := time.Unix(unix%(1<<34), 0)
		if _, until, ok := ActiveFreeze([]FreezeWindow{w}, now); ok && (!until.After(now) || until.Sub(now) > MaxFreezeDuration) {
			t.Fatalf("%+v at %v: until %v", w, now, until)
		}
	})
}
