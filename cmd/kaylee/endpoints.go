package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

func (a *app) endpointsCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "endpoints NAME [-o text|json]",
		Short: "List the replicas of a unit that serve, from the instance registry",
		Long: `Endpoints lists the instances of a unit in the registry the scheduler keeps in
etcd at <etcd-prefix>/instances/<name>/<instance>: every replica that runs (past
its health check, if it has one) with its machine, IP, metadata, state, since
when, and the unit's ports. A replica leaves the registry before the scheduler
stops it, and the entries vanish when no scheduler leader keeps them (they are
on its session's lease). Other tools follow the registry by watching the prefix:

  etcdctl watch --prefix /kaylee2/instances/web/`,
		Example: `  kaylee endpoints web
  kaylee endpoints web -o json | jq -r '.[] | "\(.machineIP):\(.ports[0].port)"'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return a.withStore(cmd.Context(), func(s *store.Store) error {
				ins, err := s.UnitInstances(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if len(ins) == 0 {
					if _, err := unitStatus(cmd.Context(), s, args[0]); err != nil {
						return err // no such unit
					}
				}
				if output == "json" {
					return writeJSON(cmd.OutOrStdout(), ins)
				}
				if len(ins) == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "no replica of %s serves (see kaylee status %s)\n", args[0], args[0])
					return nil
				}
				writeEndpoints(cmd.OutOrStdout(), ins, time.Now())
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func formatPorts(ports []deploy.Port) string {
	var out []string
	for _, p := range ports {
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		out = append(out, p.Name+"="+strconv.Itoa(p.Port)+"/"+proto)
	}
	return orDash(strings.Join(out, ","))
}

func writeEndpoints(w io.Writer, ins []*store.Instance, now time.Time) {
	sort.Slice(ins, func(i, j int) bool { return ins[i].Instance < ins[j].Instance })
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tMACHINE\tIP\tPORTS\tSPEC\tSTATE\tSINCE\tMETADATA")
	for _, in := range ins {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", in.Instance, shortID(in.MachineID), in.MachineIP, formatPorts(in.Ports),
			in.SpecHash, in.State, age(in.Since, now), orDash(formatMetadata(in.Metadata)))
	}
	tw.Flush()
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
