package main

import "testing"

// A wrong number of arguments or a bad flag prints the message, the
// command's usage line and where to read more, and exits 1.
func TestUsageOnArgumentErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"restart"}, "kaylee: accepts 1 arg(s), received 0\n" +
			"Usage: kaylee restart NAME [--force] [flags]\nRun 'kaylee restart --help' for more.\n"},
		{[]string{"restart", "a", "b"}, "kaylee: accepts 1 arg(s), received 2\n" +
			"Usage: kaylee restart NAME [--force] [flags]\nRun 'kaylee restart --help' for more.\n"},
		{[]string{"status", "a", "b"}, "kaylee: accepts at most 1 arg(s), received 2\n" +
			"Usage: kaylee status [NAME] [-o text|json] [flags]\nRun 'kaylee status --help' for more.\n"},
		{[]string{"rm"}, "kaylee: requires at least 1 arg(s), only received 0\n" +
			"Usage: kaylee rm NAME... [--force] [flags]\nRun 'kaylee rm --help' for more.\n"},
		{[]string{"render"}, "kaylee: requires at least 1 arg(s), only received 0\n" +
			"Usage: kaylee render [--unit-prefix k2] [--default-engine rkt|docker|podman] [-o text|json] PATH... [flags]\nRun 'kaylee render --help' for more.\n"},
		{[]string{"ls", "x"}, "kaylee: unknown command \"x\" for \"kaylee ls\"\n" +
			"Usage: kaylee ls [-o text|json] [flags]\nRun 'kaylee ls --help' for more.\n"},
		{[]string{"suspend"}, "kaylee: accepts 1 arg(s), received 0\n" +
			"Usage: kaylee suspend NAME [flags]\nRun 'kaylee suspend --help' for more.\n"},
		{[]string{"history", "--nope", "x"}, "kaylee: unknown flag: --nope\n" +
			"Usage: kaylee history NAME [-o text|json] [flags]\nRun 'kaylee history --help' for more.\n"},
		{[]string{"dev", "--machines", "many"}, "kaylee: invalid argument \"many\" for \"--machines\" flag: strconv.ParseInt: parsing \"many\": invalid syntax\n" +
			"Usage: kaylee dev [--repo PATH_OR_URL [--path DIR]] [--fleet-only] [--machines N] [--machine-metadata k=v,k=v]... [flags]\nRun 'kaylee dev --help' for more.\n"},
		{[]string{"--nope"}, "kaylee: unknown flag: --nope\nUsage: kaylee [flags]\nRun 'kaylee --help' for more.\n"},
	}
	for _, tt := range tests {
		r := kaylee(t, nil, tt.args...)
		if r.code != 1 || r.err != tt.want || r.stdout != "" {
			t.Errorf("kaylee %q: exit %d\nstdout %q\nstderr %q\nwant exit 1 and stderr %q", tt.args, r.code, r.stdout, r.err, tt.want)
		}
	}
}
