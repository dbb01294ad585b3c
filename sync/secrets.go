package sync

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/gitsource"
	"github.com/kaylee-gitops/kaylee/store"
)

// refuseSecrets is the secrets phase of a plan: each secret of a desired
// unit must name recipients of the repository's deploy.RecipientsFile, one
// of which covers every machine the unit may run on
// (deploy.CheckSecrets). A unit with a secret that fails becomes a file
// error at FILE:LINE and is held (it keeps its stored value, or is not
// created: safety rule 1). A recipients file that does not parse is an
// error at its lines, and every unit with a secret is held with it; the
// units without secrets are not concerned.
func refuseSecrets(snap *gitsource.Snapshot, desired map[string]*deploy.Document, held inventory, res *Result) {
	rs, broken := snapshotRecipients(snap, res)
	var docs []*deploy.Document
	for _, d := range desired {
		if d.Spec.HasSecrets() {
			docs = append(docs, d)
		}
	}
	sort.Slice(docs, func(i, j int) bool {
		if docs[i].File != docs[j].File {
			return docs[i].File < docs[j].File
		}
		return docs[i].Line < docs[j].Line
	})
	hold := func(d *deploy.Document) {
		delete(desired, d.Spec.Name)
		held[d.Spec.Name] = d.File
	}
	if broken {
		for _, d := range docs {
			field := firstSecret(&d.Spec)
			res.Errors = append(res.Errors, store.SyncError{File: d.File, Line: d.LineOf(field), Message: fmt.Sprintf(
				"%s: not checked: %s has errors (listed with this one); %s is left as it was until they are fixed", field, deploy.RecipientsFile, d.Spec.Name)})
			hold(d)
		}
		return
	}
	failed := map[string]*deploy.Document{}
	for _, c := range deploy.CheckSecrets(docs, rs) {
		if c.Problem == nil {
			continue
		}
		fe := c.Problem
		res.Errors = append(res.Errors, store.SyncError{File: fe.File, Line: fe.Line, Message: fe.Field + ": " + fe.Msg})
		failed[c.Unit] = desired[c.Unit]
	}
	for _, d := range failed {
		hold(d)
	}
}

// snapshotRecipients parses the snapshot's recipients file: nil when it
// has none; broken when it has one that cannot be read (already among
// the pass's file errors) or parsed (its errors are added to res).
func snapshotRecipients(snap *gitsource.Snapshot, res *Result) (rs *deploy.Recipients, broken bool) {
	for _, fe := range snap.Errors {
		// Unit files from git end in .yaml or .yml; local ones (kaylee
		// plan PATH) name the recipients file as found.
		if strings.HasSuffix(fe.Path, deploy.RecipientsFile) {
			return nil, true
		}
	}
	if snap.Recipients == nil {
		return nil, false
	}
	rs, err := deploy.ParseRecipients(snap.Recipients.Path, snap.Recipients.Data)
	if err == nil {
		return rs, false
	}
	for _, fe := range deploy.FieldErrors(err) {
		msg := fe.Msg
		if fe.Field != "" {
			msg = fe.Field + ": " + msg
		}
		res.Errors = append(res.Errors, store.SyncError{File: fe.File, Line: fe.Line, Message: msg})
	}
	return nil, true
}

// firstSecret is the field of a spec's first secret: "env[2].secret".
func firstSecret(s *deploy.Spec) string {
	for i, e := range s.Env {
		if e.Secret != "" {
			return fmt.Sprintf("env[%d].secret", i)
		}
	}
	return "env"
}
