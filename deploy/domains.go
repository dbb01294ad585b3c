package deploy

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"
)

// Limits of a domain (RFC 1035's, as DNS and TLS certificates hold them).
const (
	MaxDomainLen      = 253
	MaxDomainLabelLen = 63
)

// A unit's domains are the host names a front router (kaylee router)
// sends to its serving replicas, on the port HTTPPort names. A domain is
// a lowercase host name of at least two labels, or a wildcard: "*." and a
// name of at least two labels (*.help.example.com), which covers one label
// more (a.help.example.com, not a.b.help.example.com). Domains change no
// fleet unit and are not part of the spec hash.

// HTTPPort returns the entry of ports the router sends a unit's domains
// to: the one domainsPort names, else the tcp port named http, else the
// only tcp port. ok is false when none is: domainsPort names no tcp port,
// or the unit has no tcp port, or several and none named http. It does
// not look at domains.
func (s *Spec) HTTPPort() (p Port, ok bool) {
	if s.DomainsPort != "" {
		for _, p := range s.Ports {
			if p.Name == s.DomainsPort && p.TCP() {
				return p, true
			}
		}
		return Port{}, false
	}
	var tcp []Port
	for _, p := range s.Ports {
		if !p.TCP() {
			continue
		}
		if p.Name == "http" {
			return p, true
		}
		tcp = append(tcp, p)
	}
	if len(tcp) == 1 {
		return tcp[0], true
	}
	return Port{}, false
}

// TCP tells whether the port is a tcp one (the default protocol).
func (p Port) TCP() bool { return p.Protocol == "" || p.Protocol == "tcp" }

// checkDomains checks each domain, that none is given twice, and that
// the router has a port to send them to.
func (c *checker) checkDomains(s *Spec) {
	seen := map[string]int{}
	for i, d := range s.Domains {
		field := fmt.Sprintf("domains[%d]", i)
		if msg := domainProblem(d); msg != "" {
			c.fail(field, "%s", msg)
		} else if j, ok := seen[d]; ok {
			c.fail(field, "%q is also domains[%d]", d, j)
		} else {
			seen[d] = i
		}
	}
	switch {
	case s.DomainsPort != "":
		c.checkDomainsPort(s)
	case len(s.Domains) == 0:
	default:
		if _, ok := s.HTTPPort(); ok {
			return
		}
		var tcp []string
		for _, p := range s.Ports {
			if p.TCP() {
				tcp = append(tcp, p.Name)
			}
		}
		if len(tcp) == 0 {
			c.fail("domains", "the router needs a port to send them to: add ports: [{name: http, port: N}] (the port the unit serves HTTP on)")
		} else {
			c.fail("domains", "which port serves HTTP? The unit has several tcp ports (%s) and none is named http: name one with domainsPort", strings.Join(tcp, ", "))
		}
	}
}

// checkDomainsPort: domainsPort names a tcp entry of ports, and the unit
// has domains.
func (c *checker) checkDomainsPort(s *Spec) {
	var names []string
	for _, p := range s.Ports {
		if p.Name != s.DomainsPort {
			names = append(names, p.Name)
			continue
		}
		if !p.TCP() {
			c.fail("domainsPort", "%q is a %s port: the router speaks HTTP over tcp", p.Name, p.Protocol)
			return
		}
		if len(s.Domains) == 0 {
			c.fail("domainsPort", "has no effect without domains: remove it")
		}
		return
	}
	switch sug := suggest(s.DomainsPort, names); {
	case len(names) == 0:
		c.fail("domainsPort", "%q is not an entry of ports (the unit has none)", s.DomainsPort)
	case sug != "":
		c.fail("domainsPort", "%q is not an entry of ports (did you mean %q?)", s.DomainsPort, sug)
	default:
		c.fail("domainsPort", "%q is not an entry of ports (%s)", s.DomainsPort, strings.Join(names, ", "))
	}
}

// domainProblem says what is wrong with a domain as a unit claims it,
// with the fix where there is one; "" when nothing is.
func domainProblem(d string) string {
	if d == "" {
		return "required: a host name such as example.com or a wildcard such as *.example.com"
	}
	if msg := domainFormProblem(d); msg != "" {
		return msg
	}
	if len(d) > MaxDomainLen {
		return fmt.Sprintf("is %d bytes; a domain is at most %d", len(d), MaxDomainLen)
	}
	name, wild := strings.CutPrefix(d, "*.")
	if strings.Contains(name, "*") {
		return fmt.Sprintf("%q: a wildcard is a whole first label, *.example.com", d)
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if msg := labelProblem(d, l); msg != "" {
			return msg
		}
	}
	switch {
	case wild && len(labels) < 2:
		return fmt.Sprintf("%q: a wildcard needs at least two labels after *. (*.example.com)", d)
	case len(labels) < 2:
		return fmt.Sprintf("%q has one label: a domain has at least two (example.com)", d)
	case strings.Trim(labels[len(labels)-1], "0123456789") == "":
		return fmt.Sprintf("%q is an IP address: domains are host names", d)
	}
	return ""
}

// domainFormProblem catches what people write for a domain that is
// another thing: a URL, a host and port, a name with a trailing dot or
// upper case letters, an internationalized name. A domain with spaces or
// control characters is left to the label check, which quotes them.
func domainFormProblem(d string) string {
	if strings.ContainsFunc(d, func(r rune) bool { return isControl(r) || unicode.IsSpace(r) }) {
		return ""
	}
	for _, r := range d {
		if r >= 0x80 {
			return fmt.Sprintf("%q is not ASCII: write an internationalized name in its punycode form (xn--…)", d)
		}
	}
	host := d
	if _, after, ok := strings.Cut(host, "://"); ok {
		host = after
	}
	host, _, path := strings.Cut(host, "/")
	host, _, port := strings.Cut(host, ":")
	fix := strings.ToLower(strings.TrimSuffix(host, "."))
	switch {
	case strings.Contains(d, "://"):
		return fmt.Sprintf("%q: a host name only, without a scheme: %s", d, fix)
	case path:
		return fmt.Sprintf("%q: a host name only, without a path: %s", d, fix)
	case port:
		return fmt.Sprintf("%q: a host name only, without a port (the router listens on 80 and 443; domainsPort names the unit's port): %s", d, fix)
	case d != strings.ToLower(d):
		return fmt.Sprintf("%q: use lowercase: %s", d, fix)
	case strings.HasSuffix(d, ".") && len(d) > 1:
		return fmt.Sprintf("%q: write it without the trailing dot: %s", d, fix)
	}
	return ""
}

// labelProblem checks one label of domain d.
func labelProblem(d, l string) string {
	switch {
	case l == "":
		return fmt.Sprintf("%q has an empty label (two dots in a row, or a leading dot)", d)
	case len(l) > MaxDomainLabelLen:
		return fmt.Sprintf("label %q is %d bytes; at most %d", l, len(l), MaxDomainLabelLen)
	case !nameRe.MatchString(l):
		return fmt.Sprintf("label %q may only hold a-z, 0-9 and -, not starting or ending with -", l)
	}
	return ""
}

// DomainClashes checks the domains of documents against each other: a
// domain that two units claim (the same string: a wildcard and a name it
// covers are not a clash, the router prefers the name) is an error on
// each, naming the other unit, its file and line. Documents of one unit
// name (a name defined twice: an error of its own) do not clash, nor do
// documents with errors. It returns the errors by document, nil for none.
func DomainClashes(docs []*Document) map[*Document]error {
	type claim struct {
		doc *Document
		i   int
	}
	claims := map[string][]claim{}
	for _, d := range docs {
		if d.Err != nil {
			continue
		}
		for i, dom := range d.Spec.Domains {
			claims[dom] = append(claims[dom], claim{d, i})
		}
	}
	type clash struct {
		i   int
		err error
	}
	found := map[*Document][]clash{}
	for dom, cs := range claims {
		for _, c := range cs {
			for _, o := range cs {
				if o.doc.Spec.Name == c.doc.Spec.Name {
					continue
				}
				field := fmt.Sprintf("domains[%d]", c.i)
				found[c.doc] = append(found[c.doc], clash{c.i, &FieldError{File: c.doc.File, Line: c.doc.LineOf(field), Field: field,
					Msg: fmt.Sprintf("%q is also claimed by unit %q in %s:%d; a domain routes to one unit: remove it from one of the two",
						dom, o.doc.Spec.Name, o.doc.File, o.doc.LineOf(fmt.Sprintf("domains[%d]", o.i)))}})
			}
		}
	}
	out := make(map[*Document]error, len(found))
	for d, cs := range found {
		sort.SliceStable(cs, func(i, j int) bool { return cs[i].i < cs[j].i })
		errs := make([]error, len(cs))
		for i, c := range cs {
			errs[i] = c.err
		}
		out[d] = errors.Join(errs...)
	}
	return out
}
