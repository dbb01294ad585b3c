package main

import (
	"fmt"
	"io"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet"
	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/sync"
)

// sourcePlan is what kaylee plan says of one source: its dry pass, and
// where each unit could run.
type sourcePlan struct {
	Source   string            `json:"source"`
	Ref      string            `json:"ref"`
	Revision string            `json:"revision"`
	Units    []unitPlan        `json:"units"`
	Errors   []store.SyncError `json:"errors"`
	Warnings []store.SyncError `json:"warnings,omitempty"`
	res      *sync.Result
}

// unitPlan is one unit's change and placement.
type unitPlan struct {
	Name      string           `json:"name"`
	File      string           `json:"file,omitempty"`
	Change    sync.Action      `json:"change"`
	Diff      []string         `json:"diff,omitempty"`
	Note      string           `json:"note,omitempty"`
	Placement *fleet.Placement `json:"-"`
	// Machines are where it could run; Match and Live count the live
	// machines that match its machine constraints, and all of them.
	Machines []planMachine `json:"machines,omitempty"`
	Match    *int          `json:"match,omitempty"` // nil: not placed (prune, kept)
	Live     *int          `json:"live,omitempty"`
	Notes    []string      `json:"notes,omitempty"`
	Error    *planError    `json:"error,omitempty"`
}

type planMachine struct {
	ID string `json:"id"`
	IP string `json:"ip,omitempty"`
}

// planError is a unit no machine can take, at the field that keeps it off.
type planError struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// newSourcePlan places every unit the pass applies (or keeps: unchanged)
// on cluster.
func newSourcePlan(res *sync.Result, cluster *fleet.Cluster) *sourcePlan {
	sp := &sourcePlan{Source: res.Source, Ref: res.Ref, Revision: res.Revision, Units: []unitPlan{},
		Errors: res.Errors, Warnings: res.Warnings, res: res}
	if sp.Errors == nil {
		sp.Errors = []store.SyncError{}
	}
	for _, c := range res.Changes {
		up := unitPlan{Name: c.Name, File: c.File, Change: c.Action, Diff: c.Diff, Note: c.Note}
		if d := res.Docs[c.Name]; d != nil && c.Action != sync.Prune && c.Action != sync.Kept {
			p := fleet.Place(d, nil, cluster)
			up.Placement, up.Match, up.Live, up.Notes = &p, &p.Match, &p.Live, p.Notes
			for i, m := range p.Machines {
				up.Machines = append(up.Machines, planMachine{ID: m, IP: p.IPs[i]})
			}
			if fe := p.Err; fe != nil {
				up.Error = &planError{File: fe.File, Line: fe.Line, Field: fe.Field, Message: fe.Msg}
			}
		}
		sp.Units = append(sp.Units, up)
	}
	return sp
}

// unschedulable counts the units no machine can take.
func (sp *sourcePlan) unschedulable() int {
	n := 0
	for _, u := range sp.Units {
		if u.Error != nil {
			n++
		}
	}
	return n
}

// write prints the plan: each unit, its diff and where it runs, then the
// pass's summary with the unschedulable count.
func (sp *sourcePlan) write(w io.Writer, named bool) {
	for _, u := range sp.Units {
		writeChange(w, sync.Change{Name: u.Name, Action: u.Change, File: u.File, Diff: u.Diff, Note: u.Note})
		switch p := u.Placement; {
		case p == nil:
		case p.Err != nil:
			fmt.Fprintf(w, "          cannot run: %s\n", p.Err)
		default:
			fmt.Fprintf(w, "          %s\n", p.RunsOn())
		}
		if p := u.Placement; p != nil {
			for _, n := range p.Notes {
				fmt.Fprintf(w, "          note: %s\n", n)
			}
		}
	}
	if named {
		fmt.Fprintf(w, "%s: ", sp.Source)
	}
	summary := sp.res.Summary()
	if n := sp.unschedulable(); n > 0 {
		summary += fmt.Sprintf("; %d can run on no machine", n)
	}
	fmt.Fprintln(w, summary)
}

// writeErrors prints the files' errors, the unschedulable units' (as
// FILE:LINE: FIELD: why) and the warnings, on w (stderr).
func (sp *sourcePlan) writeErrors(w io.Writer) {
	for _, e := range sp.Errors {
		fmt.Fprintln(w, e.String())
	}
	for _, u := range sp.Units {
		if u.Error != nil {
			fmt.Fprintln(w, (&deploy.FieldError{File: u.Error.File, Line: u.Error.Line, Field: u.Error.Field, Msg: u.Error.Message}).Error())
		}
	}
	for _, e := range sp.Warnings {
		fmt.Fprintf(w, "warning: %s\n", e.String())
	}
}
