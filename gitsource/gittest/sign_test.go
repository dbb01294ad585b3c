package gittest

import "testing"

// The signers sign the way git users do: git itself accepts the
// signatures with the signer's public key, and refuses them without it.
func TestSigners(t *testing.T) {
	gpg := NewGPGSigner(t, "Alice <alice@example.com>")
	ssh := NewSSHSigner(t, "alice@example.com")
	for _, tt := range []struct {
		name    string
		s       Signer
		keyring []byte
		signers []byte
	}{
		{"gpg", gpg, gpg.PublicKey, nil},
		{"ssh", ssh, nil, []byte(ssh.AllowedSigner("") + "\n")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRepo(t)
			rev := r.CommitSigned("signed", tt.s)
			if err := r.GitVerify("verify-commit", rev, tt.keyring, tt.signers); err != nil {
				t.Fatal(err)
			}
			if err := r.GitVerify("verify-commit", rev, nil, nil); err == nil {
				t.Fatal("git accepts the signature without the key")
			}
			r.TagSigned("v1", "v1", tt.s)
			if err := r.GitVerify("verify-tag", "v1", tt.keyring, tt.signers); err != nil {
				t.Fatal(err)
			}
			bad := r.Tamper(rev)
			if err := r.GitVerify("verify-commit", bad, tt.keyring, tt.signers); err == nil {
				t.Fatal("git accepts a tampered commit")
			}
		})
	}
}
