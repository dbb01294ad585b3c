package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	agelib "filippo.io/age"
	"filippo.io/age/armor"
	"github.com/spf13/cobra"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/internal/localtree"
)

func (a *app) secretCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret encrypt|check",
		Short: "Encrypt env values with age for the machines that run them, and check who can decrypt them",
		Long: `A unit's env entry may hold a secret instead of a value: an age file,
ASCII-armored, encrypted to recipients named in the repository's
.kaylee/recipients (a name, an age public key and the fleet machines holding
its identity on each line). Kaylee never sees the clear text: each replica's
machine decrypts it at start with its identity file /etc/kaylee/age/keys.txt
(see Secrets in the README).

  kaylee secret encrypt   writes the env entry to paste into a unit file
  kaylee secret check     says, for each secret, whether one of its recipients
                          is on every machine its unit may run on

Both find .kaylee/recipients at the root of the git repository holding the
current directory (encrypt) or the first PATH given to check, the one kaylee
sync reads with those files; outside any git repository, in the current
directory. --recipients names another file.`,
		Example: `  kaylee secret encrypt --to db --name DB_PASSWORD < pw.txt >> units/db.yaml
  kaylee secret check units/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(a.secretEncryptCommand(), a.secretCheckCommand())
	return cmd
}

// maxSecretValue is the longest value that, encrypted to n recipients
// (X25519 keys, as in .kaylee/recipients) and armored, still fits in
// deploy.MaxSecretLen: 11848 bytes for 1 recipient, 98 fewer for each
// other one (TestMaxSecretValue encrypts them). An age file of a value
// under 64 KiB is its header ("age-encryption.org/v1", a stanza per
// recipient, the MAC line), a nonce, the value and one tag; its armor is
// base64 in lines of 64 columns between the BEGIN and END lines.
func maxSecretValue(n int) int {
	const (
		header  = len("age-encryption.org/v1\n") + len("--- \n") + 43 // 43: 32 bytes, base64 without padding
		stanza  = len("-> X25519 \n\n") + 43 + 43
		payload = 16 + 16 // nonce, tag
		armor   = len("-----BEGIN AGE ENCRYPTED FILE-----\n") + len("-----END AGE ENCRYPTED FILE-----\n")
	)
	armored := func(binary int) int {
		b64 := (binary + 2) / 3 * 4
		return armor + b64 + (b64+63)/64
	}
	binary := deploy.MaxSecretLen
	for binary > 0 && armored(binary) > deploy.MaxSecretLen {
		binary--
	}
	return binary - header - n*stanza - payload
}

func (a *app) secretEncryptCommand() *cobra.Command {
	var (
		to         []string
		recipients string
		name       string
	)
	cmd := &cobra.Command{
		Use:   "encrypt --to NAME[,NAME...] [--name VAR] [--recipients FILE] < VALUE",
		Short: "Encrypt a value read from stdin into a unit's env entry",
		Long: `Encrypt reads a value from stdin, and only from stdin (never from an argument,
which the shell's history and ps would show), encrypts it with age to the public
keys of the recipients named by --to, and prints the env entry to paste into a
unit file: with --name, the whole entry (- name: VAR, secret:, recipients:);
without, its secret: and recipients: lines, to put under an entry's - name:.

ONE trailing newline of the value is dropped (echo's, or a file's last line
end), and stderr says so: "echo s3cret" and "printf s3cret" give the same
secret. systemd drops a value's trailing newlines, so a value that still ends
with one (two newlines at the end of the input) is refused, as is an empty
value. systemd also drops a variable whose value is not valid UTF-8, and
before version 248 one that holds control characters (the process would
start without it): a value with a NUL
byte, bytes that are not UTF-8, or control characters other than newline,
carriage return and tab is refused with the offset of the first such byte;
base64-encode binary data (base64 -w0) and decode it in the process.

The recipients are names of .kaylee/recipients (found at the root of the git
repository holding the current directory, or in the current directory when it
is in none; --recipients names another file). Encrypt to a recipient whose
machines include every machine the unit may run on (kaylee secret check
tells), and add more (an operators' key, to be able to read it back) as you
like. A unit's secret is at most 16384 bytes
armored (deploy's limit; kaylee splits it over several lines of the fleet
unit), so the value is at most 11848 bytes encrypted to 1 recipient, 98 fewer
for each other one (11652 for 3); encrypt refuses a longer one before
encrypting. Every encryption gives another ciphertext: committing one rolls the
unit out like any other change.`,
		Example: `  kaylee secret encrypt --to db --name DB_PASSWORD < pw.txt
  pass show db/prod | kaylee secret encrypt --to db,ops --name DB_PASSWORD >> units/db.yaml
  kaylee secret encrypt --to edge --recipients ../infra/.kaylee/recipients < token.txt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(to) == 0 {
				return errors.New("--to: name the recipients (of .kaylee/recipients) to encrypt to, e.g. --to db")
			}
			file, err := recipientsFile(recipients, []string{"."})
			if err != nil {
				return err
			}
			if file == "" {
				return fmt.Errorf("no %s here nor at the root of the git repository: write one (see Secrets in the README), or give --recipients FILE", deploy.RecipientsFile)
			}
			rs, err := readRecipients(cmd.Context(), file)
			if err != nil {
				return err
			}
			keys, err := recipientKeys(rs, to)
			if err != nil {
				return err
			}
			if f, ok := cmd.InOrStdin().(*os.File); ok {
				if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
					fmt.Fprintln(cmd.ErrOrStderr(), "kaylee: reading the value from the terminal, which shows it as typed: end it with Enter and Ctrl-D (or give it as < FILE)")
				}
			}
			value, dropped, err := readSecretValue(cmd.InOrStdin(), len(keys))
			if err != nil {
				return err
			}
			if dropped {
				fmt.Fprintln(cmd.ErrOrStderr(), "kaylee: the trailing newline of the input was dropped (systemd drops it)")
			}
			entry, err := encryptEntry(value, keys, to, name)
			if err != nil {
				return err
			}
			_, err = io.WriteString(cmd.OutOrStdout(), entry)
			if err == nil && name == "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "kaylee: put these lines under the env entry's - name: line (or give --name VAR for the whole entry)")
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&to, "to", nil, "recipients to encrypt to: names of the recipients file, comma-separated")
	fl.StringVar(&recipients, "recipients", "", "the recipients file (default: "+deploy.RecipientsFile+" at the git repository's root, or here outside one)")
	fl.StringVar(&name, "name", "", "the variable's name: print the whole env entry (- name: VAR)")
	return cmd
}

// recipientKeys are the public keys of the recipients named (each once).
func recipientKeys(rs *deploy.Recipients, names []string) ([]agelib.Recipient, error) {
	var keys []agelib.Recipient
	for i, n := range names {
		n = strings.TrimSpace(n)
		names[i] = n
		r, ok := rs.Get(n)
		if !ok {
			return nil, fmt.Errorf("--to: %q is not a recipient of %s (it names %s)", n, rs.File, strings.Join(rs.Names(), ", "))
		}
		for _, m := range names[:i] {
			if m == n {
				return nil, fmt.Errorf("--to: %s is given twice", n)
			}
		}
		k, err := agelib.ParseX25519Recipient(r.Key)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %w", rs.File, r.Line, n, err) // ParseRecipients checked it
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// readSecretValue reads the value from stdin, bounded, without one
// trailing newline (dropped says whether it had one), and refuses what
// the machine cannot hand to the process as it is (secretValueProblem)
// or what would not fit in a unit once encrypted to recipients keys.
func readSecretValue(in io.Reader, recipients int) (v []byte, dropped bool, err error) {
	limit := maxSecretValue(recipients)
	plural := "s"
	if recipients == 1 {
		plural = ""
	}
	tooLong := fmt.Sprintf("encrypted to %d recipient%s it can be at most %d (a unit's secret is at most %d bytes armored; each further recipient leaves %d bytes less for the value): keep a longer one in a file on the machines and name it in envFiles",
		recipients, plural, limit, deploy.MaxSecretLen, maxSecretValue(1)-maxSecretValue(2))
	v, err = io.ReadAll(io.LimitReader(in, deploy.MaxSecretLen+1))
	if err != nil {
		return nil, false, fmt.Errorf("reading the value from stdin: %w", err)
	}
	if len(v) > deploy.MaxSecretLen {
		return nil, false, fmt.Errorf("the value is over %d bytes; %s", deploy.MaxSecretLen, tooLong)
	}
	v, dropped = bytes.CutSuffix(v, []byte("\n"))
	if len(v) == 0 {
		return nil, false, errors.New("no value on stdin: give it there, e.g. kaylee secret encrypt --to db < pw.txt")
	}
	if err := secretValueProblem(v); err != nil {
		return nil, false, err
	}
	if len(v) > limit {
		return nil, false, fmt.Errorf("the value is %d bytes; %s", len(v), tooLong)
	}
	return v, dropped, nil
}

// secretValueProblem says why systemd would not hand v to the process as
// it is: the machine writes it to an environment file, and systemd drops
// a variable whose value is not valid UTF-8, and before version 248 one
// that holds control characters other than newline and tab (carriage
// return is taken here: the cluster's systemd passes it), and drops a
// value's trailing newlines.
func secretValueProblem(v []byte) error {
	if n := len(v) - len(bytes.TrimRight(v, "\n")); n > 0 {
		return fmt.Errorf("the value ends with %d newlines: systemd drops a value's trailing newlines, so the process would not get them; one (echo's) is dropped here: give the value without the others", n+1)
	}
	for i := 0; i < len(v); {
		r, size := utf8.DecodeRune(v[i:])
		var what string
		switch {
		case r == utf8.RuneError && size <= 1:
			what = fmt.Sprintf("a byte that is not UTF-8 (%#02x)", v[i])
		case r == 0:
			what = "a NUL byte"
		case (r < 0x20 && r != '\n' && r != '\r' && r != '\t') || r == 0x7f:
			what = fmt.Sprintf("the control character %#02x", r)
		}
		if what != "" {
			return fmt.Errorf("the value has %s at byte offset %d: systemd drops an environment variable whose value is not valid UTF-8 (before version 248 also one holding control characters other than newline and tab), and the process would start without it: base64-encode binary data and decode it in the process", what, i)
		}
		i += size
	}
	return nil
}

// encryptEntry encrypts value to keys (armored) and writes the env entry
// that holds it, checked as deploy checks a unit's: the whole entry with
// a name, else its secret and recipients lines indented under one.
func encryptEntry(value []byte, keys []agelib.Recipient, names []string, name string) (string, error) {
	var armored bytes.Buffer
	aw := armor.NewWriter(&armored)
	w, err := agelib.Encrypt(aw, keys...)
	if err != nil {
		return "", fmt.Errorf("encrypting: %w", err)
	}
	if _, err := w.Write(value); err != nil {
		return "", fmt.Errorf("encrypting: %w", err)
	}
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("encrypting: %w", err)
	}
	if err := aw.Close(); err != nil {
		return "", fmt.Errorf("encrypting: %w", err)
	}
	fields := "  secret: |\n    " + strings.ReplaceAll(strings.TrimSpace(armored.String()), "\n", "\n    ") +
		"\n  recipients: [" + strings.Join(names, ", ") + "]\n"
	check := name
	if check == "" {
		check = "SECRET"
	}
	unit := "name: check\nengine: docker\napps:\n- image: docker://check\nenv:\n- name: " + check + "\n" + fields
	if _, err := deploy.Load("entry", []byte(unit)); err != nil {
		var msgs []string
		for _, fe := range deploy.FieldErrors(err) {
			switch {
			case fe.Field == "env[0].name":
				msgs = append(msgs, fmt.Sprintf("--name %q: %s", name, fe.Msg))
			case strings.HasPrefix(fe.Field, "env[0]."):
				msgs = append(msgs, strings.TrimPrefix(fe.Field, "env[0].")+": "+fe.Msg)
			default:
				msgs = append(msgs, fe.Msg)
			}
		}
		return "", fmt.Errorf("the entry would be refused: %s", strings.Join(msgs, "; "))
	}
	if name == "" {
		return fields, nil
	}
	return "- name: " + name + "\n" + fields, nil
}

func (a *app) secretCheckCommand() *cobra.Command {
	var (
		recipients string
		output     string
	)
	cmd := &cobra.Command{
		Use:   "check [--recipients FILE] [-o text|json] [PATH...]",
		Short: "Say whether each secret can be decrypted on every machine its unit may run on",
		Long: `Check reads unit files as kaylee validate does (PATH..., files or directories;
default: the current directory) and, for each secret, whether one of its
recipients' machines (in .kaylee/recipients) include every machine its unit may
run on: the recipient's metadata must be implied by the unit's machine:
constraints (role=db covers a unit with machine: [role=db], not one that runs
anywhere; * covers every unit). kaylee sync refuses a unit whose secret fails
this, with the same FILE:LINE.

The table has a line per secret: UNIT, VAR, RECIPIENTS, RUNS ON (the unit's
machine constraints), and COVERED BY (the recipients covering them), or the
problem as FILE:LINE: FIELD: WHY. -o json prints the same as a list.

.kaylee/recipients is found at the root of the git repository holding the
first PATH (the nearest directory at or above it with a .git), the one kaylee
sync reads with those files; when the PATH is in no git repository, in the
current directory or at the root of its git repository. --recipients names
another file. A repository with secrets and no recipients file fails each
secret, as kaylee sync does.

Exit codes: 0 every secret can be decrypted where its unit may run (or there
is none); 1 some cannot, or a unit file or the recipients file has errors
(printed on stderr as kaylee validate prints them).

Run it in CI next to kaylee validate.`,
		Example: `  kaylee secret check
  kaylee secret check units/ --recipients .kaylee/recipients
  kaylee secret check -o json | jq -r '.[] | select(.problem) | .problem'`,
		RunE: func(cmd *cobra.Command, paths []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if len(paths) == 0 {
				paths = []string{"."}
			}
			docs, bad, err := loadPathsWarning(cmd.Context(), cmd.ErrOrStderr(), paths, "", false)
			if err != nil {
				return err
			}
			file, err := recipientsFile(recipients, paths)
			if err != nil {
				return err
			}
			var rs *deploy.Recipients
			if file != "" {
				if rs, err = readRecipients(cmd.Context(), file); err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					return exitError{code: 1}
				}
			}
			checks := deploy.CheckSecrets(docs, rs)
			failed := 0
			for _, c := range checks {
				if c.Problem != nil {
					failed++
				}
			}
			if output == "json" {
				err = writeJSON(cmd.OutOrStdout(), secretChecksJSON(checks))
			} else {
				writeSecretChecks(cmd.OutOrStdout(), checks, file)
			}
			if err == nil && (failed > 0 || bad) {
				err = exitError{code: 1}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&recipients, "recipients", "", "the recipients file (default: "+deploy.RecipientsFile+" at the git repository's root, or here outside one)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// secretCheckJSON is a line of kaylee secret check -o json.
type secretCheckJSON struct {
	File       string   `json:"file"`
	Line       int      `json:"line"`
	Unit       string   `json:"unit"`
	Var        string   `json:"var"`
	Recipients []string `json:"recipients"`
	RunsOn     string   `json:"runsOn"`
	CoveredBy  []string `json:"coveredBy"`
	Problem    string   `json:"problem,omitempty"`
}

func secretChecksJSON(checks []deploy.SecretCheck) []secretCheckJSON {
	out := make([]secretCheckJSON, 0, len(checks))
	for _, c := range checks {
		j := secretCheckJSON{File: c.File, Line: c.Line, Unit: c.Unit, Var: c.Var, Recipients: c.Recipients, RunsOn: c.RunsOn, CoveredBy: c.Covering}
		if j.CoveredBy == nil {
			j.CoveredBy = []string{}
		}
		if c.Problem != nil {
			j.Problem = c.Problem.Error()
		}
		out = append(out, j)
	}
	return out
}

// writeSecretChecks prints the table of kaylee secret check and its
// summary; file is the recipients file ("" none).
func writeSecretChecks(w io.Writer, checks []deploy.SecretCheck, file string) {
	if len(checks) == 0 {
		fmt.Fprintln(w, "no secrets in these unit files")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "UNIT\tVAR\tRECIPIENTS\tRUNS ON\tCOVERED BY")
	failed := 0
	for _, c := range checks {
		covered := strings.Join(c.Covering, ", ")
		if c.Problem != nil {
			covered, failed = c.Problem.Error(), failed+1
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Unit, c.Var, orDash(strings.Join(c.Recipients, ", ")), c.RunsOn, covered)
	}
	tw.Flush()
	from := "no recipients file"
	if file != "" {
		from = "recipients from " + file
	}
	if failed == 0 {
		fmt.Fprintf(w, "%s; each of the %d secrets can be decrypted on every machine its unit may run on\n", from, len(checks))
		return
	}
	fmt.Fprintf(w, "%s; %d of the %d secrets cannot be decrypted on every machine their unit may run on\n", from, failed, len(checks))
}

// recipientsFile is the recipients file to use: flag when given; else,
// when paths[0] is in a git repository (the nearest directory at or above
// it holding .git), the deploy.RecipientsFile at its root, the one kaylee
// sync would read with those files, or none when it has none; else the one
// in the current directory, else the one at the root of the git repository
// holding the current directory; "" when there is none.
func recipientsFile(flag string, paths []string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if len(paths) > 0 {
		root, err := gitRoot(paths[0])
		if err != nil || root != "" {
			return rootRecipients(root), err
		}
	}
	if exists(deploy.RecipientsFile) {
		return deploy.RecipientsFile, nil
	}
	root, err := gitRoot(".")
	if err != nil || root == "" {
		return "", err
	}
	return rootRecipients(root), nil
}

// gitRoot is the nearest directory at or above p (a file's: its
// directory's) holding .git, absolute; "" when there is none.
func gitRoot(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	dir := abs
	if st, err := os.Stat(abs); err == nil && !st.IsDir() {
		dir = filepath.Dir(abs)
	}
	for {
		if exists(filepath.Join(dir, ".git")) {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", nil
		}
		dir = up
	}
}

// rootRecipients is the recipients file at the root of a repository,
// relative to the current directory when it is below it; "" when there is
// none.
func rootRecipients(root string) string {
	f := filepath.Join(root, filepath.FromSlash(deploy.RecipientsFile))
	if !exists(f) {
		return ""
	}
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, f); err == nil && !strings.HasPrefix(rel, "..") {
			return rel
		}
	}
	return f
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// readRecipients reads and parses a recipients file, read as an explicit
// file of kaylee validate (regular, bounded); errors name FILE:LINE.
func readRecipients(ctx context.Context, file string) (*deploy.Recipients, error) {
	files, err := localtree.Read(ctx, []string{file})
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, &deploy.FieldError{File: file, Msg: fmt.Sprintf("the recipients file cannot be read: %v", errors.Unwrap(err))}
	}
	if f := files[0]; f.Err != nil {
		return nil, &deploy.FieldError{File: file, Msg: f.Err.Err.Error()}
	}
	return deploy.ParseRecipients(file, files[0].Data)
}

// checkSecretsAgainst runs deploy.CheckSecrets on the valid documents
// with the recipients file found for paths (none: each secret is an
// error, as kaylee sync finds it),
// printing each problem on w as a file error; bad says whether there was
// any (kaylee validate).
func checkSecretsAgainst(ctx context.Context, w io.Writer, docs []*deploy.Document, paths []string) (bad bool, err error) {
	file, err := recipientsFile("", paths)
	if err != nil {
		return false, err
	}
	var rs *deploy.Recipients // none: each secret is an error, as in kaylee sync
	if file != "" {
		rs, err = readRecipients(ctx, file)
	}
	if err != nil {
		for _, fe := range deploy.FieldErrors(err) {
			fmt.Fprintln(w, fe)
		}
		for _, d := range docs {
			if d.Err == nil && d.Spec.HasSecrets() {
				d.Err = fmt.Errorf("%s: its secrets cannot be checked: %w", d.Spec.Name, err)
			}
		}
		return true, nil
	}
	for _, c := range deploy.CheckSecrets(docs, rs) {
		if c.Problem == nil {
			continue
		}
		fmt.Fprintln(w, c.Problem)
		bad = true
		for _, d := range docs {
			if d.Err == nil && d.File == c.File && d.Spec.Name == c.Unit {
				d.Err = c.Problem
			}
		}
	}
	return bad, nil
}
