package original

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/coreos/fleet/schema"
)

var (
	unsafeFileChars = regexp.MustCompile(`[^a-zA-Z0-9_.-]`)
	serviceSuffix   = regexp.MustCompile(`\.service$`)
)

// unitOptions collects options in the order they are added.
type unitOptions []*schema.UnitOption

func (o *unitOptions) add(section, name, value string) {
	*o = append(*o, &schema.UnitOption{Section: section, Name: name, Value: value})
}

// options is the original's rkt rendering of one fleet unit: flannel
// dependency, environment, volumes (host paths, systemd mount services or
// volume plugin scripts), the rkt fetch and run lines, stop and clean-up
// lines, restart policy, then X-Fleet placement and conflicts. The ExecStart
// line is rendered as the original rendered it; fleetsim's simulated
// systemd does not run it.
func options(s *spec, name string, conflicts []string) []*schema.UnitOption {
	id := serviceSuffix.ReplaceAllLiteralString(unsafeFileChars.ReplaceAllLiteralString(name, "_"), "")
	uuidFile := "/var/run/kaylee_" + id
	var o unitOptions
	o.add("Unit", "Requires", "flanneld.service")
	o.add("Unit", "After", "flanneld.service")
	for _, f := range s.EnvFiles {
		o.add("Service", "EnvironmentFile", f)
	}
	for _, e := range s.Env {
		o.add("Service", "Environment", strconv.Quote(e.Name+"="+e.Value))
	}
	o.add("Service", "Environment", "KAYLEE_ID="+id)
	o.add("Service", "TimeoutStartSec", "0")
	o.add("Service", "KillMode", "mixed")
	args := volumeArgs(s, &o)
	if s.Net != "" {
		args = append(args, "--net="+s.Net)
	}
	args = append(args, "--insecure-options=image,ondisk", "--inherit-env", "--uuid-file-save="+uuidFile)
	args = append(args, s.Args...)
	for _, a := range s.Apps {
		o.add("Service", "ExecStartPre", "/usr/bin/rkt fetch --insecure-options=image,ondisk "+a.Image)
		exec := ""
		if a.Cmd != "" {
			exec = "--exec=" + strconv.Quote(a.Cmd)
		}
		args = append(args, fmt.Sprintf("%s %s -- %s ---", a.Image, exec, strings.Join(a.Args, " ")))
	}
	o.add("Service", "ExecStart", "/usr/bin/rkt run "+strings.Join(args, " "))
	o.add("Service", "ExecStop", "-/usr/bin/rkt stop --uuid-file="+uuidFile)
	o.add("Service", "ExecStopPost", "-/usr/bin/rkt rm --uuid-file="+uuidFile)
	o.add("Service", "ExecStopPost", "/usr/bin/rkt gc")
	o.add("Service", "ExecStopPost", "/usr/bin/rkt image gc")
	o.add("Service", "Restart", "always")
	o.add("Service", "RestartSec", "30")
	for _, m := range s.Machine {
		o.add("X-Fleet", "MachineMetadata", m)
	}
	if s.MachID != "" {
		o.add("X-Fleet", "MachineID", s.MachID)
	}
	if s.Global {
		o.add("X-Fleet", "Global", "true")
	}
	for _, c := range conflicts {
		o.add("X-Fleet", "Conflicts", c)
	}
	return o
}

// volumeArgs adds the unit options of the spec's volumes and returns their
// rkt run arguments: a volume without driver is a host path; a driver
// systemd-mountservice-X wants X@<id>.service and checks it is active
// before the start; any other driver is a plugin script run with
// "<id> <options>" before the start and "-u <id>" after the stop.
func volumeArgs(s *spec, o *unitOptions) []string {
	var args []string
	for i, v := range s.Volumes {
		vol := fmt.Sprintf("kaylee-volume-%d", i)
		if v.Driver == "" {
			args = append(args, fmt.Sprintf("--volume %s,kind=host,source=%s", vol, strconv.Quote(v.Source)),
				fmt.Sprintf("--mount volume=%s,target=%s", vol, strconv.Quote(v.Path)))
			continue
		}
		if svc, ok := strings.CutPrefix(v.Driver, "systemd-mountservice-"); ok {
			o.add("Unit", "Wants", fmt.Sprintf("%s@%s.service", svc, v.ID))
			o.add("Service", "ExecStartPre", fmt.Sprintf("/usr/bin/systemctl is-active %s@%s.service", svc, v.ID))
			args = append(args, fmt.Sprintf("--volume %s,kind=host,source=/mnt/%s/%s/%s", vol, svc, v.ID, v.Source))
		} else {
			o.add("Service", "ExecStartPre", fmt.Sprintf("/var/lib/kaylee/plugins/volumes/%s %s %s", v.Driver, v.ID, v.Options))
			o.add("Service", "ExecStopPost", fmt.Sprintf("/var/lib/kaylee/plugins/volumes/%s -u %s", v.Driver, v.ID))
			args = append(args, fmt.Sprintf("--volume %s,kind=host,source=/mnt/%s/%s/%s", vol, v.Driver, v.ID, v.Source))
		}
		args = append(args, fmt.Sprintf("--mount volume=%s,target=%s", vol, v.Path))
	}
	return args
}
