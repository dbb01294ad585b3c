package deploy

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A user's args, cmd, volume options and net are fragments of a systemd
// Exec line, written in its grammar: the seed's args hold several words
// ("--cidr 10.5.0.0/16") and quotes ("--format '$$ip:80'"), and $VAR is
// the environment. What the grammar would turn into something else is
// refused at validation: a lone ; (systemd's separator of commands: what
// follows would run as a second command on the machine), a quote left open
// (systemd refuses the line, or takes the rest of it into the word), and a
// backslash (an escape: the word would not reach the command as written).

// imageRe is an image reference: docker://, a registry, a path, a tag or a
// digest, and rkt's ,label=value. Nothing systemd or a shell reads.
var imageRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/:@+=,~-]*$`)

// execFragmentProblem says what is wrong with a fragment of an Exec line,
// or "" when it splits into plain words of one command.
func execFragmentProblem(v string) string {
	var quote rune
	word := strings.Builder{}
	quoted := false // the current word had a quote
	end := func() string {
		if word.String() == ";" && !quoted {
			return `";" alone is systemd's separator of commands: what follows would run as a second command on the machine; quote it (';') to pass a semicolon`
		}
		word.Reset()
		quoted = false
		return ""
	}
	for _, r := range v {
		switch {
		case r == '\\':
			return `holds a backslash: systemd reads escapes on an Exec line, so the word would not reach the command as written`
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote, quoted = r, true
		case r == ' ' || r == '\t':
			if p := end(); p != "" {
				return p
			}
			continue
		}
		word.WriteRune(r)
	}
	if quote != 0 {
		return fmt.Sprintf("has a %c quote that is never closed: systemd would refuse the line (close it, or leave quotes out)", quote)
	}
	return end()
}

// checkExec checks a fragment of an Exec line.
func (c *checker) checkExec(field, v string) {
	if p := execFragmentProblem(v); p != "" {
		c.fail(field, "%q %s", v, p)
	}
}

// pathProblem says what keeps p from being one literal word of an Exec
// line and a unit file path, or "".
func pathProblem(p string) string {
	switch {
	case strings.ContainsFunc(p, unicode.IsSpace):
		return "spaces"
	case strings.ContainsAny(p, `'"\`):
		return "quotes or backslashes"
	case containsDotDot(p):
		return ".."
	}
	return ""
}

// ValidMetadataKey and ValidMetadataValue are fleet's machine metadata as
// a MachineMetadata=key=value line can hold it: fleet splits the line on
// "=" and drops a pair that is not exactly two parts, and reads a value
// in quotes as several. The same rules hold for metadata that comes from
// fleet's machines (spread zones), which Kaylee renders too.
func ValidMetadataKey(k string) bool { return metaKeyRe.MatchString(k) }

func ValidMetadataValue(v string) bool {
	return v != "" && utf8.ValidString(v) && !strings.ContainsFunc(v, func(r rune) bool {
		return unicode.IsSpace(r) || isControl(r) || strings.ContainsRune(`="'\`, r)
	})
}
