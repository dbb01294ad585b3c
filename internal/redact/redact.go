// Package redact hides the credentials that repository URLs carry in
// their user info, in URLs and in any text that quotes them (errors, log
// lines, messages), for everything shown to people or sent elsewhere.
//
// The rule:
//   - Any scheme but ssh (http, https, git, ftp, …): the whole user info is
//     a secret, the user name too (a token is often given as the user name,
//     https://ghp_…@github.com/…, or beside a dummy password):
//     https://user:pass@host/x and https://token@host/x are shown as
//     https://***@host/x.
//   - ssh://, git+ssh://, ssh+git:// and scp-like user@host:path: the user
//     name is an account (git), not a secret, and stays; a password, if one
//     is written, becomes ***: ssh://git:pass@host/x is ssh://git:***@host/x.
//   - Paths and file:// URLs carry no credentials and are left as they are.
//
// The host, port and path always stay, so a message still says where.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces a secret.
const Mask = "***"

// scheme finds the start of a URL with an authority, in any text.
var scheme = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.\-]*://`)

// scpLike is user@host:path (git's scp-like syntax) as a whole string.
var scpLike = regexp.MustCompile(`^([^/@]*(?:@[^/@]*)*)@([^/:@]+):`)

// URL returns a repository URL with its credentials masked (see the
// package's rule). A string that is not a URL with user info is returned
// as it is.
func URL(u string) string {
	if loc := scheme.FindStringIndex(u); loc != nil && loc[0] == 0 {
		return Text(u)
	}
	if m := scpLike.FindStringSubmatchIndex(u); m != nil {
		user := u[m[2]:m[3]]
		if i := strings.IndexByte(user, ':'); i >= 0 {
			return user[:i+1] + Mask + u[m[3]:]
		}
	}
	return u
}

// authorityEnd ends the authority of a URL quoted in text: the path,
// query or fragment begins, or the text around the URL goes on.
const authorityEnd = "/?#\"'<>`\\ \t\r\n"

// Text returns s with the user info of every URL in it masked (see the
// package's rule), e.g. in `Get "https://tok@host/x/info/refs": EOF`.
// scp-like addresses are recognised only by URL, as a whole string.
func Text(s string) string {
	locs := scheme.FindAllStringIndex(s, -1)
	if locs == nil {
		return s
	}
	var b strings.Builder
	last := 0
	for _, loc := range locs {
		if loc[0] < last {
			continue // inside the user info masked before
		}
		start := loc[1] // the authority
		end := len(s)
		if i := strings.IndexAny(s[start:], authorityEnd); i >= 0 {
			end = start + i
		}
		at := strings.LastIndexByte(s[start:end], '@')
		if at < 0 {
			continue
		}
		user := s[start : start+at]
		b.WriteString(s[last:start])
		b.WriteString(maskUser(strings.ToLower(s[loc[0]:loc[1]-3]), user))
		last = start + at
	}
	b.WriteString(s[last:])
	return b.String()
}

// maskUser masks the user info of a URL of scheme.
func maskUser(scheme, user string) string {
	switch scheme {
	case "ssh", "git+ssh", "ssh+git":
		if i := strings.IndexByte(user, ':'); i >= 0 {
			return user[:i+1] + Mask
		}
		return user
	}
	return Mask
}

// Secrets are the secret parts of a repository URL's user info, as
// written and as decoded and escaped again (the forms a library may quote
// them in): for Scrub, which masks them wherever they appear, in or out of
// a URL. They are the password, and the user name when there is no
// password (a token) or when it is as long as a token (MinTokenUser); a
// short user name beside a password (kaylee, git, oauth2) is a name that
// paths and messages also use, and is masked only inside URLs (Text).
// Parts shorter than MinSecret are left out: masking every "ab" in a
// message would garble it more than it protects.
func Secrets(u string) []string {
	var user, password string
	hasPassword := false
	if loc := scheme.FindStringIndex(u); loc != nil && loc[0] == 0 {
		rest := u[loc[1]:]
		if i := strings.IndexAny(rest, authorityEnd); i >= 0 {
			rest = rest[:i]
		}
		at := strings.LastIndexByte(rest, '@')
		if at < 0 {
			return nil
		}
		user, password, hasPassword = strings.Cut(rest[:at], ":")
		if s := strings.ToLower(u[:loc[1]-3]); s == "ssh" || s == "git+ssh" || s == "ssh+git" {
			user = "" // an account, not a secret
		}
	} else if m := scpLike.FindStringSubmatch(u); m != nil {
		_, password, hasPassword = strings.Cut(m[1], ":")
	}
	var raw []string
	if hasPassword {
		raw = append(raw, password)
	}
	if user != "" && (!hasPassword || len(user) >= MinTokenUser) {
		raw = append(raw, user)
	}
	return Forms(raw...)
}

// MinTokenUser is the length from which a user name beside a password is
// taken for a token (GitHub's ghp_… is 40, GitLab's glpat-… 26).
const MinTokenUser = 16

// MinSecret is the shortest secret Scrub masks.
const MinSecret = 4

// Forms returns each secret as given, percent-decoded, and escaped as a
// path segment and as a query value, without duplicates or parts shorter
// than MinSecret.
func Forms(secrets ...string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if len(s) >= MinSecret && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, s := range secrets {
		add(s)
		dec, err := url.PathUnescape(s)
		if err != nil {
			dec = s
		}
		add(dec)
		add(url.PathEscape(dec))
		add(url.QueryEscape(dec))
		add(url.UserPassword("", dec).String()[1:]) // userinfo escaping, without the leading ":"
	}
	// Longest first: a secret containing another is masked whole.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && len(out[j]) > len(out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// Scrub masks the user info of every URL in s (Text) and every
// occurrence of the given secrets (see Secrets), wherever they appear.
func Scrub(s string, secrets []string) string {
	s = Text(s)
	for _, x := range secrets {
		if x != "" {
			s = strings.ReplaceAll(s, x, Mask)
		}
	}
	return s
}
