package gitsource

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// AllowedSigner is one line of an allowed signers file, the format of
// git's gpg.ssh.allowedSignersFile (ssh-keygen(1), ALLOWED SIGNERS):
//
//	principals [options] keytype base64key [comment]
type AllowedSigner struct {
	Line       int      // line number in the file, from 1
	Principals []string // comma-separated in the file; may be patterns
	// Namespaces the key may sign in (patterns, "!" negates); nil means
	// every namespace. Git signs in namespace "git".
	Namespaces []string
	// ValidAfter and ValidBefore bound the signature time; zero means
	// unbounded.
	ValidAfter, ValidBefore time.Time
	Key                     ssh.PublicKey
}

// ParseAllowedSigners parses an allowed signers file; name is used only
// in errors, which read "NAME:LINE: why". Certificate authorities
// (cert-authority) are refused.
func ParseAllowedSigners(name string, data []byte) ([]AllowedSigner, error) {
	if name == "" {
		name = "allowed signers"
	}
	var out []AllowedSigner
	for i, line := range bytes.Split(data, []byte("\n")) {
		s, err := parseAllowedSigner(string(line))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, i+1, err)
		}
		if s == nil {
			continue
		}
		s.Line = i + 1
		out = append(out, *s)
	}
	return out, nil
}

// parseAllowedSigner parses one line; nil for a blank or comment line.
func parseAllowedSigner(line string) (*AllowedSigner, error) {
	rest := strings.TrimLeft(strings.TrimSuffix(line, "\r"), " \t")
	if rest == "" || rest[0] == '#' {
		return nil, nil
	}
	principals, rest, err := field(rest)
	if err != nil {
		return nil, fmt.Errorf("principals: %w", err)
	}
	principals = strings.Trim(principals, `"`)
	s := &AllowedSigner{}
	for _, p := range strings.Split(principals, ",") {
		if p == "" {
			return nil, errors.New("an empty principal")
		}
		s.Principals = append(s.Principals, p)
	}
	next, rest, err := field(rest)
	if err != nil {
		return nil, err
	}
	if next == "" {
		return nil, errors.New("no key after the principals")
	}
	if !isKeyType(next) {
		if err := s.parseOptions(next); err != nil {
			return nil, err
		}
		if next, rest, err = field(rest); err != nil {
			return nil, err
		}
		if next == "" {
			return nil, errors.New("no key after the options")
		}
	}
	keyType := next
	b64, _, _ := field(rest)
	if b64 == "" {
		return nil, fmt.Errorf("no key after key type %q", keyType)
	}
	blob, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("key: not base64: %w", err)
	}
	key, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	if _, ok := key.(*ssh.Certificate); ok {
		return nil, errors.New("a certificate: certificates are not supported")
	}
	if key.Type() != keyType {
		return nil, fmt.Errorf("key type %q but the key is %s", keyType, key.Type())
	}
	s.Key = key
	return s, nil
}

// field splits off the next whitespace-delimited field; double quotes
// may hold whitespace.
func field(s string) (f, rest string, err error) {
	s = strings.TrimLeft(s, " \t")
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			quoted = !quoted
		case !quoted && (c == ' ' || c == '\t'):
			return s[:i], strings.TrimLeft(s[i:], " \t"), nil
		}
	}
	if quoted {
		return "", "", errors.New("unterminated quote")
	}
	return s, "", nil
}

func isKeyType(s string) bool {
	switch s {
	case ssh.KeyAlgoRSA, ssh.KeyAlgoDSA, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoED25519, ssh.KeyAlgoSKECDSA256, ssh.KeyAlgoSKED25519:
		return true
	}
	return strings.HasSuffix(s, "-cert-v01@openssh.com")
}

// parseOptions parses option[,option…]; values may be double-quoted
// (and then hold commas).
func (s *AllowedSigner) parseOptions(opts string) error {
	for opts != "" {
		opt, rest, err := nextOption(opts)
		if err != nil {
			return err
		}
		if err := s.parseOption(opt); err != nil {
			return err
		}
		opts = rest
	}
	if !s.ValidAfter.IsZero() && !s.ValidBefore.IsZero() && !s.ValidBefore.After(s.ValidAfter) {
		return errors.New("valid-before is not after valid-after")
	}
	return nil
}

// nextOption splits off the first option of option[,option…]; a comma
// within double quotes does not end it, and a comma must be followed by
// another option.
func nextOption(opts string) (opt, rest string, err error) {
	quoted := false
	for i := 0; i < len(opts); i++ {
		if opts[i] == '"' {
			quoted = !quoted
		} else if opts[i] == ',' && !quoted {
			if i+1 == len(opts) {
				return "", "", errors.New("options end with a comma")
			}
			return opts[:i], opts[i+1:], nil
		}
	}
	return opts, "", nil
}

// parseOption parses one option, name or name=value (value may be
// double-quoted), into s.
func (s *AllowedSigner) parseOption(opt string) error {
	name, value, hasValue := strings.Cut(opt, "=")
	name = strings.ToLower(name)
	if hasValue {
		v, err := unquote(value)
		if err != nil {
			return fmt.Errorf("option %s: %w", name, err)
		}
		value = v
	}
	switch {
	case name == "cert-authority" && !hasValue:
		return errors.New("cert-authority: certificate authorities are not supported")
	case name == "namespaces" && hasValue:
		return s.setNamespaces(value)
	case (name == "valid-after" || name == "valid-before") && hasValue:
		return s.setValidity(name, value)
	default:
		return fmt.Errorf("unknown option %q", opt)
	}
}

// setNamespaces sets the namespaces option's comma-separated value.
func (s *AllowedSigner) setNamespaces(value string) error {
	if s.Namespaces != nil {
		return errors.New("more than one namespaces option")
	}
	for _, ns := range strings.Split(value, ",") {
		if ns == "" {
			return errors.New("namespaces: an empty namespace")
		}
		s.Namespaces = append(s.Namespaces, ns)
	}
	return nil
}

// setValidity sets the valid-after or valid-before option (name) to the
// time value.
func (s *AllowedSigner) setValidity(name, value string) error {
	t, err := parseSignerTime(value)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	p := &s.ValidAfter
	if name == "valid-before" {
		p = &s.ValidBefore
	}
	if !p.IsZero() {
		return fmt.Errorf("more than one %s option", name)
	}
	*p = t
	return nil
}

func unquote(v string) (string, error) {
	if !strings.HasPrefix(v, `"`) {
		if strings.Contains(v, `"`) {
			return "", errors.New("a stray quote")
		}
		return v, nil
	}
	if len(v) < 2 || !strings.HasSuffix(v, `"`) || strings.Contains(v[1:len(v)-1], `"`) {
		return "", errors.New("bad quoting")
	}
	return v[1 : len(v)-1], nil
}

// parseSignerTime parses ssh-keygen's YYYYMMDD[Z] or
// YYYYMMDDHHMM[SS][Z]: UTC with Z, else local time, as ssh-keygen does.
func parseSignerTime(v string) (time.Time, error) {
	loc := time.Local
	s := v
	if strings.HasSuffix(s, "Z") || strings.HasSuffix(s, "z") {
		loc, s = time.UTC, s[:len(s)-1]
	}
	var layout string
	switch len(s) {
	case 8:
		layout = "20060102"
	case 12:
		layout = "200601021504"
	case 14:
		layout = "20060102150405"
	default:
		return time.Time{}, fmt.Errorf("time %q: want YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z]", v)
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return time.Time{}, fmt.Errorf("time %q: want YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z]", v)
		}
	}
	t, err := time.ParseInLocation(layout, s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: %w", v, err)
	}
	return t, nil
}

// matchList is ssh's pattern-list match: s matches a pattern and no
// negated ("!") one.
func matchList(s string, patterns []string) bool {
	matched := false
	for _, p := range patterns {
		if neg, ok := strings.CutPrefix(p, "!"); ok {
			if matchPattern(s, neg) {
				return false
			}
			continue
		}
		if matchPattern(s, p) {
			matched = true
		}
	}
	return matched
}

// matchPattern matches ssh patterns: * any run, ? one character.
func matchPattern(s, p string) bool {
	for p != "" {
		switch p[0] {
		case '*':
			p = strings.TrimLeft(p, "*")
			if p == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if matchPattern(s[i:], p) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
			s, p = s[1:], p[1:]
		default:
			if s == "" || s[0] != p[0] {
				return false
			}
			s, p = s[1:], p[1:]
		}
	}
	return s == ""
}
