package redact

import (
	"reflect"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"http user and password", "http://kaylee:s3cretPW@git.example.com/ops/units.git", "http://***@git.example.com/ops/units.git"},
		{"https token as user", "https://ghp_AAAAAAAAAAAAAAAA@github.com/org/units", "https://***@github.com/org/units"},
		{"token and dummy password", "https://ghp_AAAA:x-oauth-basic@github.com/org/units", "https://***@github.com/org/units"},
		{"port kept", "http://u:p@127.0.0.1:8080/x.git", "http://***@127.0.0.1:8080/x.git"},
		{"no path", "http://u:p@host", "http://***@host"},
		{"percent-encoded password", "https://bob:p%40ss%2Fw0rd@host/r.git", "https://***@host/r.git"},
		{"raw @ in password", "https://bob:p@ss@host/r.git", "https://***@host/r.git"},
		{"upper-case scheme", "HTTPS://tok@host/r", "HTTPS://***@host/r"},
		{"git protocol", "git://tok@host/r", "git://***@host/r"},
		{"ssh user kept", "ssh://git@host:2222/org/r.git", "ssh://git@host:2222/org/r.git"},
		{"ssh password masked", "ssh://git:hunter22@host/org/r.git", "ssh://git:***@host/org/r.git"},
		{"git+ssh user kept", "git+ssh://deploy@host/r", "git+ssh://deploy@host/r"},
		{"scp-like user kept", "git@github.com:org/units.git", "git@github.com:org/units.git"},
		{"scp-like password masked", "git:hunter22@github.com:org/units.git", "git:***@github.com:org/units.git"},
		{"no user info", "https://git.example.com/ops/units.git", "https://git.example.com/ops/units.git"},
		{"@ in the path only", "https://host/org/r@v1", "https://host/org/r@v1"},
		{"file URL", "file:///srv/units", "file:///srv/units"},
		{"local path", "/srv/git/units", "/srv/git/units"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := URL(tt.in); got != tt.want {
				t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got := URL(URL(tt.in)); got != tt.want {
				t.Errorf("URL is not idempotent on %q: %q", tt.in, got)
			}
		})
	}
}

func TestText(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"go's http error",
			`listing refs of http://kaylee:s3cretPW@127.0.0.1:1/units.git: Get "http://kaylee:***@127.0.0.1:1/units.git/info/refs?service=git-upload-pack": dial tcp 127.0.0.1:1: connect: connection refused`,
			`listing refs of http://***@127.0.0.1:1/units.git: Get "http://***@127.0.0.1:1/units.git/info/refs?service=git-upload-pack": dial tcp 127.0.0.1:1: connect: connection refused`},
		{"token in quotes", `Get "https://ghp_AAAA@host": EOF`, `Get "https://***@host": EOF`},
		{"several URLs", "a https://u:p@h1/x, b ssh://git:pw@h2/y and c http://tok@h3",
			"a https://***@h1/x, b ssh://git:***@h2/y and c http://***@h3"},
		{"URL at the end of a line", "repo http://tok@h3\nnext line @home", "repo http://***@h3\nnext line @home"},
		{"URL in angle brackets", "<https://u:p@h/x>", "<https://***@h/x>"},
		{"percent-encoded", "fetching from https://bob:p%40ss@host/r.git failed", "fetching from https://***@host/r.git failed"},
		{"no URL", "authentication required: unauthorized", "authentication required: unauthorized"},
		{"URL without user info", "see https://host/a@b and mail me@example.com", "see https://host/a@b and mail me@example.com"},
		{"ssh user kept", "ssh: handshake failed for ssh://git@host:22/r", "ssh: handshake failed for ssh://git@host:22/r"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Text(tt.in); got != tt.want {
				t.Errorf("Text(%q)\n = %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSecretsAndScrub(t *testing.T) {
	tests := []struct {
		name    string
		url     string
		secrets []string
		text    string // scrubbed with the URL's secrets
		want    string
	}{
		{"password, user not secret beside it", "http://kaylee:s3cretPW@host/r", []string{"s3cretPW"},
			"server said: bad password s3cretPW for kaylee in /var/lib/kaylee", "server said: bad password *** for kaylee in /var/lib/kaylee"},
		{"token as user beside a dummy password", "https://glpat-AAAAAAAAAAAAAAAAAAAA:x-oauth-basic@host/r",
			[]string{"glpat-AAAAAAAAAAAAAAAAAAAA", "x-oauth-basic"}, "glpat-AAAAAAAAAAAAAAAAAAAA refused", "*** refused"},
		{"token as user", "https://ghp_AAAAAAAA@host/r", []string{"ghp_AAAAAAAA"},
			"token ghp_AAAAAAAA refused", "token *** refused"},
		{"percent-encoded: every form", "https://bob:p%40ss%2Fw0rd@host/r", []string{"p%40ss%2Fw0rd", "p@ss%2Fw0rd", "p@ss/w0rd"},
			"a p@ss/w0rd b p%40ss%2Fw0rd c p@ss%2Fw0rd", "a *** b *** c ***"},
		{"ssh: the user is an account", "ssh://git:hunter22@host/r", []string{"hunter22"},
			"git said hunter22", "git said ***"},
		{"scp-like password", "deploy:hunter22@host:org/r", []string{"hunter22"}, "x hunter22", "x ***"},
		{"scp-like without password", "git@host:org/r", nil, "git@host:org/r", "git@host:org/r"},
		{"short parts left out", "http://ab:cd@host/r", nil, "ab cd", "ab cd"},
		{"no user info", "https://host/r", nil, "https://host/r", "https://host/r"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Secrets(tt.url)
			if !sameSet(got, tt.secrets) {
				t.Errorf("Secrets(%q) = %q, want %q", tt.url, got, tt.secrets)
			}
			if s := Scrub(tt.text, got); s != tt.want {
				t.Errorf("Scrub(%q) = %q, want %q", tt.text, s, tt.want)
			}
		})
	}
}

func sameSet(a, b []string) bool {
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	n := map[string]bool{}
	for _, x := range b {
		n[x] = true
	}
	return reflect.DeepEqual(m, n)
}

// Forms puts the longer of two overlapping secrets first, so that it is
// masked whole.
func TestFormsLongestFirst(t *testing.T) {
	f := Forms("abcd", "abcdefgh")
	if f[0] != "abcdefgh" {
		t.Fatalf("Forms = %q", f)
	}
	if got := Scrub("x abcdefgh y", f); strings.Contains(got, "efgh") {
		t.Errorf("Scrub = %q", got)
	}
}
