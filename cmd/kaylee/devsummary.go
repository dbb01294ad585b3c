package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/view"
)

// devSummary prints the units, their phase, git revision and machines, and
// the files that fail in git, each time they change, until ctx ends.
func devSummary(ctx context.Context, s *store.Store, w io.Writer) {
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		all, err := view.AllStatuses(ctx, s)
		if err != nil {
			continue
		}
		records, err := s.ListSyncRecords(ctx)
		if err != nil {
			continue
		}
		controls, err := view.ReadControls(ctx, s)
		if err != nil {
			continue
		}
		if text := formatDevSummary(view.Join(all, records, controls), records); text != last {
			last = text
			fmt.Fprintf(w, "-- %s\n%s", time.Now().Format("15:04:05"), last)
		}
	}
}

// formatDevSummary is dev's table: PHASE is the unit's state (rolled back
// or suspended when kaylee rollback or suspend holds it), RUNNING the
// current spec's replicas, SERVING those of any version that serve,
// REVISION the short git revision the unit runs ("-" for units of kaylee
// run; for a rolled-back unit the one its rollback restored), with a "!"
// when the unit's file fails in git; the file errors of every source
// follow the table.
func formatDevSummary(views []view.Unit, records map[string]*store.SyncRecord) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tPHASE\tRUNNING\tSERVING\tREVISION\tMACHINES")
	for _, v := range views {
		var ips []string
		for _, u := range v.Units {
			if u.ActiveState == "active" && u.SubState == "running" {
				ips = append(ips, u.MachineIP)
			}
		}
		sort.Strings(ips)
		rev := "-"
		if v.Source != "" || v.RolledBack != nil {
			rev = orDash(v.RunsRevision())
			if len(v.GitErrors) > 0 {
				rev += "!"
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d/%d\t%d\t%s\t%s\n", v.Name, v.State, v.Running, v.Desired, v.ServingReplicas(), rev, strings.Join(ips, " "))
	}
	tw.Flush()
	sources := make([]string, 0, len(records))
	for name := range records {
		sources = append(sources, name)
	}
	sort.Strings(sources)
	for _, name := range sources {
		r := records[name]
		if len(r.Errors) == 0 {
			continue
		}
		fmt.Fprintf(&b, "  files failing in git source %s at %s (units marked ! run their last good version):\n", name, shortRev(r.Revision))
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "    %s\n", e.String())
		}
	}
	return b.String()
}
