package deploy

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// Secrets: an env entry's secret is an age file, ASCII-armored, that no
// part of Kaylee can read. It travels as written through etcd, the fleet
// unit and the API; the replica's unit decrypts it on its machine, at
// each start, with the machine's identity file (SecretIdentityFile) and
// Debian's age tool (AgePath), into one file per variable under
// SecretsDir: tmpfs, mode 0600 in a 0700 directory, removed at stop. The
// unit reads the file as an EnvironmentFile= and passes the variable to
// the apps by name (docker and podman -e NAME, rkt --inherit-env).
const (
	// SecretIdentityFile is the age identity file every machine that
	// runs units with secrets holds: one or more AGE-SECRET-KEY-1… lines
	// (the machine's own key and its groups'), root's, mode 0600.
	SecretIdentityFile = "/etc/kaylee/age/keys.txt"
	// AgePath is the age tool on the machines (Debian's package age).
	AgePath = "/usr/bin/age"
	// SecretsDir holds, per instance, a directory of the decrypted
	// variables, one file each.
	SecretsDir = "/run/kaylee/secrets"
)

// secretLinePrefix starts the one line the decrypt step writes to the
// journal when it fails (the evidence's last line then).
const secretLinePrefix = "kaylee-secret:"

// Secret is what can be told of an env entry's secret without an
// identity: the age header's recipient stanzas.
type Secret struct {
	// Stanzas are the types of its recipient stanzas, one per recipient
	// it was encrypted to: all "X25519" (ParseSecret refuses others).
	// Grease stanzas, which stand for no recipient, are left out.
	Stanzas []string
	// Binary is the age file without its armor.
	Binary []byte
}

// errSecretHeaderRead ends the header's inspection (stanzaRecorder).
var errSecretHeaderRead = errors.New("header read")

// stanzaRecorder is an age identity that matches nothing and records the
// stanzas age hands it: age parses (and checks) the header, and asks
// each identity to unwrap its stanzas.
type stanzaRecorder struct{ types []string }

func (r *stanzaRecorder) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	for _, s := range stanzas {
		r.types = append(r.types, s.Type)
	}
	return nil, errSecretHeaderRead
}

// x25519Only ends the errors for a stanza a machine cannot unwrap.
const x25519Only = "a machine decrypts with its X25519 identity only: encrypt it with age -r age1... (or kaylee secret encrypt) to the machines' X25519 recipients"

// isGrease: a stanza type that stands for no recipient. rage (the Rust
// age) adds one of a random type ending in "-grease" to every file, so
// that parsers keep accepting types they do not know; the Go age and
// its plugin protocol's "grease-…" stanzas never reach a file.
func isGrease(typ string) bool { return strings.HasSuffix(typ, "-grease") }

// stanzaProblem says why a machine cannot unwrap a stanza of type typ
// ("": it can, or it is grease).
func stanzaProblem(typ string) string {
	switch {
	case typ == "X25519" || isGrease(typ):
		return ""
	case typ == "scrypt":
		return "is encrypted with a passphrase (age -p); " + x25519Only
	case typ == "ssh-ed25519" || typ == "ssh-rsa":
		return fmt.Sprintf("is encrypted to an %s key; %s", typ, x25519Only)
	default:
		return fmt.Sprintf("is encrypted to a %s recipient (not an age X25519 recipient); %s", typ, x25519Only)
	}
}

// ParseSecret checks that text is an ASCII-armored age file encrypted to
// X25519 recipients only, and tells its recipient stanzas. It never
// decrypts anything.
func ParseSecret(text string) (*Secret, error) {
	t := strings.TrimSpace(text)
	if !strings.HasPrefix(t, armor.Header) {
		if strings.HasPrefix(t, "age-encryption.org/") {
			return nil, errors.New("is a binary age file: give it ASCII-armored (age --armor, or kaylee secret encrypt)")
		}
		return nil, fmt.Errorf("is not an age file: it must start with %q (age --armor, or kaylee secret encrypt)", armor.Header)
	}
	bin, err := io.ReadAll(armor.NewReader(strings.NewReader(t + "\n")))
	if err != nil {
		return nil, fmt.Errorf("is not well-formed ASCII-armored age: %w", err)
	}
	rec := &stanzaRecorder{}
	_, err = age.Decrypt(bytes.NewReader(bin), rec)
	if !errors.Is(err, errSecretHeaderRead) {
		if err == nil {
			err = errors.New("no recipient stanza")
		}
		return nil, fmt.Errorf("has no well-formed age header: %w", err)
	}
	var x25519 []string
	for _, typ := range rec.types {
		if p := stanzaProblem(typ); p != "" {
			return nil, errors.New(p)
		}
		if !isGrease(typ) {
			x25519 = append(x25519, typ)
		}
	}
	if len(x25519) == 0 {
		return nil, errors.New("has no recipient stanza")
	}
	return &Secret{Stanzas: x25519, Binary: bin}, nil
}

// SecretFingerprint names a secret's ciphertext without showing it: the
// first 8 hex digits of its SHA-256 ("age:1a2b3c4d"). A new ciphertext,
// a rotation, has another.
func SecretFingerprint(text string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(text)))
	return "age:" + hex.EncodeToString(sum[:4])
}

// checkSecrets checks the env entries' secrets: exactly one of value and
// secret, a well-formed age file with as many recipient stanzas as
// recipients names, and a line that fits in fleet's limit.
func (c *checker) checkSecret(field string, e EnvVar) {
	if e.Secret == "" {
		if len(e.Recipients) > 0 {
			c.fail(field+".recipients", "recipients are the ones a secret was encrypted to; this entry has no secret")
		}
		return
	}
	if e.Value != "" {
		c.fail(field+".value", "an entry has a value or a secret, not both")
	}
	sec, err := ParseSecret(e.Secret)
	if err != nil {
		c.fail(field+".secret", "%v", err)
		return
	}
	if len(e.Recipients) == 0 {
		c.fail(field+".recipients", "required with a secret: the names (from .kaylee/recipients) it was encrypted to, as kaylee secret encrypt writes them")
		return
	}
	for i, n := range e.Recipients {
		if !recipientNameRe.MatchString(n) {
			c.fail(fmt.Sprintf("%s.recipients[%d]", field, i), "%q is not a recipient name (lowercase letters, digits and -)", n)
		}
		for _, b := range e.Recipients[:i] {
			if b == n {
				c.fail(fmt.Sprintf("%s.recipients[%d]", field, i), "%s is given twice", n)
			}
		}
	}
	if len(sec.Stanzas) != len(e.Recipients) {
		c.fail(field+".recipients", "lists %d recipients (%s) but the secret is encrypted to %d: re-encrypt it with kaylee secret encrypt, which writes both",
			len(e.Recipients), strings.Join(e.Recipients, ", "), len(sec.Stanzas))
	}
	if len(e.Name) > MaxSecretNameLen {
		c.fail(field+".name", "is %d characters; a secret's variable name is at most %d (its decrypt steps repeat it on every line of the unit)", len(e.Name), MaxSecretNameLen)
	}
	if len(e.Secret) > MaxSecretLen {
		c.fail(field+".secret", "is %d bytes; at most %d (an env value is for a password, a token or a key, not a file)", len(e.Secret), MaxSecretLen)
	}
}

// MaxSecretLen bounds a secret's armored text: a TLS key with its
// certificate chain fits.
const MaxSecretLen = 16 << 10

// MaxSecretNameLen bounds a secret variable's name: each of its unit
// lines holds it next to a part of the ciphertext.
const MaxSecretNameLen = 255

// secretWord is a secret as it is rendered: its binary age file, base64.
func secretWord(s *Secret) string { return base64.StdEncoding.EncodeToString(s.Binary) }

// HasSecrets: some env entry of the spec is a secret.
func (s *Spec) HasSecrets() bool {
	for _, e := range s.Env {
		if e.Secret != "" {
			return true
		}
	}
	return false
}

// secretFiles renders an EnvironmentFile= per secret variable: "-",
// because its file is written by a step of the start (secretSteps), after
// systemd read the unit's environment files for the first step (it reads
// them again for every later one).
func (r *renderer) secretFiles() {
	for _, e := range r.spec.Env {
		if e.Secret != "" {
			r.add("Service", "EnvironmentFile", "-"+r.idWord(SecretsDir+"/", "/"+e.Name))
		}
	}
}

// secretSteps renders a decrypt step per secret variable: one
// ExecStartPre each, since a ciphertext is most of a line and fleet's
// lines are bounded. The engines call it as late as they can: just
// before the first command that takes the values (docker run, rkt run,
// podman create), after every cleanup, pull step, fetch and mount, so
// that a decrypted file waits on the machine's tmpfs for no slow step of
// Kaylee's. The engines' own pulls of a missing image (docker run,
// podman create --pull=missing) still come after it.
func (r *renderer) secretSteps() {
	for _, e := range r.spec.Env {
		if e.Secret == "" {
			continue
		}
		sec, err := ParseSecret(e.Secret)
		if err != nil {
			continue // validation refuses it
		}
		dir := r.idWord(SecretsDir+"/", "")
		parts, last := secretChunks(e.Name, secretWord(sec))
		for i, p := range parts {
			r.add("Service", "ExecStartPre", secretPartStep(dir, e.Name, i, p))
		}
		r.add("Service", "ExecStartPre", secretStep(dir, e.Name, last))
	}
}

// secretsRemoved removes the instance's decrypted variables as soon as
// the main process started: systemd read them for it (it reads
// EnvironmentFile= before it forks each command), and a restart decrypts
// them again. They must not wait for the stop: when fleet unloads a
// running unit (fleetctl destroy, a unit unscheduled from a machine that
// left) it removes the unit file at once, and systemd never runs its
// ExecStopPost (seen on the real tier: the file stayed).
func (r *renderer) secretsRemoved() {
	if r.spec.HasSecrets() {
		r.add("Service", "ExecStartPost", joinEscaped(secretsRemoval, r.idWord(SecretsDir+"/", "")))
	}
}

// secretsRemoval is the command of both removals of an instance's
// decrypted variables (secretsRemoved, secretsCleanup).
const secretsRemoval = "/bin/rm -rf"

// IsSecretsCleanup tells whether an Exec line of a rendered unit is one
// of Kaylee's removals of the instance's decrypted secrets: its
// ExecStartPost (no health check) or its ExecStopPost ("-" first).
func IsSecretsCleanup(line string) bool {
	return strings.HasPrefix(strings.TrimPrefix(line, "-"), secretsRemoval+" "+SecretsDir+"/")
}

// secretsCleanup removes the instance's decrypted variables after the
// stop, whatever happened ("-"): a start that failed after its decrypt
// steps never ran ExecStartPost.
func (r *renderer) secretsCleanup() {
	if r.spec.HasSecrets() {
		r.add("Service", "ExecStopPost", joinEscaped("-"+secretsRemoval, r.idWord(SecretsDir+"/", "")))
	}
}

// secretShellFlags start the decrypt and part scripts' bash in
// privileged mode (-p): systemd gives every ExecStartPre the unit's
// Environment= lines, which are the operator's env:, and bash would
// otherwise honour SHELLOPTS=xtrace or a BASH_ENV file there and trace
// the clear value into the journal (and from there into the failure
// evidence). The scripts set their own PATH and locale for the same
// reason (secretScriptEnv).
const secretShellFlags = "-pc"

// secretScriptEnv is the first line of both scripts: the system's
// commands, whatever the unit's PATH, and bytes, whatever its locale
// (the escaping must see every backslash, as systemd's parser does).
const secretScriptEnv = "\nPATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C"

// secretStep is the Exec line decrypting one variable; dir is escaped.
func secretStep(dir, name, b64 string) string {
	return joinEscaped(BashPath+" "+secretShellFlags+" "+secretScriptWord, "kaylee-secret", dir, SecretIdentityFile, name, b64)
}

// secretPartStep is the Exec line that stores the i-th part of a long
// ciphertext for its decrypt step; dir is escaped.
func secretPartStep(dir, name string, i int, b64 string) string {
	return joinEscaped(BashPath+" "+secretShellFlags+" "+secretPartScriptWord, "kaylee-secret-part", dir, name, strconv.Itoa(i), b64)
}

// longestSecretDir is the longest instance directory a unit name allows:
// a secret is split the same way for every replica.
func longestSecretDir() string {
	longest := UnitName{Prefix: strings.Repeat("k", MaxUnitPrefixLen), Name: strings.Repeat("n", MaxNameLen), SpecHash: "12345678", Group: "abcdef", Index: 999}
	return SecretsDir + "/" + longest.InstanceID() + machineIDSpecifier
}

// secretChunks splits a secret's ciphertext into the words of its steps:
// the parts stored first (none when it fits on its decrypt line) and the
// decrypt step's word, "+" first when parts come before it. Every line
// stays under fleet's limit: the room for a word is measured on the
// rendered line (with the space before the word), for the longest
// instance directory. A name too long to leave room for a part gets one
// line, which checkLines refuses (validation refuses such names first).
func secretChunks(name, b64 string) (parts []string, last string) {
	dir := longestSecretDir()
	room := wordRoom(secretStep(dir, name, "x"))
	partRoom := wordRoom(secretPartStep(dir, name, 999, "x"))
	if len(b64) <= room || room < 2 || partRoom < 1 {
		return nil, b64
	}
	last = "+" + b64[len(b64)-(room-1):]
	rest := b64[:len(b64)-(room-1)]
	for len(rest) > 0 {
		n := min(partRoom, len(rest))
		parts, rest = append(parts, rest[:n]), rest[n:]
	}
	return parts, last
}

// wordRoom is how long the last word of an ExecStartPre line may be, given
// the line with a last word of one byte, for the line to fit fleet's limit.
func wordRoom(line string) int {
	return MaxLineLen - 1 - len("ExecStartPre=") - (len(line) - 1)
}

// secretPartScript is run by bash as an ExecStartPre before a long
// secret's decrypt step, with $1 the instance's directory, $2 the
// variable's name, $3 the part's index and $4 the part: it starts (part 0)
// or adds to $1/.$2.b64, which the decrypt step reads and removes.
const secretPartScript = secretScriptEnv + `
set -o pipefail
e=$({ mkdir -p ${1%/*} && mkdir -p -m 0700 $1; } 2>&1 | head -n 1) || { echo "` + secretLinePrefix + ` $2: cannot create the directory $1: $e" >&2; exit 1; }
umask 077
e=$({ if [ $3 = 0 ]; then : >$1/.$2.b64; fi && printf %s $4 >>$1/.$2.b64; } 2>&1 | head -n 1) || { rm -f $1/.$2.b64; echo "` + secretLinePrefix + ` $2: cannot write $1/.$2.b64: $e" >&2; exit 1; }
`

var secretPartScriptWord = "'" + systemdLiteral(secretPartScript) + "'"

// secretScript is run by bash as an ExecStartPre, with $1 the instance's
// directory, $2 the identity file, $3 the variable's name and $4 its age
// file, base64 (or "+" and its end, the rest stored by secretPartScript
// steps in $1/.$3.b64). It writes $1/$3 atomically (a temp file, then mv), 0600
// in a 0700 directory (its parents keep the machine's umask: the
// evidence publisher, not root, reads /run/kaylee/evidence), as an environment file systemd reads: NAME="v"
// with \, ", $ and ` escaped (systemd keeps newlines, carriage returns
// and tabs inside the quotes, and unescapes exactly these four). The
// value reaches the process byte for byte (TestSecretEnvFileValues),
// except: its trailing newlines, all of them, are dropped ($(…) strips
// them); and a value that is not UTF-8 is ignored by systemd (the
// variable is unset, systemd logs why). It never
// prints the value; on failure it writes one line to the journal, which
// starts with secretLinePrefix and says why (no identity file, or age's
// own reason, "no identity matched any of the recipients"), and exits 1:
// the start fails, Restart= tries again, and the rollout stops.
//
// Written for bash; secretScriptWord makes it one word of an Exec line.
// It must not hold a single quote.
const secretScript = secretScriptEnv + `
set -o pipefail
[ -x ` + AgePath + ` ] || { echo "` + secretLinePrefix + ` ` + AgePath + ` is not installed on this machine; install Debian$(printf "\\047")s age package" >&2; exit 1; }
e=$({ mkdir -p ${1%/*} && mkdir -p -m 0700 $1; } 2>&1 | head -n 1) || { echo "` + secretLinePrefix + ` $3: cannot create the directory $1: $e" >&2; exit 1; }
umask 077
[ -r $2 ] || { echo "` + secretLinePrefix + ` $3: this machine has no age identity file $2: put the key of a recipient of $3 there (Secrets in the README of Kaylee)" >&2; exit 1; }
case $4 in +*) c=$(cat $1/.$3.b64)${4#+}; rm -f $1/.$3.b64;; *) c=$4;; esac
v=$(echo $c | base64 -d | ` + AgePath + ` -d -i $2 2>$1/.err) || { echo "` + secretLinePrefix + ` $3: not decrypted with $2: $(head -n 1 $1/.err)" >&2; rm -f $1/.err; exit 1; }
rm -f $1/.err
b=$(printf "\\140")
v=${v//\\/\\\\}; v=${v//\"/\\\"}; v=${v//\$/\\\$}; v=${v//$b/\\$b}
e=$({ t=$(mktemp $1/.s.XXXXXX) && { printf "%s=\"%s\"\n" $3 "$v" >$t && mv -fT $t $1/$3 || { rm -f $t; false; }; }; } 2>&1 | head -n 1) || { echo "` + secretLinePrefix + ` $3: cannot write $1/$3: $e" >&2; exit 1; }
`

var secretScriptWord = "'" + systemdLiteral(secretScript) + "'"

// MaskSecrets replaces, in a unit's env as JSON (a list of entries),
// every secret by its fingerprint: what a field diff shows of it.
func MaskSecrets(env json.RawMessage) json.RawMessage {
	var entries []map[string]json.RawMessage
	if json.Unmarshal(env, &entries) != nil {
		return env
	}
	masked := false
	for _, e := range entries {
		var text string
		if raw, ok := e["secret"]; ok && json.Unmarshal(raw, &text) == nil {
			e["secret"], _ = json.Marshal(SecretFingerprint(text))
			masked = true
		}
	}
	if !masked {
		return env
	}
	out, err := json.Marshal(entries)
	if err != nil {
		return env
	}
	return out
}
