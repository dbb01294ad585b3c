package gitsource

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
)

// Signatures made by the real tools (gpg, ssh-keygen through git) are
// accepted or refused as git verify-commit / verify-tag does with the
// same keys, and a refusal names the commit, the ref and the signer or
// the reason.
func TestVerify(t *testing.T) {
	alice := gittest.NewGPGSigner(t, "Alice <alice@example.com>")
	bob := gittest.NewGPGSigner(t, "Bob <bob@example.com>")
	aliceSSH := gittest.NewSSHSigner(t, "alice@example.com")
	mallory := gittest.NewSSHSigner(t, "mallory@example.com")
	teamA := "# team a\n" + aliceSSH.AllowedSigner("") + "\n"
	names := strings.NewReplacer("ALICE_GPG", alice.Fingerprint, "BOB_GPG", bob.Fingerprint,
		"ALICE_SSH", aliceSSH.Fingerprint, "MALLORY_SSH", mallory.Fingerprint)

	tests := []struct {
		name      string
		mode      VerifyMode
		ref       string // "" for main
		signers   string // "" for teamA
		noKeyring bool
		// make commits (and tags) and returns the commit the ref names.
		make func(r *gittest.Repo) string
		// wantErr has REV for the short commit hash; "" for success,
		// and then Verified is wantSigner.
		wantErr, wantSigner string
	}{
		{name: "good OpenPGP commit", mode: VerifyHEAD,
			make:       func(r *gittest.Repo) string { return r.CommitSigned("one", alice) },
			wantSigner: "OpenPGP key ALICE_GPG (Alice <alice@example.com>)"},
		{name: "good SSH commit", mode: VerifyHEAD,
			make:       func(r *gittest.Repo) string { return r.CommitSigned("one", aliceSSH) },
			wantSigner: "SSH key ALICE_SSH of alice@example.com"},
		{name: "unsigned commit", mode: VerifyHEAD,
			make:    func(r *gittest.Repo) string { return r.Commit("one") },
			wantErr: "commit REV (main) is not signed"},
		{name: "SSH key not in allowed signers", mode: VerifyHEAD,
			make:    func(r *gittest.Repo) string { return r.CommitSigned("one", mallory) },
			wantErr: "commit REV (main) is signed with SSH key MALLORY_SSH which is not in allowed signers file team-a.signers"},
		{name: "OpenPGP key not in keyring", mode: VerifyHEAD,
			make:    func(r *gittest.Repo) string { return r.CommitSigned("one", bob) },
			wantErr: "commit REV (main) is signed by OpenPGP key BOB_GPG which is not in keyring team-a.asc"},
		{name: "tampered OpenPGP commit", mode: VerifyHEAD,
			make:    func(r *gittest.Repo) string { return r.Tamper(r.CommitSigned("one", alice)) },
			wantErr: "commit REV (main) has a bad OpenPGP signature: "},
		{name: "tampered SSH commit", mode: VerifyHEAD,
			make:    func(r *gittest.Repo) string { return r.Tamper(r.CommitSigned("one", aliceSSH)) },
			wantErr: "commit REV (main) has a bad SSH signature (key ALICE_SSH): "},
		{name: "SSH key allowed only for files", mode: VerifyHEAD, signers: aliceSSH.AllowedSigner(`namespaces="file"`),
			make:    func(r *gittest.Repo) string { return r.CommitSigned("one", aliceSSH) },
			wantErr: `commit REV (main) is signed with SSH key ALICE_SSH of alice@example.com, but team-a.signers:1 allows that key only for namespaces "file", not "git"`},
		{name: "SSH key allowed for files and git", mode: VerifyHEAD, signers: aliceSSH.AllowedSigner(`namespaces="file,git"`),
			make:       func(r *gittest.Repo) string { return r.CommitSigned("one", aliceSSH) },
			wantSigner: "SSH key ALICE_SSH of alice@example.com"},
		{name: "SSH key valid only before 2000", mode: VerifyHEAD, signers: aliceSSH.AllowedSigner(`valid-before="20000101Z"`),
			make:    func(r *gittest.Repo) string { return r.CommitSigned("one", aliceSSH) },
			wantErr: "commit REV (main) is signed with SSH key ALICE_SSH of alice@example.com, but team-a.signers:1 allows that key only before 2000-01-01T00:00:00Z, and it was signed at "},
		{name: "OpenPGP commit without a keyring", mode: VerifyHEAD, noKeyring: true,
			make:    func(r *gittest.Repo) string { return r.CommitSigned("one", alice) },
			wantErr: "commit REV (main) is signed with OpenPGP key ALICE_GPG, but no OpenPGP keyring was given"},

		{name: "tag signed with SSH", mode: VerifyTag, ref: "v1",
			make: func(r *gittest.Repo) string {
				rev := r.Commit("one")
				r.TagSigned("v1", "release", aliceSSH)
				return rev
			},
			wantSigner: "SSH key ALICE_SSH of alice@example.com"},
		{name: "tag signed with OpenPGP", mode: VerifyTag, ref: "v1",
			make: func(r *gittest.Repo) string {
				rev := r.Commit("one")
				r.TagSigned("v1", "release", alice)
				return rev
			},
			wantSigner: "OpenPGP key ALICE_GPG (Alice <alice@example.com>)"},
		{name: "tag signed by a key not allowed", mode: VerifyTag, ref: "v1",
			make: func(r *gittest.Repo) string {
				rev := r.CommitSigned("one", aliceSSH)
				r.TagSigned("v1", "release", mallory)
				return rev
			},
			wantErr: "tag v1 (commit REV) is signed with SSH key MALLORY_SSH which is not in allowed signers file team-a.signers"},
		{name: "unsigned annotated tag", mode: VerifyTag, ref: "v1",
			make: func(r *gittest.Repo) string {
				rev := r.CommitSigned("one", aliceSSH)
				r.Git("tag", "-a", "v1", "-m", "release")
				return rev
			},
			wantErr: "tag v1 (commit REV) is not signed"},
		{name: "lightweight tag", mode: VerifyTag, ref: "v1",
			make: func(r *gittest.Repo) string {
				rev := r.CommitSigned("one", aliceSSH)
				r.Git("tag", "v1")
				return rev
			},
			wantErr: "tag v1 (commit REV) is a lightweight tag: the ref must name an annotated tag"},
		{name: "tag mode on a branch", mode: VerifyTag, ref: "main",
			make:    func(r *gittest.Repo) string { return r.CommitSigned("one", aliceSSH) },
			wantErr: "commit REV (main) cannot be verified by a tag: main is a branch; the ref must name an annotated tag"},
		{name: "signed tag of a signed commit", mode: VerifyTagAndHEAD, ref: "v1",
			make: func(r *gittest.Repo) string {
				rev := r.CommitSigned("one", alice)
				r.TagSigned("v1", "release", aliceSSH)
				return rev
			},
			wantSigner: "tag by SSH key ALICE_SSH of alice@example.com; commit by OpenPGP key ALICE_GPG (Alice <alice@example.com>)"},
		{name: "signed tag of an unsigned commit", mode: VerifyTagAndHEAD, ref: "v1",
			make: func(r *gittest.Repo) string {
				rev := r.Commit("one")
				r.TagSigned("v1", "release", aliceSSH)
				return rev
			},
			wantErr: "commit REV (v1) is not signed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := gittest.NewRepo(t)
			r.Write(map[string]string{"a.yaml": "name: a\n"})
			rev := tt.make(r)
			ref := tt.ref
			if ref == "" {
				ref = "main"
			}
			v := &Verify{Mode: tt.mode, Keyring: alice.PublicKey, AllowedSigners: []byte(teamA), KeyringName: "team-a.asc", AllowedSignersName: "team-a.signers"}
			if tt.signers != "" {
				v.AllowedSigners = []byte(tt.signers + "\n")
			}
			if tt.noKeyring {
				v.Keyring = nil
			}
			snap, err := fetch(t, Config{URL: r.FileURL(), Ref: tt.ref, Verify: v})

			// What git says with the same keys.
			gitAccepts := true
			if tt.mode != VerifyTag {
				gitAccepts = r.GitVerify("verify-commit", rev, v.Keyring, v.AllowedSigners) == nil
			}
			if tt.mode != VerifyHEAD {
				gitAccepts = gitAccepts && r.GitVerify("verify-tag", ref, v.Keyring, v.AllowedSigners) == nil
			}
			if gitAccepts != (err == nil) {
				t.Errorf("git accepts: %v; Fetch: %v", gitAccepts, err)
			}

			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if want := names.Replace(tt.wantSigner); snap.Revision != rev || snap.Verified != want {
					t.Fatalf("got %s verified %q, want %s verified %q", snap.Revision, snap.Verified, rev, want)
				}
				return
			}
			want := strings.ReplaceAll(names.Replace(tt.wantErr), "REV", rev[:7])
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("error %v, want %q", err, want)
			}
			var ve *VerificationError
			if !errors.Is(err, ErrUnverified) || !errors.As(err, &ve) || ve.Revision != rev || ve.Ref != ref {
				t.Fatalf("error %#v: not an ErrUnverified for %s at %s", err, ref, rev)
			}
		})
	}
}

// A refused revision is refused every time it is asked for, by the same
// Source and by a new one on the same cache (where its objects now
// are); the next good revision is accepted.
func TestVerifyRefusedRevisionStaysRefused(t *testing.T) {
	aliceSSH := gittest.NewSSHSigner(t, "alice@example.com")
	v := &Verify{Mode: VerifyHEAD, AllowedSigners: []byte(aliceSSH.AllowedSigner("")), AllowedSignersName: "team.signers"}
	r := gittest.NewRepo(t)
	r.Write(map[string]string{"a.yaml": "name: a\n"})
	cache := t.TempDir()
	ctx := context.Background()
	s, err := New(Config{URL: r.FileURL(), CacheDir: cache, Verify: v})
	if err != nil {
		t.Fatal(err)
	}

	unsigned := r.Commit("unsigned first")
	want := "commit " + unsigned[:7] + " (main) is not signed"
	for i := range 2 {
		if _, err := s.Fetch(ctx); err == nil || !errors.Is(err, ErrUnverified) || err.Error() != want {
			t.Fatalf("first revision, try %d: %v, want %q", i+1, err, want)
		}
	}

	good := r.CommitSigned("good", aliceSSH)
	snap, err := s.Fetch(ctx)
	if err != nil || snap.Revision != good || snap.Verified != "SSH key "+aliceSSH.Fingerprint+" of alice@example.com" {
		t.Fatalf("good revision: %+v, %v", snap, err)
	}

	r.Write(map[string]string{"b.yaml": "name: b\n"})
	bad := r.Commit("unsigned")
	want = "commit " + bad[:7] + " (main) is not signed"
	other, err := New(Config{URL: r.FileURL(), CacheDir: cache, Verify: v})
	if err != nil {
		t.Fatal(err)
	}
	for i, src := range []*Source{s, s, other, other} {
		if snap, err := src.Fetch(ctx); err == nil || !errors.Is(err, ErrUnverified) || err.Error() != want {
			t.Fatalf("unsigned revision, try %d: %+v, %v, want %q", i+1, snap, err, want)
		}
	}

	r.Write(map[string]string{"c.yaml": "name: c\n"})
	next := r.CommitSigned("good again", aliceSSH)
	snap, err = s.Fetch(ctx)
	if err != nil || snap.Revision != next || fileNames(snap) != "a.yaml,b.yaml,c.yaml" {
		t.Fatalf("next good revision: %+v, %v", snap, err)
	}
}

// Tag verification needs the tag object, also when the commit is in the
// cache already (fetched by a Source following a branch).
func TestVerifyTagWithCommitCached(t *testing.T) {
	aliceSSH := gittest.NewSSHSigner(t, "alice@example.com")
	r := gittest.NewRepo(t)
	r.Write(map[string]string{"a.yaml": "name: a\n"})
	rev := r.Commit("one")
	r.TagSigned("v1", "release", aliceSSH)
	cache := t.TempDir()
	if _, err := fetch(t, Config{URL: r.FileURL(), CacheDir: cache}); err != nil {
		t.Fatal(err)
	}
	v := &Verify{Mode: VerifyTag, AllowedSigners: []byte(aliceSSH.AllowedSigner(""))}
	snap, err := fetch(t, Config{URL: r.FileURL(), Ref: "v1", CacheDir: cache, Verify: v})
	if err != nil || snap.Revision != rev || !strings.HasPrefix(snap.Verified, "SSH key "+aliceSSH.Fingerprint) {
		t.Fatalf("%+v, %v", snap, err)
	}
}

func TestNewVerifyConfig(t *testing.T) {
	aliceSSH := gittest.NewSSHSigner(t, "alice@example.com")
	signers := []byte(aliceSSH.AllowedSigner(""))
	for _, tt := range []struct {
		name, ref string
		v         Verify
		want      string
	}{
		{"unknown mode", "", Verify{Mode: "sometimes", AllowedSigners: signers}, `verification mode "sometimes": want HEAD, Tag or TagAndHEAD`},
		{"no keys", "", Verify{Mode: VerifyHEAD, Keyring: []byte("\n"), AllowedSigners: []byte(" ")}, "verification needs an OpenPGP keyring or an allowed signers file"},
		{"bad keyring", "", Verify{Mode: VerifyHEAD, Keyring: []byte("not a key"), KeyringName: "team-a.asc"}, "keyring team-a.asc: "},
		{"bad allowed signers", "", Verify{Mode: VerifyHEAD, AllowedSigners: append([]byte("# ok\n"), append(signers[:len(signers):len(signers)], "\nbob@example.com frob=1 "+aliceSSH.PublicKey...)...), AllowedSignersName: "team-a.signers"},
			`team-a.signers:3: unknown option "frob=1"`},
		{"tag mode, remote HEAD", "", Verify{Mode: VerifyTag, AllowedSigners: signers}, "verification mode Tag: the ref must name an annotated tag"},
		{"tag mode, commit hash", strings.Repeat("a", 40), Verify{Mode: VerifyTagAndHEAD, AllowedSigners: signers}, "verification mode TagAndHEAD: the ref must name an annotated tag"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{URL: "file:///x", Ref: tt.ref, Verify: &tt.v})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := New(Config{URL: "file:///x", Ref: "v1", Verify: &Verify{Mode: "tagandhead", AllowedSigners: signers}}); err != nil {
		t.Fatal(err)
	}
}

func TestParseVerifyMode(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want VerifyMode
		err  bool
	}{
		{"head", VerifyHEAD, false}, {"HEAD", VerifyHEAD, false}, {"Tag", VerifyTag, false},
		{"TAG", VerifyTag, false}, {"tagandhead", VerifyTagAndHEAD, false}, {"TagAndHEAD", VerifyTagAndHEAD, false},
		{"", "", true}, {"commit", "", true}, {"tag-and-head", "", true},
	} {
		got, err := ParseVerifyMode(tt.in)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("ParseVerifyMode(%q) = %q, %v", tt.in, got, err)
		}
		if err != nil && !strings.Contains(err.Error(), "want HEAD, Tag or TagAndHEAD") {
			t.Errorf("ParseVerifyMode(%q): %v", tt.in, err)
		}
	}
}
