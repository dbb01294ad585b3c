package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kaylee-gitops/kaylee/internal/redact"
)

// Failure evidence: what a replica's machine saw when it stopped, gathered
// there by the fleet unit itself (deploy renders an ExecStopPost step that
// writes a file) and published by `kaylee evidence` on that machine, at
// <prefix>/evidence/<unit>/<fleet unit>/<machine ID>, leased: it goes when
// its publisher does. A global unit's one fleet unit runs on every
// machine, hence the machine in the key.

// Bounds of a piece of evidence, applied by its publisher and again by
// whoever reads it.
const (
	EvidenceLineMax    = 300  // bytes of one journal line (or the probe's answer)
	EvidenceLinesMax   = 20   // journal lines kept, the last ones
	EvidenceJournalMax = 4096 // bytes of all journal lines together
)

// Evidence is what one stop of a fleet unit left on its machine.
type Evidence struct {
	Unit      string `json:"unit"`
	FleetUnit string `json:"fleetUnit"`
	Machine   string `json:"machine"` // fleet's machine ID
	// Result, ExitCode and ExitStatus are systemd's $SERVICE_RESULT
	// (success, exit-code, signal, timeout, ...), $EXIT_CODE (exited,
	// killed, dumped) and $EXIT_STATUS (a number, or a signal's name).
	Result     string `json:"result,omitempty"`
	ExitCode   string `json:"exitCode,omitempty"`
	ExitStatus string `json:"exitStatus,omitempty"`
	Restarts   int    `json:"restarts"` // systemd's NRestarts of the unit
	// Journal is the unit's last journal lines, oldest first, bounded.
	Journal []string `json:"journal,omitempty"`
	// Probe is the last answer of its health check, if it has one.
	Probe string    `json:"probe,omitempty"`
	Time  time.Time `json:"time"`
}

// Bound cuts the evidence to its bounds: each line to EvidenceLineMax
// bytes (at a rune boundary), the last EvidenceLinesMax lines, and as many
// of the last ones as fit in EvidenceJournalMax bytes.
func (e *Evidence) Bound() {
	for i, l := range e.Journal {
		e.Journal[i] = cutLine(l)
	}
	if len(e.Journal) > EvidenceLinesMax {
		e.Journal = e.Journal[len(e.Journal)-EvidenceLinesMax:]
	}
	total, from := 0, len(e.Journal)
	for from > 0 && total+len(e.Journal[from-1]) <= EvidenceJournalMax {
		from--
		total += len(e.Journal[from])
	}
	e.Journal = e.Journal[from:]
	e.Probe = cutLine(e.Probe)
	for _, s := range []*string{&e.Result, &e.ExitCode, &e.ExitStatus} {
		*s = cutWord(*s)
	}
}

func cutLine(s string) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if r < ' ' && r != '\t' || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) <= EvidenceLineMax {
		return s
	}
	cut := EvidenceLineMax
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// cutWord bounds a word of systemd's (result, exit code or status).
func cutWord(s string) string {
	s = cutLine(s)
	if len(s) > 32 {
		s = s[:32]
	}
	return s
}

// ScrubMin is the shortest value Scrub hides: shorter ones ("1", "yes")
// would hide ordinary words.
const ScrubMin = 4

// Scrub replaces every value of at least ScrubMin bytes that occurs in
// the journal lines or the probe's answer with ***: a unit's env values
// (secrets among them) never leave the machine in its evidence, even when
// the process printed them.
func (e *Evidence) Scrub(values []string) {
	var pairs []string
	for _, v := range values {
		if len(v) >= ScrubMin {
			pairs = append(pairs, v, "***")
		}
	}
	if len(pairs) == 0 {
		return
	}
	// Longest first: a value that holds another is hidden whole.
	r := strings.NewReplacer(longestFirst(pairs)...)
	for i, l := range e.Journal {
		e.Journal[i] = r.Replace(l)
	}
	e.Probe = r.Replace(e.Probe)
}

func longestFirst(pairs []string) []string {
	type pair struct{ old, new string }
	ps := make([]pair, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		ps = append(ps, pair{pairs[i], pairs[i+1]})
	}
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && len(ps[j].old) > len(ps[j-1].old); j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
	out := make([]string, 0, len(pairs))
	for _, p := range ps {
		out = append(out, p.old, p.new)
	}
	return out
}

// Exit says how the main process ended, for people: "exit status 125",
// "killed by signal KILL", or systemd's result ("" when unknown).
func (e *Evidence) Exit() string {
	switch {
	case e.ExitCode == "exited" && e.ExitStatus != "":
		return "exit status " + e.ExitStatus
	case (e.ExitCode == "killed" || e.ExitCode == "dumped") && e.ExitStatus != "":
		return "killed by signal " + e.ExitStatus
	case e.Result != "":
		return "result " + e.Result
	}
	return ""
}

// LastLine is the last journal line the unit's processes wrote that
// tells something: not systemd's own about the unit (which start with
// its name), nor the engine's boilerplate (noiseLine), or "".
func (e *Evidence) LastLine() string {
	for i := len(e.Journal) - 1; i >= 0; i-- {
		l := strings.TrimSpace(e.Journal[i])
		if l == "" || strings.HasPrefix(l, e.FleetUnit+":") || noiseLine(l) {
			continue
		}
		return l
	}
	return ""
}

// noiseLine: what docker says around every failure (the pointer to its
// help after an error) or at every start (the ExecStartPre that removes
// a container left behind finds none).
func noiseLine(l string) bool {
	return strings.HasPrefix(l, "See '") && strings.HasSuffix(l, " --help'.") ||
		strings.HasPrefix(l, "Error: No such container: ") ||
		strings.HasPrefix(l, "Error response from daemon: No such container: ")
}

// Summary is the evidence in one line, for a status message:
// `exit status 125; last line: "Unable to find image 'nope:1' locally"`.
func (e *Evidence) Summary() string {
	var parts []string
	if x := e.Exit(); x != "" {
		parts = append(parts, x)
	}
	if e.Probe != "" {
		parts = append(parts, fmt.Sprintf("last health check: %q", e.Probe))
	}
	if l := e.LastLine(); l != "" {
		parts = append(parts, fmt.Sprintf("last line: %q", l))
	}
	return strings.Join(parts, "; ")
}

func (s *Store) evidenceDir() string { return s.prefix + "/evidence/" }

// EvidenceKey is the key of a piece of evidence.
func (s *Store) EvidenceKey(unit, fleetUnit, machine string) string {
	return s.evidenceDir() + unit + "/" + fleetUnit + "/" + machine
}

// PutEvidence writes a piece of evidence (bounded) under lease: it is not
// fenced, each machine's publisher writes only its own machine's.
func (s *Store) PutEvidence(ctx context.Context, e *Evidence, lease clientv3.LeaseID) error {
	e.Bound()
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	var opts []clientv3.OpOption
	if lease != clientv3.NoLease {
		opts = append(opts, clientv3.WithLease(lease))
	}
	if _, err := s.c.Put(ctx, s.EvidenceKey(e.Unit, e.FleetUnit, e.Machine), string(b), opts...); err != nil {
		return fmt.Errorf("writing evidence of %s on %s: %w", e.FleetUnit, e.Machine, err)
	}
	return nil
}

// DeleteEvidence removes one machine's evidence of a fleet unit.
func (s *Store) DeleteEvidence(ctx context.Context, unit, fleetUnit, machine string) error {
	if _, err := s.c.Delete(ctx, s.EvidenceKey(unit, fleetUnit, machine)); err != nil {
		return fmt.Errorf("deleting evidence of %s on %s: %w", fleetUnit, machine, err)
	}
	return nil
}

// GetEvidence returns the newest evidence of a fleet unit (of any
// machine, or of machine when it is not ""), or ErrNotFound.
func (s *Store) GetEvidence(ctx context.Context, unit, fleetUnit, machine string) (*Evidence, error) {
	resp, err := s.c.Get(ctx, s.evidenceDir()+unit+"/"+fleetUnit+"/"+machine, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("reading evidence of %s: %w", fleetUnit, err)
	}
	var newest *Evidence
	for _, kv := range resp.Kvs {
		e, err := decodeRecord[Evidence]("evidence", kv.Key, kv.Value)
		if err != nil {
			continue // a publisher's record this version cannot read: no evidence
		}
		if newest == nil || e.Time.After(newest.Time) {
			newest = e
		}
	}
	if newest == nil {
		return nil, ErrNotFound
	}
	newest.Bound()
	return newest, nil
}

// redactEvidence is a copy of e with repository credentials hidden in
// its lines, as in an event's message (nil for nil).
func redactEvidence(e *Evidence) *Evidence {
	if e == nil {
		return nil
	}
	c := *e
	c.Journal = make([]string, len(e.Journal))
	for i, l := range e.Journal {
		c.Journal[i] = redact.Text(l)
	}
	c.Probe = redact.Text(e.Probe)
	return &c
}
