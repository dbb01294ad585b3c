package main

import (
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// --machine-loss-grace reaches the scheduler's options; 5m by default,
// and a duration that is not positive is refused.
func TestMachineLossGraceFlag(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want time.Duration
		err  string
	}{
		{nil, 5 * time.Minute, ""},
		{[]string{"--machine-loss-grace", "30s"}, 30 * time.Second, ""},
		{[]string{"--machine-loss-grace", "-1s"}, 0, "--machine-loss-grace -1s: use a positive duration"},
	} {
		var f schedulerFlags
		fl := pflag.NewFlagSet("server", pflag.ContinueOnError)
		f.register(fl, 10*time.Second)
		if err := fl.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		o, err := f.options()
		switch {
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("%v: error %v, want %q", tt.args, err, tt.err)
		case tt.err == "" && (err != nil || o.MachineLossGrace != tt.want):
			t.Errorf("%v: grace %s (error %v), want %s", tt.args, o.MachineLossGrace, err, tt.want)
		}
	}
}
