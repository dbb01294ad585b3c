package gitsource

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// Real public keys (ed25519 and ecdsa) and an ed25519 certificate.
const (
	edKey    = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	ecdsaKey = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg="
)

func TestParseAllowedSigners(t *testing.T) {
	utc := func(s string) time.Time {
		tm, err := time.Parse("2006-01-02T15:04:05", s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	type want struct {
		line                    int
		principals, namespaces  string
		validAfter, validBefore time.Time
		keyType                 string
	}
	for _, tt := range []struct {
		name, in string
		want     []want
		wantErr  string
	}{
		{name: "plain, comments and blank lines",
			in:   "# team a\n\n   \nalice@example.com " + edKey + " alice's laptop\n  bob@example.com,*@ops.example.com\t" + ecdsaKey + "\r\n",
			want: []want{{line: 4, principals: "alice@example.com", keyType: "ssh-ed25519"}, {line: 5, principals: "bob@example.com|*@ops.example.com", keyType: "ecdsa-sha2-nistp256"}}},
		{name: "options",
			in:   `alice@example.com namespaces="git,file",valid-after="20240101Z",VALID-BEFORE=20300102150405Z ` + edKey,
			want: []want{{line: 1, principals: "alice@example.com", namespaces: "git|file", validAfter: utc("2024-01-01T00:00:00"), validBefore: utc("2030-01-02T15:04:05"), keyType: "ssh-ed25519"}}},
		{name: "quoted option with a space", in: `a namespaces="git, file" ` + edKey,
			want: []want{{line: 1, principals: "a", namespaces: "git| file", keyType: "ssh-ed25519"}}},
		{name: "no key", in: "\nalice@example.com\n", wantErr: "F:2: no key after the principals"},
		{name: "options and no key", in: `alice namespaces="git"`, wantErr: "F:1: no key after the options"},
		{name: "key type and no key", in: "alice ssh-ed25519", wantErr: `F:1: no key after key type "ssh-ed25519"`},
		{name: "not base64", in: "alice ssh-ed25519 !!!", wantErr: "F:1: key: not base64"},
		{name: "garbage key", in: "alice ssh-ed25519 AAAA", wantErr: "F:1: key: "},
		{name: "wrong key type", in: "alice ssh-rsa " + strings.Fields(edKey)[1], wantErr: `F:1: key type "ssh-rsa" but the key is ssh-ed25519`},
		{name: "cert-authority", in: "*@example.com cert-authority " + edKey, wantErr: "F:1: cert-authority: certificate authorities are not supported"},
		{name: "unknown option", in: "alice no-touch-required " + edKey, wantErr: `F:1: unknown option "no-touch-required"`},
		{name: "empty principal", in: "alice,,bob " + edKey, wantErr: "F:1: an empty principal"},
		{name: "bad time", in: `alice valid-after="2024-01-01" ` + edKey, wantErr: `F:1: valid-after: time "2024-01-01": want YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z]`},
		{name: "before not after after", in: `alice valid-after=20240101Z,valid-before=20240101Z ` + edKey, wantErr: "F:1: valid-before is not after valid-after"},
		{name: "two namespaces options", in: `alice namespaces=git,namespaces=file ` + edKey, wantErr: "F:1: more than one namespaces option"},
		{name: "unterminated quote", in: `alice namespaces="git ` + edKey, wantErr: "F:1: unterminated quote"},
		{name: "trailing comma", in: `alice namespaces=git, ` + edKey, wantErr: "F:1: options end with a comma"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAllowedSigners("F", []byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%d signers, want %d", len(got), len(tt.want))
			}
			for i, w := range tt.want {
				g := got[i]
				if g.Line != w.line || strings.Join(g.Principals, "|") != w.principals || strings.Join(g.Namespaces, "|") != w.namespaces ||
					!g.ValidAfter.Equal(w.validAfter) || !g.ValidBefore.Equal(w.validBefore) || g.Key.Type() != w.keyType {
					t.Errorf("signer %d: %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestMatchList(t *testing.T) {
	for _, tt := range []struct {
		s, list string
		want    bool
	}{
		{"git", "git", true}, {"git", "file", false}, {"git", "file,git", true}, {"git", "g*", true},
		{"git", "g?t", true}, {"git", "*", true}, {"git", "*,!git", false}, {"git", "!file", false},
		{"git", "gi", false}, {"git", "gitx", false}, {"git", "**t", true},
	} {
		if got := matchList(tt.s, strings.Split(tt.list, ",")); got != tt.want {
			t.Errorf("matchList(%q, %q) = %v", tt.s, tt.list, got)
		}
	}
}

// FuzzParseAllowedSigners: any input parses or fails with NAME:LINE:,
// never panics, and what parses has principals and a key.
func FuzzParseAllowedSigners(f *testing.F) {
	for _, seed := range []string{
		"",
		"# comment\n\n",
		"alice@example.com " + edKey,
		"alice@example.com,bob@example.com " + ecdsaKey + " comment here\n",
		`*@example.com namespaces="git,file",valid-after="20240101",valid-before="203001021504Z" ` + edKey,
		"alice cert-authority " + edKey,
		`alice namespaces="git ` + edKey,
		"\"quoted principal\" " + edKey,
		"alice ssh-ed25519 AAAA\r\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		signers, err := ParseAllowedSigners("F", []byte(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "F:") {
				t.Fatalf("error without file and line: %v", err)
			}
			return
		}
		lines := strings.Count(in, "\n") + 1
		for _, s := range signers {
			if len(s.Principals) == 0 || s.Key == nil || s.Line < 1 || s.Line > lines {
				t.Fatalf("parsed %+v from %q", s, in)
			}
			if _, ok := s.Key.(*ssh.Certificate); ok {
				t.Fatalf("certificate accepted from %q", in)
			}
			if !s.ValidAfter.IsZero() && !s.ValidBefore.IsZero() && !s.ValidBefore.After(s.ValidAfter) {
				t.Fatalf("validity %v..%v from %q", s.ValidAfter, s.ValidBefore, in)
			}
		}
	})
}
