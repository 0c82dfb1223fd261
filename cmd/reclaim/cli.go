package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"reclaim/graphclient"
	"reclaim/reclaim"
)

const usage = `reclaim takes iOS VPP app licenses back from Intune managed devices through Microsoft Graph.

Usage:
  reclaim run --input FILE [flags]     revoke the license of every (app id, device id) row of FILE
  reclaim run --input FOLDER [flags]   do the same for each *.csv file in FOLDER, one job per file
  reclaim version                      print the version
  reclaim help                         print this text

Run "reclaim run --help" for the flags. Every flag can also be set in the environment as
RECLAIM_<FLAG> in upper snake case, such as RECLAIM_OUT_DIR; a flag on the command line wins.

Exit codes: 0 complete, every row revoked, not_licensed or duplicate; 1 complete, some rows failed, not_found or
invalid; 2 usage, configuration or input error; 3 authentication or permission failure; 4 stopped
early or out dir busy, run again to resume.
`

// run executes the command in args and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return reclaim.ExitUsage
	}
	switch args[0] {
	case "run":
		return runCommand(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "reclaim", version)
		return reclaim.ExitOK
	case "help", "--help", "-help", "-h":
		fmt.Fprint(stdout, usage)
		return reclaim.ExitOK
	}
	fmt.Fprintf(stderr, "reclaim: unknown command %q\n\n%s", args[0], usage)
	return reclaim.ExitUsage
}

// runFlags are the flags of "reclaim run".
type runFlags struct {
	cfg       reclaim.Config
	simulate  bool
	logFormat string
	logLevel  string
	push      pushFlags
	// fromEnvironment lists the flags whose value came from a RECLAIM_ variable.
	fromEnvironment []string
}

func newRunFlagSet(f *runFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("reclaim run", flag.ContinueOnError)
	c := &f.cfg
	fs.StringVar(&c.Input, "input", "", "CSV `file` of rows to revoke, with app id and device id columns, or a folder whose *.csv files run in name order, each with its outputs in <out-dir>/<file name> (required)")
	fs.StringVar(&c.OutDir, "out-dir", reclaim.DefaultOutDir, "`folder` for outcomes.csv, summary.csv and checkpoint.json")
	fs.StringVar(&c.Checkpoint, "checkpoint", "", "checkpoint `path` (default <out-dir>/checkpoint.json)")
	fs.StringVar(&c.GraphURL, "graph-url", graphclient.DefaultGraphURL, "Graph root `URL`, ending in /beta, the only version with revokeDeviceLicense")
	fs.Float64Var(&c.Rate, "rate", reclaim.DefaultRate, "most revoke requests per second started by all workers together; the run slows down below it when Graph throttles")
	fs.IntVar(&c.Burst, "burst", reclaim.DefaultBurst, "requests that may start at once after a quiet spell")
	fs.IntVar(&c.Workers, "workers", reclaim.DefaultWorkers, "requests in flight at most")
	fs.IntVar(&c.MaxAttempts, "max-attempts", reclaim.DefaultMaxAttempts, "attempts per row, the first one included")
	fs.DurationVar(&c.Timeout, "timeout", graphclient.DefaultTimeout, "time limit of one request")
	fs.BoolVar(&c.Precheck, "precheck", true, "read each app's license holders first and send no revoke for a device without a license (--precheck=false sends every row)")
	fs.BoolVar(&c.Notify, "notify", false, "default of notifyManagedDevices for rows without a notify cell")
	fs.BoolVar(&c.DryRun, "dry-run", false, "read and check every row, write planned outcomes to <out-dir>/dry-run, send nothing; needs no credentials")
	fs.DurationVar(&c.Deadline, "deadline", 0, "stop starting rows after this `duration`, then exit 4 (0: no deadline)")
	fs.BoolVar(&c.Restart, "restart", false, "start the job over, sending every row again: move the earlier job's outputs into <out-dir>/previous-<time> (ignored with --dry-run)")
	fs.DurationVar(&c.OutageAfter, "outage-after", reclaim.DefaultOutageAfter, "stop with exit 4 when every request has failed with a server or network fault for this `duration`")
	fs.BoolVar(&f.simulate, "simulate", false, "run against a Graph simulator started in this process; needs no credentials")
	fs.StringVar(&f.logFormat, "log-format", "", "log `format` on stderr: json or console (default console when stderr is a terminal, else json)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	f.push.register(fs)
	return fs
}

// runUsageFooter ends the help of "reclaim run".
const runUsageFooter = `
Exit codes: 0 complete, every row revoked, not_licensed or duplicate; 1 complete, some rows failed, not_found or
invalid; 2 usage, configuration or input error; 3 authentication or permission failure; 4 stopped
early or out dir busy, run the same command again to resume.
`

// parseRunFlags reads args and then, for every flag not on the command line, its RECLAIM_ variable.
// It writes the help to stdout when args ask for it, and returns flag.ErrHelp.
func parseRunFlags(args []string, stdout io.Writer) (*runFlags, error) {
	f := &runFlags{}
	fs := newRunFlagSet(f)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fmt.Fprint(stdout, "Usage: reclaim run --input FILE|FOLDER [flags]\n\nFlags (each also read from RECLAIM_<FLAG>, such as RECLAIM_OUT_DIR; the command line wins):\n")
		fs.PrintDefaults()
		fmt.Fprint(stdout, runUsageFooter)
		return nil, err
	} else if err != nil {
		return nil, fmt.Errorf("%w; run \"reclaim run --help\" for the flags", err)
	}
	if fs.NArg() > 0 {
		if arg := fs.Arg(0); arg == "true" || arg == "false" {
			return nil, fmt.Errorf("unexpected argument %q: a true/false flag takes its value after =, as in --notify=%s", arg, arg)
		}
		return nil, fmt.Errorf("unexpected argument %q: flags take the form --name value", fs.Arg(0))
	}

	onCommandLine := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { onCommandLine[fl.Name] = true })
	var err error
	fs.VisitAll(func(fl *flag.Flag) {
		name := envName(fl.Name)
		value, ok := os.LookupEnv(name)
		if err != nil || onCommandLine[fl.Name] || !ok {
			return
		}
		if setErr := fs.Set(fl.Name, value); setErr != nil {
			err = fmt.Errorf("environment variable %s=%q is not a valid --%s: %w", name, value, fl.Name, setErr)
			return
		}
		f.fromEnvironment = append(f.fromEnvironment, fl.Name)
	})
	return f, err
}

// envName returns the environment variable of a flag: --out-dir is RECLAIM_OUT_DIR.
func envName(flagName string) string {
	return "RECLAIM_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseRunFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return reclaim.ExitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "reclaim:", err)
		return reclaim.ExitUsage
	}
	log, err := newLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "reclaim:", err)
		return reclaim.ExitUsage
	}

	pusher, err := f.push.newPusher(f.cfg.Input)
	if err != nil {
		log.Error().Err(err).Msg("invalid --pushgateway-url or --pushgateway-job")
		return reclaim.ExitUsage
	}

	if len(f.fromEnvironment) > 0 {
		log.Info().Strs("flags", f.fromEnvironment).Msg("flags set from RECLAIM_ environment variables")
	}
	if slices.Contains(f.fromEnvironment, "restart") && f.cfg.Restart {
		log.Warn().Msg("RECLAIM_RESTART is set, so this run starts the job over and sends every row again; " +
			"remove it from the environment to resume jobs")
	}

	cfg := f.cfg
	cfg.Logger = log
	cfg.Stdout = stdout
	cfg.Version = version
	cfg.LimitMemory = true
	if f.simulate {
		if cfg.GraphURL != graphclient.DefaultGraphURL {
			fmt.Fprintln(stderr, "reclaim: --simulate and --graph-url exclude each other: the simulator has its own URL")
			return reclaim.ExitUsage
		}
		sim, err := startSimulator(&cfg, log)
		if err != nil {
			log.Error().Err(err).Msg("cannot start the simulator")
			return reclaim.ExitUsage
		}
		defer sim.Close()
	}

	result, err := reclaim.Run(ctx, cfg)
	var stop *reclaim.StopError
	var busy *reclaim.BusyError
	switch {
	case err == nil, errors.Is(err, reclaim.ErrRowsFailed):
	case errors.As(err, &stop), errors.As(err, &busy):
		// A planned or expected stop: the next run resumes.
		log.Warn().Err(err).Msg("reclaim stopped")
	default:
		log.Error().Err(err).Msg("reclaim stopped")
	}

	code := reclaim.ExitCode(err)
	lost := leaseLost(result, err)
	if !lost {
		// A run that lost its lease leaves the push to the run that took it, whose figures are current.
		pusher.push(ctx, log, cfg, result, err)
	}
	switch {
	case lost:
		fmt.Fprintln(stdout, "Another run took the job over and goes on with it; nothing to do here.")
	case (code == reclaim.ExitOK || code == reclaim.ExitRowsFailed) && !cfg.DryRun && result.Waves == nil:
		fmt.Fprintf(stdout, "  outcomes      %s\n", filepath.Join(cfg.OutDir, reclaim.OutcomesFile))
	case code == reclaim.ExitAuth:
		fmt.Fprintln(stdout, "Fix the credential or the permission named in the log, then run the same command again to resume.")
	case busy != nil:
		fmt.Fprintln(stdout, "Another run holds the job; run the same command again once it has ended.")
	case code == reclaim.ExitStopped:
		fmt.Fprintln(stdout, "Run the same command again to resume.")
	}
	return code
}

// leaseLost reports whether the run, or one of the waves of a folder run, stopped because its lease
// may have passed to another run.
func leaseLost(result reclaim.Result, err error) bool {
	if reclaim.LeaseLost(err) {
		return true
	}
	for _, wave := range result.Waves {
		if reclaim.LeaseLost(wave.Err) {
			return true
		}
	}
	return false
}

// newLogger returns the zerolog logger for stderr in the given format and level.
func newLogger(stderr io.Writer, format, level string) (zerolog.Logger, error) {
	levels := map[string]zerolog.Level{"debug": zerolog.DebugLevel, "info": zerolog.InfoLevel, "warn": zerolog.WarnLevel, "error": zerolog.ErrorLevel}
	lvl, ok := levels[strings.ToLower(level)]
	if !ok {
		return zerolog.Nop(), fmt.Errorf("--log-level %q is not a level: use debug, info, warn or error", level)
	}
	if format == "" {
		format = "json"
		if isTerminal(stderr) {
			format = "console"
		}
	}
	var out io.Writer
	switch format {
	case "json":
		out = stderr
	case "console":
		out = zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.TimeOnly, NoColor: !isTerminal(stderr)}
	default:
		return zerolog.Nop(), fmt.Errorf("--log-format %q is not a format: use json or console", format)
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger(), nil
}

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	file, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := file.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
