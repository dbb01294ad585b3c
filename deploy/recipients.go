package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"filippo.io/age"
)

// RecipientsFile is where a repository names the recipients its secrets
// are encrypted to, relative to its root.
const RecipientsFile = ".kaylee/recipients"

var recipientNameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$`)

// Recipient is one line of RecipientsFile: a name, an age public key and
// the machines that hold its identity.
//
//	# name  public key                                                      machines
//	db      age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p  role=db
//	ops     age1…                                                           *
type Recipient struct {
	Name string
	Key  string // age1…, an X25519 public key
	// Machines are fleet metadata pairs (key=value), every one of which a
	// machine holding the identity has; empty: every machine ("*").
	Machines []string
	Line     int
}

// Covers describes the machines: "every machine" or "role=db,region=eu".
func (r Recipient) Covers() string {
	if len(r.Machines) == 0 {
		return "every machine"
	}
	return strings.Join(r.Machines, ",")
}

// Recipients is a parsed RecipientsFile.
type Recipients struct {
	File string
	List []Recipient
}

// Get returns the recipient named name.
func (rs *Recipients) Get(name string) (Recipient, bool) {
	for _, r := range rs.List {
		if r.Name == name {
			return r, true
		}
	}
	return Recipient{}, false
}

// Names are the recipients' names, sorted.
func (rs *Recipients) Names() []string {
	out := make([]string, 0, len(rs.List))
	for _, r := range rs.List {
		out = append(out, r.Name)
	}
	sort.Strings(out)
	return out
}

// maxRecipientsFile bounds the file: a few hundred machines' keys.
const maxRecipientsFile = 1 << 20

// ParseRecipients parses a recipients file; errors name file and line.
// Lines are "name key machines", blank or # comments; machines is * or
// key=value pairs joined by commas.
func ParseRecipients(file string, data []byte) (*Recipients, error) {
	if len(data) > maxRecipientsFile {
		return nil, &FieldError{File: file, Msg: fmt.Sprintf("is %d bytes; at most %d", len(data), maxRecipientsFile)}
	}
	rs := &Recipients{File: file}
	var errs []error
	fail := func(line int, format string, a ...any) {
		errs = append(errs, &FieldError{File: file, Line: line, Msg: fmt.Sprintf(format, a...)})
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxRecipientsFile)
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			fail(n, "want three fields, name, age public key and machines (* or key=value,…), got %d", len(f))
			continue
		}
		r := Recipient{Name: f[0], Key: f[1], Line: n}
		if !recipientNameRe.MatchString(r.Name) {
			fail(n, "%q is not a recipient name (lowercase letters, digits and -, at most 64)", r.Name)
		}
		if _, err := age.ParseX25519Recipient(r.Key); err != nil {
			fail(n, "%s: %q is not an age public key (age1…, as age-keygen -y prints it): %v", r.Name, r.Key, err)
		}
		if f[2] != "*" {
			for _, kv := range strings.Split(f[2], ",") {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" || v == "" || !utf8Printable(kv) {
					fail(n, "%s: machines %q: want * or fleet metadata pairs key=value joined by commas", r.Name, f[2])
					break
				}
				r.Machines = append(r.Machines, kv)
			}
		}
		if old, ok := rs.Get(r.Name); ok {
			fail(n, "%s is also named on line %d", r.Name, old.Line)
			continue
		}
		rs.List = append(rs.List, r)
	}
	if err := sc.Err(); err != nil {
		fail(0, "%v", err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return rs, nil
}

func utf8Printable(s string) bool {
	for _, r := range s {
		if r < 0x21 || r == 0x7f || r == 0xfffd {
			return false
		}
	}
	return true
}

// SecretCheck is what CheckSecrets finds of one secret variable.
type SecretCheck struct {
	File       string
	Line       int
	Unit, Var  string
	Recipients []string
	// RunsOn describes the machines the unit may run on: "any machine",
	// or its machine constraints.
	RunsOn string
	// Covering are the recipients whose machines include every machine
	// the unit may run on.
	Covering []string
	// Problem is why the secret cannot be decrypted everywhere the unit
	// may run (nil: it can).
	Problem *FieldError
}

// CheckSecrets checks each secret of the documents against the
// repository's recipients (nil: the repository has none): every name is
// a recipient, and one of them covers every machine its unit may run on
// (its machines are implied by the unit's machine constraints).
func CheckSecrets(docs []*Document, rs *Recipients) []SecretCheck {
	var out []SecretCheck
	for _, d := range docs {
		if d.Err != nil {
			continue
		}
		for i, e := range d.Spec.Env {
			if e.Secret == "" {
				continue
			}
			field := fmt.Sprintf("env[%d]", i)
			c := SecretCheck{File: d.File, Line: d.LineOf(field + ".secret"), Unit: d.Spec.Name, Var: e.Name,
				Recipients: e.Recipients, RunsOn: runsOn(&d.Spec)}
			c.Problem = checkSecretRecipients(d, field, e, rs, &c)
			out = append(out, c)
		}
	}
	return out
}

func checkSecretRecipients(d *Document, field string, e EnvVar, rs *Recipients, c *SecretCheck) *FieldError {
	fe := func(f, format string, a ...any) *FieldError {
		return &FieldError{File: d.File, Line: d.LineOf(f), Field: f, Msg: fmt.Sprintf(format, a...)}
	}
	if rs == nil {
		return fe(field+".secret", "the repository has no %s naming the recipients of its secrets: add one (see Secrets in Kaylee's README)", RecipientsFile)
	}
	var desc []string
	for j, n := range e.Recipients {
		r, ok := rs.Get(n)
		if !ok {
			msg := fmt.Sprintf("%q is not in %s (it names %s)", n, rs.File, strings.Join(rs.Names(), ", "))
			if s := suggest(n, rs.Names()); s != "" {
				msg = fmt.Sprintf("%q is not in %s (did you mean %q?)", n, rs.File, s)
			}
			return fe(fmt.Sprintf("%s.recipients[%d]", field, j), "%s", msg)
		}
		desc = append(desc, fmt.Sprintf("%s: %s", n, r.Covers()))
		if implied(r.Machines, &d.Spec) {
			c.Covering = append(c.Covering, n)
		}
	}
	if len(c.Covering) > 0 {
		return nil
	}
	return fe(field+".recipients", "no recipient's machines include every machine %s may run on (%s; %s): encrypt it also to a recipient of those machines (* for every machine), or constrain machine:",
		d.Spec.Name, c.RunsOn, strings.Join(desc, "; "))
}

// shortMachineIDLen is the length of fleet's short machine IDs
// (machine.MachineState.ShortID), which its MachineID= also matches.
const shortMachineIDLen = 8

// runsOn describes the machines a unit may run on.
func runsOn(s *Spec) string {
	var parts []string
	if s.MachineID != "" {
		parts = append(parts, "machineId="+s.MachineID)
	}
	parts = append(parts, s.Machine...)
	if len(parts) == 0 {
		return "any machine"
	}
	return "machines with " + strings.Join(parts, ", ")
}

// implied: every machine the unit may run on has each of the pairs. Its
// machine constraints are fleet's: the values of one key are OR'd, keys
// AND'd; so a pair is implied when the unit allows its key that value
// only. machineId=ID is implied by the unit's machineId: the same ID, or
// ID is the short form of the unit's (fleet runs a unit whose MachineID
// is a machine's full ID or its short ID, the first 8 characters, on
// that machine; a unit pinned by a short ID is not covered by a full ID,
// as another machine could have that short ID).
func implied(pairs []string, s *Spec) bool {
	for _, p := range pairs {
		k, v, _ := strings.Cut(p, "=")
		if k == "machineId" {
			if s.MachineID != v && (len(s.MachineID) <= shortMachineIDLen || s.MachineID[:shortMachineIDLen] != v) {
				return false
			}
			continue
		}
		var allowed []string
		for _, m := range s.Machine {
			if mk, mv, ok := strings.Cut(m, "="); ok && mk == k {
				allowed = append(allowed, mv)
			}
		}
		if len(allowed) == 0 {
			return false
		}
		for _, a := range allowed {
			if a != v {
				return false
			}
		}
	}
	return true
}
