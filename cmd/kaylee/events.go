package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kaylee-gitops/kaylee/store"
)

func (a *app) eventsCommand() *cobra.Command {
	var (
		output string
		follow bool
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "events [NAME] [-f] [-o text|json]",
		Short: "Show what Kaylee did and why: syncs, fleet calls, rollouts",
		Long: `Events lists what Kaylee did, oldest first, from the event log in etcd
(<etcd-prefix>/events): each source's syncs (a revision applied, a unit stored
or pruned, a pass that failed or was refused, and its recovery), the
scheduler's fleet calls (a fleet unit created, stopped, destroyed, or
launched again after it was stopped by hand: drift repaired) with the reason,
and rollouts (started, succeeded, failed, rolled back).

NAME keeps the events about a unit or a source. Each event lives 24 hours
and the log keeps about the newest 2000. -f prints new events as they are written
until interrupted; with -o json, events are JSON objects, an array without -f
and one per line with it.`,
		Example: `  kaylee events
  kaylee events countly -f
  kaylee events -o json | jq -r 'select(.kind == "rollout-failed") | .unit'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			return a.withStore(cmd.Context(), func(s *store.Store) error {
				return showEvents(cmd.Context(), s, cmd.OutOrStdout(), name, limit, follow, output)
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events until interrupted")
	cmd.Flags().IntVar(&limit, "limit", 100, "show at most this many of the newest events (0: all)")
	return cmd
}

// eventPrinter prints events in one output format.
type eventPrinter interface {
	print(evs []store.Event) error
	flush() error
}

func newEventPrinter(w io.Writer, output string, follow bool) eventPrinter {
	switch {
	case output == "json" && follow:
		return &jsonLinesPrinter{enc: json.NewEncoder(w)}
	case output == "json":
		return &jsonArrayPrinter{w: w, evs: []store.Event{}}
	}
	return &eventTable{w: w}
}

type jsonLinesPrinter struct{ enc *json.Encoder }

func (p *jsonLinesPrinter) print(evs []store.Event) error {
	for _, e := range evs {
		if err := p.enc.Encode(e); err != nil {
			return err
		}
	}
	return nil
}
func (p *jsonLinesPrinter) flush() error { return nil }

type jsonArrayPrinter struct {
	w   io.Writer
	evs []store.Event
}

func (p *jsonArrayPrinter) print(evs []store.Event) error { p.evs = append(p.evs, evs...); return nil }
func (p *jsonArrayPrinter) flush() error                  { return writeJSON(p.w, p.evs) }

// eventHints: what a person can do about an event of a kind, in the
// CLI's words (library messages name no command or flag).
var eventHints = map[string]string{
	store.EventOriginalLeftAlone: "kaylee migrate --remove-original removes them",
}

// eventTable prints one line per event: time, kind, what, source, who
// did it (a person's user@host, api@address, or the process), message.
type eventTable struct {
	w      io.Writer
	header bool
}

func (p *eventTable) print(evs []store.Event) error {
	if len(evs) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	if !p.header {
		fmt.Fprintln(tw, "TIME\tKIND\tUNIT\tSOURCE\tBY\tMESSAGE")
		p.header = true
	}
	for _, e := range evs {
		what := e.Unit
		if e.FleetUnit != "" {
			what += " (" + e.FleetUnit + ")"
		}
		src := e.Source
		if len(e.Revision) >= 7 {
			src += "@" + e.Revision[:7]
		}
		msg := e.Message
		if hint := eventHints[e.Kind]; hint != "" && msg != "" {
			msg += "; " + hint
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format("15:04:05"), e.Kind, orDash(what), orDash(src),
			orDash(e.By), orDash(strings.ReplaceAll(msg, "\n", " ")))
	}
	return tw.Flush()
}
func (p *eventTable) flush() error {
	if !p.header {
		fmt.Fprintln(p.w, "no events yet: the scheduler and the sync loops write them (kaylee server, agent, sync)")
	}
	return nil
}

// showEvents prints the newest events, and with follow the new ones until
// ctx ends (listing again when the watch is lost).
func showEvents(ctx context.Context, s *store.Store, w io.Writer, name string, limit int, follow bool, output string) error {
	p := newEventPrinter(w, output, follow)
	evs, rev, err := s.ListEvents(ctx, name, limit)
	if err != nil {
		return err
	}
	if err := p.print(evs); err != nil {
		return err
	}
	if !follow {
		return p.flush()
	}
	// IDs sort by time: what follows the last one printed is new.
	last := ""
	if len(evs) > 0 {
		last = evs[len(evs)-1].ID
	}
	printNew := func(e store.Event) error {
		if e.ID <= last {
			return nil
		}
		last = e.ID
		return p.print([]store.Event{e})
	}
	for ctx.Err() == nil {
		for e := range s.WatchEvents(ctx, name, rev) {
			if err := printNew(e); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		// The watch was lost: list again, printing what was missed.
		var again []store.Event
		if again, rev, err = s.ListEvents(ctx, name, 0); err != nil {
			continue
		}
		for _, e := range again {
			if err := printNew(e); err != nil {
				return err
			}
		}
	}
	return nil
}
