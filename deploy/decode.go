package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Document is one unit read from a file: the spec, where it came from, and
// the line of each field so that later errors can point at it.
type Document struct {
	File   string
	Line   int  // line where the document starts
	Spec   Spec // as decoded; only Name may be set when Err != nil
	Legacy bool // converted from the first-generation `spec:` format
	// Err joins a *FieldError per problem; nil when the unit is valid.
	Err error
	// Ignored are the fields of stored JSON (DecodeJSON) that Kaylee does
	// not know: ignored, as monder/kaylee did, and told as warnings. A file
	// (Decode, Load) has none: an unknown field there is an error.
	Ignored []*FieldError
	lines   map[string]int
}

// LineOf returns the line of a field path such as "apps[1].args[0]", falling
// back to its closest parent and then to the document's first line.
func (d *Document) LineOf(field string) int {
	for p := field; p != ""; p = parentPath(p) {
		if l, ok := d.lines[p]; ok {
			return l
		}
	}
	return d.Line
}

func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// Load decodes and validates every unit in a file (YAML, several documents
// separated by ---, or JSON). Documents that are valid have a nil Err; the
// returned error joins every problem of the file, each a *FieldError naming
// the file, line and field.
func Load(file string, data []byte) ([]*Document, error) {
	docs, err := Decode(file, data)
	errs := []error{err}
	for _, d := range docs {
		if d.Err == nil {
			d.Err = d.validate()
		}
		errs = append(errs, d.Err)
	}
	return docs, errors.Join(errs...)
}

// Decode reads every unit in a file without validating them. A document
// that does not decode is returned with its Err set (and its name, when one
// could be read); the returned error covers problems of the file as a whole,
// such as YAML syntax errors after which nothing more can be read.
func Decode(file string, data []byte) ([]*Document, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*Document
	for {
		var root yaml.Node
		err := dec.Decode(&root)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return docs, &FieldError{File: file, Line: yamlErrorLine(err), Msg: "invalid YAML: " + trimYAMLError(err)}
		}
		if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
			continue
		}
		n := root.Content[0]
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			continue // an empty document, such as a trailing ---
		}
		docs = append(docs, decodeDocument(file, n, false))
	}
	if len(docs) == 0 {
		return nil, &FieldError{File: file, Line: 1, Msg: "no unit in file: expected a mapping with at least name and apps"}
	}
	return docs, nil
}

// DecodeJSON reads one unit stored as JSON, such as the value of an etcd key
// written by hand or by a script. Wrong types are errors; unknown fields
// are ignored, as monder/kaylee's encoding/json did, and listed in the
// document's Ignored so that the operator hears of them (a typo in a field
// name is still visible). The spec is not validated (call Validate).
func DecodeJSON(source string, data []byte) (*Document, error) {
	if len(data) > MaxFileSize {
		return nil, &FieldError{File: source, Msg: FileTooBig(int64(len(data))).Error()}
	}
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		return nil, &FieldError{File: source, Msg: fmt.Sprintf("invalid JSON: %v", err)}
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, &FieldError{File: source, Msg: "invalid unit: expected a JSON object"}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &FieldError{File: source, Line: yamlErrorLine(err), Msg: "invalid JSON: " + trimYAMLError(err)}
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 {
		return nil, &FieldError{File: source, Msg: "invalid unit: expected one JSON object"}
	}
	d := decodeDocument(source, root.Content[0], true)
	return d, d.Err
}

// decodeDocument decodes one unit; lenient (stored JSON) ignores unknown
// fields, listing them in Ignored, where a file's are errors.
func decodeDocument(file string, n *yaml.Node, lenient bool) *Document {
	d := &Document{File: file, Line: n.Line, lines: map[string]int{}}
	// Bound the work before any walk: an alias is a pointer in yaml.v3's
	// tree, and a few KB of them expand to millions of values.
	if err := bound(file, n); err != nil {
		d.Spec.Name = peekName(n)
		d.Err = err
		return d
	}
	w := &walker{file: file, lines: d.lines, lenient: lenient}
	defer func() { d.Ignored = w.ignored }()
	if n.Kind == yaml.MappingNode && mappingHasKey(n, "spec") {
		var lf legacyFile
		w.check(n, reflect.TypeOf(lf), "", 0)
		if err := w.decode(n, &lf); err != nil {
			d.Spec.Name = peekName(n)
			d.Err = err
			return d
		}
		d.Spec, d.Legacy = lf.convert(), true
		d.lines = relocateLegacyLines(d.lines)
		return d
	}
	w.check(n, specType, "", 0)
	if err := w.decode(n, &d.Spec); err != nil {
		d.Spec = Spec{Name: peekName(n)}
		d.Err = err
	}
	return d
}

// walker checks a YAML tree against a Go type before decoding it, so that
// every unknown field and wrong type is reported with its line, not only
// the first one.
type walker struct {
	file  string
	lines map[string]int
	errs  []error
	// lenient: an unknown field goes to ignored, not errs.
	lenient bool
	ignored []*FieldError
}

const maxDepth = 32

// fieldNameRe is what an unknown field's name must look like to be
// repeated in its error ("did you mean"): a word of at most 64 bytes.
var fieldNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`)

var (
	specType   = reflect.TypeOf(Spec{})
	appType    = reflect.TypeOf(App{})
	healthType = reflect.TypeOf(Health{})
	probeType  = reflect.TypeOf(Probe{})
)

// healthCheckFields are fields of a check that are easily written one
// level too high, directly under health.
var healthCheckFields = map[string]string{
	"port": "health.http.port or health.tcp.port",
	"path": "health.http.path",
}

func (w *walker) fail(line int, field, format string, args ...any) {
	w.errs = append(w.errs, &FieldError{File: w.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (w *walker) decode(n *yaml.Node, v any) error {
	if len(w.errs) == 0 {
		if err := n.Decode(v); err != nil {
			w.fail(yamlErrorLine(err), "", "%s", trimYAMLError(err))
		}
	}
	return errors.Join(w.errs...)
}

func (w *walker) check(n *yaml.Node, t reflect.Type, path string, depth int) {
	for n.Kind == yaml.AliasNode && depth < maxDepth {
		n, depth = n.Alias, depth+1
	}
	if depth >= maxDepth {
		w.fail(n.Line, path, "nested too deeply")
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // absent value: the field keeps its zero value
	}
	switch t.Kind() {
	case reflect.Pointer:
		w.check(n, t.Elem(), path, depth+1)
	case reflect.Struct:
		w.checkMapping(n, t, path, depth)
	case reflect.Slice:
		w.checkList(n, t, path, depth)
	default:
		w.checkScalar(n, t.Kind(), path)
	}
}

// checkMapping checks a struct's fields: every key must be a known field,
// given once, and each value is checked against its field's type.
func (w *walker) checkMapping(n *yaml.Node, t reflect.Type, path string, depth int) {
	if n.Kind != yaml.MappingNode {
		got := describe(n)
		if path == "" && n.Kind == yaml.ScalarNode {
			// A whole document that is one line of text: a file that
			// is not a unit file. Its content is not repeated.
			got = fmt.Sprintf("a line of text (%d bytes)", len(n.Value))
		}
		w.fail(n.Line, path, "expected a mapping of fields, got %s", got)
		return
	}
	fields := yamlFields(t)
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, ok := w.checkKey(k, t, fields, path, seen)
		if !ok {
			continue
		}
		fp := joinPath(path, k.Value)
		w.lines[fp] = k.Line
		w.check(v, f.Type, fp, depth+1)
	}
}

// checkKey reports a key of a mapping of type t that is not a plain
// string, not one of its fields or given twice. It returns the field and
// true when the key's value is to be checked.
func (w *walker) checkKey(k *yaml.Node, t reflect.Type, fields map[string]reflect.StructField, path string, seen map[string]bool) (reflect.StructField, bool) {
	key := k.Value
	if k.Kind != yaml.ScalarNode {
		w.fail(k.Line, path, "field names must be plain strings")
		return reflect.StructField{}, false
	}
	f, known := fields[key]
	switch {
	case !known && w.lenient:
		msg := unknownField(key, t, fields)
		if !fieldNameRe.MatchString(key) {
			msg = fmt.Sprintf("a key that is not a field name (%d bytes)", len(key))
		}
		w.ignored = append(w.ignored, &FieldError{File: w.file, Line: k.Line, Field: path, Msg: msg})
	case !known && !fieldNameRe.MatchString(key):
		// Not even a name: a file that is not a unit file (a symlink
		// named on the command line, say). Its content is not repeated.
		w.fail(k.Line, "", "a key that is not a field name (%d bytes): is this a unit file? (known fields: %s)", len(key), strings.Join(sortedKeys(fields), ", "))
	case !known:
		w.fail(k.Line, "", "%s", unknownField(key, t, fields))
	case seen[key]:
		w.fail(k.Line, joinPath(path, key), "field given twice")
	default:
		seen[key] = true
		return f, true
	}
	return f, false
}

// unknownField is the error for a key that is not a field of type t, with
// the most helpful hint: where the field belongs, the closest known field,
// or the list of known fields.
func unknownField(key string, t reflect.Type, fields map[string]reflect.StructField) string {
	msg := fmt.Sprintf("unknown field %q", key)
	if _, app := yamlFields(appType)[key]; app && t == specType {
		return msg + fmt.Sprintf(" (it is a field of each app: apps[].%s)", key)
	}
	if hint, ok := healthCheckFields[key]; ok && t == healthType {
		return msg + fmt.Sprintf(" (it is a field of the check: %s)", hint)
	}
	if _, ok := healthCheckFields[key]; ok && t == probeType {
		return msg + fmt.Sprintf(" (it is a field of the check: primary.http.%s)", key)
	}
	if s := suggest(key, sortedKeys(fields)); s != "" {
		return msg + fmt.Sprintf(" (did you mean %q?)", s)
	}
	return msg + fmt.Sprintf(" (known fields: %s)", strings.Join(sortedKeys(fields), ", "))
}

// checkList checks each element of a list against the slice's element type.
func (w *walker) checkList(n *yaml.Node, t reflect.Type, path string, depth int) {
	if n.Kind != yaml.SequenceNode {
		w.fail(n.Line, path, "expected a list, got %s", describe(n))
		return
	}
	for i, e := range n.Content {
		ep := fmt.Sprintf("%s[%d]", path, i)
		w.lines[ep] = e.Line
		w.check(e, t.Elem(), ep, depth+1)
	}
}

// scalarKinds says, for each kind of scalar field, the YAML tag its value
// must have ("" for any scalar) and what the error says was expected.
var scalarKinds = map[reflect.Kind]struct{ tag, want string }{
	reflect.String: {"", "a string"},
	reflect.Int:    {"!!int", "a whole number"},
	reflect.Bool:   {"!!bool", "true or false"},
}

// checkScalar checks a value against a field of a scalar kind; other kinds
// are left to the decoder.
func (w *walker) checkScalar(n *yaml.Node, kind reflect.Kind, path string) {
	s, ok := scalarKinds[kind]
	if !ok {
		return
	}
	if n.Kind != yaml.ScalarNode || (s.tag != "" && n.Tag != s.tag) {
		w.fail(n.Line, path, "expected %s, got %s", s.want, describe(n))
	}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "…"
	}
	switch n.Tag {
	case "!!int", "!!float":
		return "the number " + v
	case "!!bool":
		return "the boolean " + v
	}
	return strconv.Quote(v)
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := make(map[string]reflect.StructField, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			out[name] = f
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func mappingHasKey(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

// peekName returns the document's name field when it is a plain string, so
// that a unit whose file is broken can still be identified (and kept).
func peekName(n *yaml.Node) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" && n.Content[i+1].Kind == yaml.ScalarNode {
			return n.Content[i+1].Value
		}
	}
	return ""
}

// yamlErrorLine extracts the line number yaml.v3 puts in its messages.
func yamlErrorLine(err error) int {
	msg := err.Error()
	if i := strings.Index(msg, "line "); i >= 0 {
		rest := msg[i+5:]
		end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if end < 0 {
			end = len(rest)
		}
		if l, err := strconv.Atoi(rest[:end]); err == nil {
			return l
		}
	}
	return 0
}

func trimYAMLError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	if i := strings.Index(msg, "line "); i == 0 {
		if j := strings.Index(msg, ": "); j > 0 {
			msg = msg[j+2:]
		}
	}
	return msg
}
