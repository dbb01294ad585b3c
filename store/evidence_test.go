package store

import (
	"strings"
	"testing"
)

func TestEvidenceSummary(t *testing.T) {
	tests := []struct {
		name string
		e    Evidence
		want string
	}{
		{"exit and last line", Evidence{ExitCode: "exited", ExitStatus: "3", Journal: []string{"a", "testimage v2: exiting 3 at once"}},
			`exit status 3; last line: "testimage v2: exiting 3 at once"`},
		{"docker's boilerplate skipped", Evidence{FleetUnit: "k2:w:1:2:0.service", ExitCode: "exited", ExitStatus: "125",
			Journal: []string{"Unable to find image 'x:1' locally", "docker: Error response from daemon: pull access denied.", "See 'docker run --help'.",
				"Error: No such container: k2_w_1_2_0", "k2:w:1:2:0.service: Main process exited, code=exited, status=125/n/a"}},
			`exit status 125; last line: "docker: Error response from daemon: pull access denied."`},
		{"signal", Evidence{Result: "signal", ExitCode: "killed", ExitStatus: "KILL"}, "killed by signal KILL"},
		{"health check", Evidence{Result: "exit-code", ExitCode: "exited", ExitStatus: "1", Probe: "HTTP 500 from 10.0.0.2:8080"},
			`exit status 1; last health check: "HTTP 500 from 10.0.0.2:8080"`},
		{"result only", Evidence{Result: "timeout"}, "result timeout"},
		{"nothing", Evidence{}, ""},
	}
	for _, tt := range tests {
		if got := tt.e.Summary(); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestEvidenceBoundAndScrub(t *testing.T) {
	e := Evidence{Probe: strings.Repeat("p", 500) + "\x1b[31m", Journal: []string{"tok=abcd1234 and abcd", "ab", strings.Repeat("é", 400), "ctl\x00\x07x"}}
	for range 30 {
		e.Journal = append(e.Journal, strings.Repeat("z", 299))
	}
	e.Scrub([]string{"abcd1234", "ab", "abcd"})
	e.Bound()
	if len(e.Probe) > EvidenceLineMax {
		t.Errorf("probe of %d bytes", len(e.Probe))
	}
	total := 0
	for _, l := range e.Journal {
		total += len(l)
	}
	if len(e.Journal) > EvidenceLinesMax || total > EvidenceJournalMax {
		t.Errorf("%d lines, %d bytes", len(e.Journal), total)
	}
	s := Evidence{Journal: []string{"tok=abcd1234 and abcd", "ab", "ctl\x00\x07x", strings.Repeat("é", 400)}}
	s.Scrub([]string{"abcd1234", "ab", "abcd"})
	s.Bound()
	if s.Journal[0] != "tok=*** and ***" || s.Journal[1] != "ab" || s.Journal[2] != "ctlx" || len(s.Journal[3]) != 300 || !strings.HasSuffix(s.Journal[3], "é") {
		t.Errorf("scrubbed and bounded: %q", s.Journal)
	}
}
