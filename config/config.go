// Package config reads Kaylee's configuration file: the git sources one
// process follows and where it sends notifications. Decoding is strict:
// an unknown field, a wrong type or a bad value is an error naming the
// file, the line and the field, as for unit files.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/internal/redact"
	"github.com/kaylee-gitops/kaylee/internal/suggest"
)

// File is a configuration file.
type File struct {
	Name          string // as given to Load
	Sources       []Source
	Notifications []Notification
	sourcesLine   int
}

// NeedSources is an error when the file lists no source: the commands
// that sync need one (kaylee server reads only notifications:).
func (f *File) NeedSources() error {
	if len(f.Sources) > 0 {
		return nil
	}
	return &Error{File: f.Name, Line: f.sourcesLine, Field: "sources", Msg: "no source: list at least one (name, repo)"}
}

// Source is one git source: a repository path mirrored into etcd, with
// its own credentials, safety settings and signature checks.
type Source struct {
	Name     string
	Repo     string
	Ref      string
	Path     string
	Interval time.Duration // 0: the process's default
	Timeout  time.Duration // of one pass (fetch and apply); 0: the default

	SSHKeyFile               string
	KnownHosts               string
	InsecureSkipHostKeyCheck bool
	Username                 string
	PasswordFile             string

	AllowEmpty bool
	MaxPrune   float64 // share, 0 < x ≤ 1; 0: the default
	Suspend    bool    // follow nothing until set back to false
	// AllowRewind applies a revision that does not descend from the one
	// last applied (the ref moved back, its history rewritten) instead of
	// refusing it.
	AllowRewind bool
	// ConflictsWith: units of other sources (or made with kaylee run)
	// this source's units may name in conflicts, as names or families
	// (db, db-*). Empty: a unit may conflict only with units of its own
	// source.
	ConflictsWith []string
	// Freeze: windows in which the source applies nothing (see
	// deploy.FreezeWindow); a new revision is recorded, not applied.
	Freeze []deploy.FreezeWindow

	Verify *Verify

	// Where names a field for messages: "kaylee.yaml:7: sources[0].sshKeyFile"
	// (a flag name for a source built from flags).
	Where func(field string) string
}

// Verify is a source's signature check.
type Verify struct {
	Mode           string // HEAD, Tag or TagAndHEAD
	Keyring        string // armored OpenPGP public keys
	AllowedSigners string // ssh-keygen allowed signers file
}

// Notification is an endpoint told about syncs and rollouts.
type Notification struct {
	URL        string
	SecretFile string   // HMAC-SHA256 key of the signature header; empty: unsigned
	Events     []string // "sync", "rollout"; empty: both
	Where      func(field string) string
}

// EventKinds are the values of a notification's events.
var EventKinds = []string{"sync", "rollout"}

// Error is one problem of a configuration file, printed FILE:LINE: FIELD: MESSAGE.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

var nameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$`)

// ValidName reports whether s can name a source (it is part of etcd keys).
func ValidName(s string) bool { return nameRe.MatchString(s) }

// Load decodes and checks a configuration file. Relative file names in it
// are taken from the file's directory. The error joins an *Error per
// problem.
func Load(name string, data []byte) (*File, error) {
	d := &decoder{name: name, dir: filepath.Dir(name)}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: name, Msg: "the file is empty: list sources: or notifications:"}
		}
		return nil, d.yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: name, Line: extra.Line, Msg: "a configuration file holds one document (found a second after ---)"}
	}
	f := &File{Name: name}
	d.top(&root, f)
	if len(d.errs) > 0 {
		return nil, errors.Join(d.errs...)
	}
	return f, nil
}

type decoder struct {
	name, dir string
	errs      []error
}

func (d *decoder) fail(n *yaml.Node, field, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, &Error{File: d.name, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (d *decoder) yamlError(err error) error {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: d.name, Line: line, Msg: "YAML: " + m[2]}
	}
	return &Error{File: d.name, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
}

func (d *decoder) where(fields map[string]*yaml.Node, whole *yaml.Node, path string) func(string) string {
	return func(field string) string {
		n := whole
		if k := fields[field]; k != nil {
			n = k
		}
		return fmt.Sprintf("%s:%d: %s.%s", d.name, n.Line, path, field)
	}
}

// mapping checks n is a mapping with only known keys and returns the key
// nodes and value nodes by key.
func (d *decoder) mapping(n *yaml.Node, path string, known ...string) (keys, values map[string]*yaml.Node, ok bool) {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping of fields, not %s", kind(n))
		return nil, nil, false
	}
	keys, values = map[string]*yaml.Node{}, map[string]*yaml.Node{"": n} // "": the mapping, for missing fields
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		field := join(path, k.Value)
		switch {
		case !contains(known, k.Value):
			msg := fmt.Sprintf("unknown field; known fields here: %s", strings.Join(known, ", "))
			if s := suggest.Closest(k.Value, known); s != "" {
				msg = fmt.Sprintf("unknown field; did you mean %s?", s)
			}
			d.fail(k, field, "%s", msg)
		case keys[k.Value] != nil:
			d.fail(k, field, "given twice (first at line %d)", keys[k.Value].Line)
		default:
			keys[k.Value], values[k.Value] = k, v
		}
	}
	return keys, values, true
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "nothing"
	}
	return fmt.Sprintf("%q", n.Value)
}

func (d *decoder) top(root *yaml.Node, f *File) {
	_, v, ok := d.mapping(root, "", "sources", "notifications")
	if !ok {
		return
	}
	f.sourcesLine = root.Line
	if n := v["sources"]; n != nil {
		f.sourcesLine = n.Line
	}
	if n := v["sources"]; n != nil && d.list(n, "sources") {
		seen := map[string]*yaml.Node{}
		for i, e := range n.Content {
			s, ok := d.source(e, fmt.Sprintf("sources[%d]", i))
			if !ok {
				continue
			}
			if first := seen[s.Name]; first != nil {
				d.fail(e, fmt.Sprintf("sources[%d].name", i), "source %q is also defined at line %d; names must be unique", s.Name, first.Line)
				continue
			}
			seen[s.Name] = e
			f.Sources = append(f.Sources, s)
		}
	}
	if n := v["notifications"]; n != nil && d.list(n, "notifications") {
		for i, e := range n.Content {
			if nt, ok := d.notification(e, fmt.Sprintf("notifications[%d]", i)); ok {
				f.Notifications = append(f.Notifications, nt)
			}
		}
	}
}

func (d *decoder) list(n *yaml.Node, path string) bool {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "want a list, not %s", kind(n))
		return false
	}
	return true
}

var sourceFields = []string{"name", "repo", "ref", "path", "interval", "timeout", "sshKeyFile", "knownHosts", "insecureSkipHostKeyCheck",
	"username", "passwordFile", "allowEmpty", "maxPrune", "allowRewind", "conflictsWith", "suspend", "verify", "freeze"}

func (d *decoder) source(n *yaml.Node, path string) (Source, bool) {
	before := len(d.errs)
	k, v, ok := d.mapping(n, path, sourceFields...)
	if !ok {
		return Source{}, false
	}
	s := Source{Where: d.where(k, n, path)}
	s.Name = d.str(v, path, "name", true)
	if s.Name != "" && !ValidName(s.Name) {
		d.fail(v["name"], path+".name", "%q: use lower-case letters, digits, '.', '_' and '-' (it is part of etcd keys), at most 64", s.Name)
	}
	s.Repo = d.str(v, path, "repo", true)
	s.Ref = d.str(v, path, "ref", false)
	s.Path = d.str(v, path, "path", false)
	s.Interval = d.duration(v, path, "interval")
	s.Timeout = d.duration(v, path, "timeout")
	s.SSHKeyFile = d.file(v, path, "sshKeyFile")
	s.KnownHosts = d.file(v, path, "knownHosts")
	s.InsecureSkipHostKeyCheck = d.bool(v, path, "insecureSkipHostKeyCheck")
	s.Username = d.str(v, path, "username", false)
	s.PasswordFile = d.file(v, path, "passwordFile")
	s.AllowEmpty = d.bool(v, path, "allowEmpty")
	s.Suspend = d.bool(v, path, "suspend")
	s.AllowRewind = d.bool(v, path, "allowRewind")
	if n := v["conflictsWith"]; n != nil && d.list(n, path+".conflictsWith") {
		for i, x := range n.Content {
			field := fmt.Sprintf("%s.conflictsWith[%d]", path, i)
			switch {
			case x.Kind != yaml.ScalarNode || x.Tag == "!!null":
				d.fail(x, field, "want a unit name or a family (db-*), not %s", kind(x))
			case deploy.ValidConflict(x.Value) != nil:
				d.fail(x, field, "%v", deploy.ValidConflict(x.Value))
			default:
				s.ConflictsWith = append(s.ConflictsWith, x.Value)
			}
		}
	}
	if n := v["maxPrune"]; n != nil {
		p, err := ParsePercent(n.Value)
		if n.Kind != yaml.ScalarNode || err != nil {
			d.fail(n, path+".maxPrune", "%s: use a percentage between 1%% and 100%%, such as 25%%", kind(n))
		}
		s.MaxPrune = p
	}
	if n := v["verify"]; n != nil {
		s.Verify = d.verify(n, path+".verify")
	}
	if n := v["freeze"]; n != nil && d.list(n, path+".freeze") {
		for i, x := range n.Content {
			if w, ok := d.freezeWindow(x, fmt.Sprintf("%s.freeze[%d]", path, i)); ok {
				s.Freeze = append(s.Freeze, w)
			}
		}
	}
	return s, len(d.errs) == before
}

func (d *decoder) verify(n *yaml.Node, path string) *Verify {
	_, v, ok := d.mapping(n, path, "mode", "keyring", "allowedSigners")
	if !ok {
		return nil
	}
	vf := &Verify{Mode: "HEAD"}
	if m := d.str(v, path, "mode", false); m != "" {
		switch strings.ToLower(m) {
		case "head":
			vf.Mode = "HEAD"
		case "tag":
			vf.Mode = "Tag"
		case "tagandhead":
			vf.Mode = "TagAndHEAD"
		default:
			d.fail(v["mode"], path+".mode", "%q: use HEAD (the commit the ref points at), Tag (an annotated tag's signature) or TagAndHEAD", m)
		}
	}
	vf.Keyring = d.file(v, path, "keyring")
	vf.AllowedSigners = d.file(v, path, "allowedSigners")
	if vf.Keyring == "" && vf.AllowedSigners == "" {
		d.fail(n, path, "give keyring (armored OpenPGP public keys) or allowedSigners (an ssh-keygen allowed signers file), or both")
	}
	return vf
}

// freezeWindow is one window of a source's freeze: (schedule, duration,
// timeZone, reason), each problem at its field's line.
func (d *decoder) freezeWindow(n *yaml.Node, path string) (deploy.FreezeWindow, bool) {
	before := len(d.errs)
	_, v, ok := d.mapping(n, path, "schedule", "duration", "timeZone", "reason")
	if !ok {
		return deploy.FreezeWindow{}, false
	}
	w := deploy.FreezeWindow{Schedule: d.str(v, path, "schedule", false), Duration: d.str(v, path, "duration", false),
		TimeZone: d.str(v, path, "timeZone", false), Reason: d.str(v, path, "reason", false)}
	if len(d.errs) != before {
		return w, false
	}
	for _, p := range w.Check() {
		at := v[p.Field]
		if at == nil {
			at = n
		}
		d.fail(at, path+"."+p.Field, "%s", p.Msg)
	}
	return w, len(d.errs) == before
}

func (d *decoder) notification(n *yaml.Node, path string) (Notification, bool) {
	before := len(d.errs)
	k, v, ok := d.mapping(n, path, "url", "secretFile", "events")
	if !ok {
		return Notification{}, false
	}
	nt := Notification{Where: d.where(k, n, path)}
	nt.URL = d.str(v, path, "url", true)
	if nt.URL != "" {
		if u, err := url.Parse(nt.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			d.fail(v["url"], path+".url", "%q: want an http:// or https:// URL with a host", redact.URL(nt.URL))
		}
	}
	nt.SecretFile = d.file(v, path, "secretFile")
	if e := v["events"]; e != nil && d.list(e, path+".events") {
		for i, x := range e.Content {
			if x.Kind != yaml.ScalarNode || !contains(EventKinds, x.Value) {
				d.fail(x, fmt.Sprintf("%s.events[%d]", path, i), "%s: use %s", kind(x), strings.Join(EventKinds, " or "))
				continue
			}
			nt.Events = append(nt.Events, x.Value)
		}
	}
	return nt, len(d.errs) == before
}

// Wants reports whether the endpoint takes events of this kind.
func (n Notification) Wants(kind string) bool { return len(n.Events) == 0 || contains(n.Events, kind) }

func (d *decoder) str(v map[string]*yaml.Node, path, field string, required bool) string {
	n := v[field]
	if n == nil {
		if required {
			d.fail(v[""], join(path, field), "required")
		}
		return ""
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.fail(n, join(path, field), "want a string, not %s", kind(n))
		return ""
	}
	if required && strings.TrimSpace(n.Value) == "" {
		d.fail(n, join(path, field), "must not be empty")
	}
	return n.Value
}

// file is a string naming a file, made absolute from the config's directory.
func (d *decoder) file(v map[string]*yaml.Node, path, field string) string {
	s := d.str(v, path, field, false)
	if s == "" || filepath.IsAbs(s) {
		return s
	}
	return filepath.Join(d.dir, s)
}

// duration is a duration of at least a second, or 0 when not given.
func (d *decoder) duration(v map[string]*yaml.Node, path, field string) time.Duration {
	n := v[field]
	if n == nil {
		return 0
	}
	iv, err := time.ParseDuration(n.Value)
	switch {
	case n.Kind != yaml.ScalarNode || err != nil:
		d.fail(n, join(path, field), "%s is not a duration such as 30s or 5m", kind(n))
	case iv < time.Second:
		d.fail(n, join(path, field), "%s: use at least 1s", iv)
	default:
		return iv
	}
	return 0
}

func (d *decoder) bool(v map[string]*yaml.Node, path, field string) bool {
	n := v[field]
	if n == nil {
		return false
	}
	var b bool
	if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
		d.fail(n, join(path, field), "want true or false, not %s", kind(n))
	}
	return b
}

// ParsePercent reads "25%" or "25" as 0.25; it must be in (0, 100].
func ParsePercent(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || !(v > 0 && v <= 100) {
		return 0, errors.New("use a percentage between 1% and 100%")
	}
	return v / 100, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
