package gitsource

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// VerifyMode is what is verified: the commit, the tag, or both.
type VerifyMode string

const (
	VerifyHEAD       VerifyMode = "HEAD"       // the commit the ref resolves to
	VerifyTag        VerifyMode = "Tag"        // the annotated tag the ref names
	VerifyTagAndHEAD VerifyMode = "TagAndHEAD" // both
)

// ParseVerifyMode parses head, tag or tagandhead, in any case.
func ParseVerifyMode(s string) (VerifyMode, error) {
	for _, m := range []VerifyMode{VerifyHEAD, VerifyTag, VerifyTagAndHEAD} {
		if strings.EqualFold(s, string(m)) {
			return m, nil
		}
	}
	return "", fmt.Errorf("verification mode %q: want HEAD, Tag or TagAndHEAD", s)
}

// Verify says how revisions are verified before they are used: their
// signatures must be by a key in Keyring (OpenPGP) or AllowedSigners
// (SSH). The fields hold contents, not paths.
type Verify struct {
	Mode VerifyMode
	// Keyring is an armored OpenPGP public keyring; may be empty when
	// AllowedSigners is not.
	Keyring []byte
	// AllowedSigners is an allowed signers file (git's
	// gpg.ssh.allowedSignersFile, see ParseAllowedSigners).
	AllowedSigners []byte
	// KeyringName and AllowedSignersName name the files in errors.
	KeyringName, AllowedSignersName string
}

// ErrUnverified is wrapped by the errors of revisions whose verification
// failed (see VerificationError).
var ErrUnverified = errors.New("revision not verified")

// VerificationError is a revision that failed verification.
type VerificationError struct {
	Revision string // full hash of the commit the ref resolves to
	Ref      string // the ref, resolved: "main", "v1.2"
	Tag      bool   // the tag failed (else the commit)
	Reason   string // e.g. "is not signed"
	Err      error  // the underlying error, if any
}

func (e *VerificationError) Error() string {
	rev := short(e.Revision)
	switch {
	case e.Tag:
		return fmt.Sprintf("tag %s (commit %s) %s", e.Ref, rev, e.Reason)
	case e.Ref == "" || e.Ref == e.Revision:
		return fmt.Sprintf("commit %s %s", rev, e.Reason)
	}
	return fmt.Sprintf("commit %s (%s) %s", rev, e.Ref, e.Reason)
}

// Unwrap gives ErrUnverified and the underlying error.
func (e *VerificationError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrUnverified, e.Err}
	}
	return []error{ErrUnverified}
}

func short(rev string) string {
	if len(rev) > 7 {
		return rev[:7]
	}
	return rev
}

// verifier checks signatures against the configured keys.
type verifier struct {
	mode        VerifyMode
	armored     string // the keyring, for go-git's Verify
	keyring     openpgp.EntityList
	signers     []AllowedSigner
	keyringName string // "keyring team.asc" or "the keyring"
	signersName string // "allowed signers file team.signers" or "the allowed signers file"
	signersFile string // "team.signers" or "allowed signers", for NAME:LINE
}

func newVerifier(v *Verify, ref string) (*verifier, error) {
	mode, err := ParseVerifyMode(string(v.Mode))
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(v.Keyring)) == 0 && len(bytes.TrimSpace(v.AllowedSigners)) == 0 {
		return nil, errors.New("verification needs an OpenPGP keyring or an allowed signers file")
	}
	if mode != VerifyHEAD && (ref == "" || commitRe.MatchString(ref)) {
		return nil, fmt.Errorf("verification mode %s: the ref must name an annotated tag", mode)
	}
	vr := &verifier{mode: mode, keyringName: "the keyring", signersName: "the allowed signers file", signersFile: "allowed signers"}
	if v.KeyringName != "" {
		vr.keyringName = "keyring " + v.KeyringName
	}
	if v.AllowedSignersName != "" {
		vr.signersName = "allowed signers file " + v.AllowedSignersName
		vr.signersFile = v.AllowedSignersName
	}
	if len(bytes.TrimSpace(v.Keyring)) > 0 {
		vr.keyring, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(v.Keyring))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", vr.keyringName, err)
		}
		vr.armored = string(v.Keyring)
	}
	vr.signers, err = ParseAllowedSigners(v.AllowedSignersName, v.AllowedSigners)
	if err != nil {
		return nil, err
	}
	return vr, nil
}

// verify checks the revision: the tag (when it is one and the mode asks)
// and the commit. It returns who signed.
func (v *verifier) verify(t target, c *object.Commit, tag *object.Tag) (string, error) {
	fail := func(isTag bool, reason string, err error) error {
		return &VerificationError{Revision: c.Hash.String(), Ref: t.name, Tag: isTag, Reason: reason, Err: err}
	}
	var who []string
	if v.mode == VerifyTag || v.mode == VerifyTagAndHEAD {
		if !t.ref.IsTag() {
			kind := "not a tag"
			if t.ref.IsBranch() {
				kind = "a branch"
			}
			return "", fail(false, fmt.Sprintf("cannot be verified by a tag: %s is %s; the ref must name an annotated tag", t.name, kind), nil)
		}
		if tag == nil {
			return "", fail(true, "is a lightweight tag: the ref must name an annotated tag, signed", nil)
		}
		signer, reason, err := v.check(tag.PGPSignature, tag.Tagger.When, tag.Verify, tag.EncodeWithoutSignature)
		if reason != "" {
			return "", fail(true, reason, err)
		}
		who = append(who, signer)
	}
	if v.mode == VerifyHEAD || v.mode == VerifyTagAndHEAD {
		signer, reason, err := v.check(c.PGPSignature, c.Committer.When, c.Verify, c.EncodeWithoutSignature)
		if reason != "" {
			return "", fail(false, reason, err)
		}
		who = append(who, signer)
	}
	if len(who) == 2 {
		return "tag by " + who[0] + "; commit by " + who[1], nil
	}
	return who[0], nil
}

// check verifies a signature block of an object signed at when. It
// returns the signer, or why the signature is not accepted.
func (v *verifier) check(sig string, when time.Time, pgpVerify func(string) (*openpgp.Entity, error), encode func(plumbing.EncodedObject) error) (signer, reason string, err error) {
	switch {
	case strings.TrimSpace(sig) == "":
		return "", "is not signed", nil
	case strings.HasPrefix(sig, "-----BEGIN SSH SIGNATURE-----"):
		return v.checkSSH(sig, when, encode)
	case strings.HasPrefix(sig, "-----BEGIN PGP SIGNATURE-----"):
		return v.checkPGP(sig, pgpVerify)
	}
	return "", "has a signature of a kind not supported (only OpenPGP and SSH signatures are verified)", nil
}

func (v *verifier) checkPGP(sig string, pgpVerify func(string) (*openpgp.Entity, error)) (string, string, error) {
	issuer := pgpIssuer(sig)
	if v.keyring == nil {
		return "", fmt.Sprintf("is signed with OpenPGP key %s, but no OpenPGP keyring was given", issuer), nil
	}
	e, err := pgpVerify(v.armored)
	switch {
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return "", fmt.Sprintf("is signed by OpenPGP key %s which is not in %s", issuer, v.keyringName), err
	case err != nil:
		return "", fmt.Sprintf("has a bad OpenPGP signature: %v", err), err
	}
	id := ""
	if pi := e.PrimaryIdentity(); pi != nil {
		id = " (" + pi.Name + ")"
	}
	return "OpenPGP key " + issuer + id, "", nil
}

// pgpIssuer is the fingerprint or key ID of the key that made an armored
// signature, "?" when it does not say.
func pgpIssuer(sig string) string {
	block, err := armor.Decode(strings.NewReader(sig))
	if err != nil {
		return "?"
	}
	p, err := packet.Read(block.Body)
	if err != nil {
		return "?"
	}
	s, ok := p.(*packet.Signature)
	switch {
	case !ok:
		return "?"
	case len(s.IssuerFingerprint) > 0:
		return fmt.Sprintf("%X", s.IssuerFingerprint)
	case s.IssuerKeyId != nil:
		return fmt.Sprintf("0x%016X", *s.IssuerKeyId)
	}
	return "?"
}

func (v *verifier) checkSSH(armored string, when time.Time, encode func(plumbing.EncodedObject) error) (string, string, error) {
	sig, err := sshsig.Unarmor([]byte(armored))
	if err != nil {
		return "", fmt.Sprintf("has an SSH signature that cannot be read: %v", err), err
	}
	fpr := ssh.FingerprintSHA256(sig.PublicKey)
	if len(v.signers) == 0 {
		return "", fmt.Sprintf("is signed with SSH key %s, but no allowed signers file was given", fpr), nil
	}
	var allowed *AllowedSigner
	refusal := ""
	key := sig.PublicKey.Marshal()
	for i := range v.signers {
		s := &v.signers[i]
		if !bytes.Equal(s.Key.Marshal(), key) {
			continue
		}
		why := ""
		switch {
		case s.Namespaces != nil && !matchList("git", s.Namespaces):
			why = fmt.Sprintf("only for namespaces %q, not \"git\"", strings.Join(s.Namespaces, ","))
		case !s.ValidAfter.IsZero() && when.Before(s.ValidAfter):
			why = fmt.Sprintf("only from %s, and it was signed at %s", s.ValidAfter.Format(time.RFC3339), when.Format(time.RFC3339))
		case !s.ValidBefore.IsZero() && !when.Before(s.ValidBefore):
			why = fmt.Sprintf("only before %s, and it was signed at %s", s.ValidBefore.Format(time.RFC3339), when.Format(time.RFC3339))
		}
		if why == "" {
			allowed = s
			break
		}
		if refusal == "" {
			refusal = fmt.Sprintf("is signed with SSH key %s of %s, but %s:%d allows that key %s", fpr, strings.Join(s.Principals, ","), v.signersFile, s.Line, why)
		}
	}
	if allowed == nil {
		if refusal == "" {
			refusal = fmt.Sprintf("is signed with SSH key %s which is not in %s", fpr, v.signersName)
		}
		return "", refusal, nil
	}
	payload := &plumbing.MemoryObject{}
	if err := encode(payload); err != nil {
		return "", fmt.Sprintf("cannot be encoded for verification: %v", err), err
	}
	r, err := payload.Reader()
	if err != nil {
		return "", fmt.Sprintf("cannot be encoded for verification: %v", err), err
	}
	defer r.Close()
	if err := sshsig.Verify(io.Reader(r), sig, allowed.Key, sig.HashAlgorithm, "git"); err != nil {
		return "", fmt.Sprintf("has a bad SSH signature (key %s): %v", fpr, err), err
	}
	return fmt.Sprintf("SSH key %s of %s", fpr, strings.Join(allowed.Principals, ",")), "", nil
}
