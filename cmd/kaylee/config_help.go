package main

import "github.com/spf13/cobra"

// configHelp is the help topic "kaylee help config".
func configHelp() *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "The config file of kaylee agent --config and kaylee sync --config",
		Long: `A config file lists the git sources one process follows and where it sends
notifications. Decoding is strict: an unknown field, a wrong type or a bad
value is an error naming FILE:LINE and the field, and the process does not
start. Relative file names are taken from the file's directory.

  sources:
  - name: team-a                      # required: [a-z0-9._-], its etcd keys
    repo: ssh://git@git.example.com/team-a/units.git   # required
    ref: main                         # branch, tag or commit (default: HEAD)
    path: prod                        # directory of unit files (default: root)
    interval: 1m                      # default: --interval
    timeout: 2m                       # of one pass, fetch and apply (default 2m)
    sshKeyFile: team-a.key            # SSH auth, as --ssh-key
    knownHosts: known_hosts           # as --known-hosts
    insecureSkipHostKeyCheck: false
    username: kaylee                  # HTTPS auth, as --git-username
    passwordFile: team-a.token        # as --git-password-file
    allowEmpty: false                 # a pass may leave the source empty
    maxPrune: 50%                     # share one pass may prune
    allowRewind: false                # apply a revision not descending from the one
                                      # applied (branch moved back, history rewritten)
    conflictsWith: [db, cache-*]      # units of other sources (or kaylee run) this
                                      # source's units may name in conflicts
    suspend: false                    # true: follow nothing, say so in kaylee sources
    freeze:                           # change freezes: new revisions recorded, not applied
    - schedule: "0 18 * * FRI"        # cron: minute hour day-of-month month day-of-week
      duration: 62h                   # each window's length, at most 744h (31 days)
      timeZone: Europe/Berlin         # IANA name (default UTC)
      reason: weekend                 # told with the freeze
    verify:                           # only signed revisions apply
      mode: HEAD                      # HEAD (the commit), Tag (an annotated tag), TagAndHEAD
      allowedSigners: team-a.signers  # SSH signatures: git's gpg.ssh.allowedSignersFile format
      keyring: team-a.asc             # OpenPGP signatures: armored public keys
  notifications:
  - url: https://hooks.example.com/kaylee
    secretFile: notify.secret         # HMAC-SHA256 key of X-Kaylee-Signature-256
    events: [sync, rollout]           # default: both

Each source has its own record (<prefix>/sync/<name>), last attempt
(<prefix>/attempts/<name>), inventory and leader election
(<prefix>/sync-leader/<name>), so one slow or broken source delays no other
and processes with different roles share one etcd. With --config, the
one-source flags (--repo, --path, --source, …) are refused; --cache-dir,
--interval and --force still apply, and --allow-rewind for one run of
kaylee sync --once (a process that keeps running takes allowRewind from the
file only).

A unit's conflicts keep fleet from running it on a machine with the units
they name, whoever made those (fleet's agent unloads the later, in name
order, of two conflicting units). So a unit of a source may name in
conflicts only units of that source (names, or families as db-*), and a
source does not create a unit a unit of another source already conflicts
with; either is a file error at FILE:LINE and the unit stays as it was.
conflictsWith lists the units of other sources (or made with kaylee run)
this source's units may name anyway, and lets other sources create units it
names. Units made with kaylee run are the operator's: their conflicts are
not checked.

freeze lists change freeze windows: each starts at the times its schedule
names, in its time zone, and lasts its duration. While one holds, a pass
fetches and validates the new revision and records it (kaylee sources, a
frozen event and notification) but writes no unit; the scheduler still
repairs drift. A unit file may carry freeze: too (see kaylee freeze).`,
	}
}
