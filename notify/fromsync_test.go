package notify_test

import (
	"errors"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/notify"
	"github.com/kaylee-gitops/kaylee/store"
	ksync "github.com/kaylee-gitops/kaylee/sync"
)

// A pass that planned changes but wrote none (a safety rule refused it, or
// etcd failed while it wrote) is told, with nothing counted as written:
// its events come from sync.Events as the loop appends them.
func TestPassThatWroteNothingIsTold(t *testing.T) {
	prunes := &ksync.Result{Source: "team", Revision: "abc", Changes: []ksync.Change{
		{Name: "web", Action: ksync.Prune}, {Name: "db", Action: ksync.Prune}}}
	updates := &ksync.Result{Source: "team", Revision: "abc", Changes: []ksync.Change{{Name: "web", Action: ksync.Update}}}
	tests := []struct {
		name       string
		res        *ksync.Result
		err        error
		wantResult string
	}{
		{"a prune refused", prunes, &ksync.RefusedError{Prune: 2, Owned: 2, Source: "team"}, store.AttemptRefused},
		{"etcd failed while writing", updates, errors.New("etcd: writing units: context deadline exceeded"), store.AttemptFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := &store.SyncAttempt{Source: "team", Result: store.AttemptSynced}
			a := ksync.Attempt("team", nil, tt.res, tt.err, time.Now())
			var told []notify.Event
			for _, e := range ksync.Events(tt.res, tt.err, prev, a) {
				if n, ok := notify.FromEvent(e); ok {
					told = append(told, n)
				}
			}
			if len(told) != 1 {
				t.Fatalf("notifications told: %d (%+v), want 1", len(told), told)
			}
			n := told[0]
			if n.Result != tt.wantResult || n.Created+n.Updated+n.Pruned != 0 {
				t.Errorf("told result %q with %d created, %d updated, %d pruned; want %q with nothing written",
					n.Result, n.Created, n.Updated, n.Pruned, tt.wantResult)
			}
		})
	}
}
