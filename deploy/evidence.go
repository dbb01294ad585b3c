package deploy

import (
	"strings"

	"github.com/coreos/fleet/schema"
)

// EvidenceDir is where a replica leaves its failure evidence on its
// machine: a file named after its fleet unit, written by its
// ExecStopPost (evidenceScript). `kaylee evidence` publishes them to
// etcd.
const EvidenceDir = "/run/kaylee/evidence"

// evidence renders the ExecStopPost step that writes the replica's
// evidence file: how the main process ended, the restart count, its last
// journal lines and its health check's last answer. It holds no user
// value ("-": it never fails the stop); %n is systemd's specifier of the
// unit's name, id the instance ID (an escaped word, see idWord).
func (r *renderer) evidence() {
	r.add("Service", "ExecStopPost", joinEscaped("-"+BashPath+" -c "+evidenceScriptWord, "kaylee-evidence", "%n", r.idWord("", "")))
}

// evidenceScript is run by bash as a replica's last ExecStopPost step,
// with $1 the fleet unit's name and $2 its instance ID. systemd sets
// $SERVICE_RESULT, $EXIT_CODE and $EXIT_STATUS for ExecStopPost. It
// writes, atomically (a temp file, then mv), EvidenceDir/$1 as
// key=value lines: time, result, code, status, restarts, the health
// check's last answer (probe: the last kaylee-health line the health
// check wrote to the journal in this run, which says why it failed; the
// check itself is not changed, so that gathering evidence can never
// change a health result or a unit's room on its lines) and the last 20
// journal lines of this run of the unit ($INVOCATION_ID: systemd starts
// a new one at each restart; a fleet unit's name is reused by a rollback
// or a re-run, its old lines are not this run's), one j= each, cut to 300
// bytes, 4 KiB in all. It
// never writes the environment. Files older than a day in EvidenceDir
// go (the publisher, which only reads them, tells none that old). A clean stop (result success) does not
// replace the record of a failed one: Kaylee stops a replica whose
// rollout failed, and the failure is what must be told.
//
// Written for bash; evidenceScriptWord makes it one word of an Exec line.
// It must not hold a single quote.
const evidenceScript = `
d=` + EvidenceDir + ` f=` + EvidenceDir + `/$1
mkdir -p $d || exit 0
[ "$SERVICE_RESULT" = success ] && [ -s $f ] && ! grep -qx result=success $f && exit 0
journalctl --sync 2>/dev/null
t=$(mktemp $d/.e.XXXXXX) || exit 0
{
	echo time=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	echo result=$SERVICE_RESULT
	echo code=$EXIT_CODE
	echo status=$EXIT_STATUS
	echo restarts=$(systemctl show -p NRestarts --value $1 2>/dev/null)
	p=$(journalctl _SYSTEMD_UNIT=$1 ${INVOCATION_ID:+_SYSTEMD_INVOCATION_ID=$INVOCATION_ID} -o cat --no-pager 2>/dev/null | grep ^kaylee-health: | tail -n 1 | cut -b 1-300)
	[ "$p" ] && echo probe=$p
	journalctl _SYSTEMD_UNIT=$1 ${INVOCATION_ID:+_SYSTEMD_INVOCATION_ID=$INVOCATION_ID} -n 20 -o cat --no-pager 2>/dev/null | tail -n 20 | cut -b 1-300 | tail -c 4096 | sed "s/^/j=/"
} >$t
chmod 0644 $t
mv -f $t $f
find $d -maxdepth 1 -type f -mmin +1440 -delete 2>/dev/null
`

var evidenceScriptWord = "'" + systemdLiteral(evidenceScript) + "'"

// WithoutEvidence is a fleet unit's options without the evidence step:
// the unit file Kaylee rendered before it had one. The scheduler takes a
// fleet unit with that file as current, so that an upgrade restarts no
// unit; the unit gains the step at its next rollout.
func WithoutEvidence(opts []*schema.UnitOption) []*schema.UnitOption {
	out := make([]*schema.UnitOption, 0, len(opts))
	for _, o := range opts {
		if o.Section == "Service" && o.Name == "ExecStopPost" && strings.Contains(o.Value, "' kaylee-evidence %n ") {
			continue
		}
		out = append(out, o)
	}
	return out
}
