package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// version is set at link time with -ldflags "-X main.version=v1.2.3".
var version = ""

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// exitError carries an exit code; its message, if any, was already printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// app holds what every command shares: the streams, the environment and the
// global flags.
type app struct {
	io     *stdio
	getenv func(string) string
	etcd   etcdFlags
	// done are run once the command's work ends (see onDone).
	done []func()
}

// onDone has f run when the command's work ends: at the end of run, or
// earlier, when runAgent returns. fleetAPI and v2Keys close their HTTP
// clients' idle connections there, so that none is left open to an etcd
// that is closing (kaylee dev's, which its Close would wait for).
func (a *app) onDone(f func()) { a.done = append(a.done, f) }

// finish runs what onDone was given, once.
func (a *app) finish() {
	done := a.done
	a.done = nil
	for _, f := range done {
		f()
	}
}

// etcdFlags are the global flags to reach etcd.
type etcdFlags struct {
	Endpoints []string
	Prefix    string
	Cert      string
	Key       string
	CA        string
	Username  string
	Password  string // only from KAYLEE_ETCD_PASSWORD, never a flag
}

const envPrefix = "KAYLEE_"

func run(ctx context.Context, args []string, s *stdio, getenv func(string) string) int {
	a := &app{io: s, getenv: getenv}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	err := root.ExecuteContext(ctx)
	a.finish()
	var (
		ee exitError
		se setupError
		ue *usageError
	)
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &se), errors.As(err, &ue) && (ue.cmd.Name() == "sync" || ue.cmd.Name() == "migrate" || ue.cmd.Name() == "plan"):
		fmt.Fprintf(s.err, "kaylee: %v\n", err)
		return exitSetup
	default:
		fmt.Fprintf(s.err, "kaylee: %v\n", err)
		return 1
	}
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "kaylee",
		Short: "GitOps sync agent for fleet clusters on etcd",
		Long: `Kaylee mirrors unit files (YAML) into etcd and schedules them as fleet units.

Every flag can also be set in the environment as KAYLEE_<FLAG>, upper case with
- as _ (for example KAYLEE_ETCD_ENDPOINTS). A flag on the command line wins.
Secrets are read only from the environment or files: KAYLEE_ETCD_PASSWORD,
KAYLEE_GIT_PASSWORD (or --git-password-file), KAYLEE_SSH_PASSPHRASE and
--webhook-secret-file.

Start with: kaylee dev --repo . --path examples`,
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd.Flags(), a.getenv); err != nil {
				return err
			}
			a.etcd.Password = a.getenv(envPrefix + "ETCD_PASSWORD")
			return nil
		},
	}
	pf := root.PersistentFlags()
	pf.StringSliceVar(&a.etcd.Endpoints, "etcd-endpoints", []string{"http://127.0.0.1:4001", "http://127.0.0.1:2379"}, "comma-separated etcd endpoints")
	pf.StringVar(&a.etcd.Prefix, "etcd-prefix", "/kaylee2", "etcd key prefix for Kaylee's data")
	pf.StringVar(&a.etcd.Cert, "etcd-cert", "", "TLS client certificate file for etcd")
	pf.StringVar(&a.etcd.Key, "etcd-key", "", "TLS client key file for etcd")
	pf.StringVar(&a.etcd.CA, "etcd-ca", "", "TLS CA bundle to verify etcd's certificate")
	pf.StringVar(&a.etcd.Username, "etcd-username", "", "etcd user (password from KAYLEE_ETCD_PASSWORD)")

	root.AddCommand(
		a.versionCommand(),
		a.validateCommand(),
		a.renderCommand(),
		a.secretCommand(),
		a.devCommand(),
		a.runCommand(),
		a.lsCommand(),
		a.rmCommand(),
		a.restartCommand(),
		a.historyCommand(),
		a.eventsCommand(),
		a.rollbackCommand(),
		a.suspendCommand(),
		a.resumeCommand(),
		a.freezeCommand(),
		a.unfreezeCommand(),
		a.serverCommand(),
		a.statusCommand(),
		a.sourcesCommand(),
		a.endpointsCommand(),
		a.routesCommand(),
		a.routerCommand(),
		a.evidenceCommand(),
		configHelp(),
		a.syncCommand(),
		a.planCommand(),
		a.agentCommand(),
		a.migrateCommand(),
	)
	addUsageToErrors(root)
	a.registerCompletions(root)
	return root
}

// bindEnv sets every flag not given on the command line from KAYLEE_<FLAG>.
func bindEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" {
			return
		}
		key := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v := getenv(key)
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", key, v, err))
		}
	})
	return errors.Join(errs...)
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print Kaylee's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "kaylee %s\n", versionString())
			return err
		},
	}
}
