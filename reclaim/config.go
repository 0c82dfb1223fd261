// Package reclaim runs a reclaim job: it reads (app id, device id) rows from a CSV file, sends one
// revokeDeviceLicense request per new pair through a rate-limited worker pool, records an outcome per
// row, and keeps a checkpoint so that any later run can finish the job after a stop or a crash.
package reclaim

import (
	"io"
	"net/http"
	"path/filepath"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/rs/zerolog"

	"reclaim/graphclient"
)

// Names of the files a job keeps in its out dir.
const (
	OutcomesFile   = "outcomes.csv"
	SummaryFile    = "summary.csv"
	CheckpointFile = "checkpoint.json"
	DryRunDir      = "dry-run"
)

// SimulatorTarget is the Target of a job run against the built-in simulator.
const SimulatorTarget = "simulator"

// Config describes a run. Rate, Burst, Workers, MaxAttempts, Timeout and OutageAfter must be set, as
// the command line does with the Default values; other zero fields take defaults.
type Config struct {
	// Input is the CSV file of rows to revoke, or a folder whose wave files each run as a job of their
	// own, with its outputs in OutDir/<file name> (see runFolder).
	Input string
	// OutDir holds outcomes.csv, summary.csv and, unless Checkpoint is set, checkpoint.json.
	OutDir string
	// Checkpoint is the checkpoint path; empty means OutDir/checkpoint.json.
	Checkpoint string
	// GraphURL is the Graph root including the version, such as graphclient.DefaultGraphURL.
	GraphURL string
	// Target names what the job sends to in its checkpoint: GraphURL, or SimulatorTarget.
	Target string

	// Rate is the most revoke requests per second the whole pool may start: the run adapts its rate
	// to Graph's throttling below it. Burst is how many may start at once after a quiet spell.
	Rate  float64
	Burst int
	// Workers is the number of requests in flight at most.
	Workers int
	// MaxAttempts is the number of attempts per row, the first one included.
	MaxAttempts int
	// Timeout bounds one request.
	Timeout time.Duration
	// Notify is the default of notifyManagedDevices for rows without a notify cell.
	Notify bool
	// Precheck reads each app's license holders before its revoke requests, and sends none for a
	// device that holds no license. The command line turns it on unless --precheck=false.
	Precheck bool
	// DryRun reads and checks everything and sends nothing.
	DryRun bool
	// Deadline, when positive, stops the run from starting rows after this long.
	Deadline time.Duration
	// Restart moves the outputs of an earlier job aside before starting.
	Restart bool
	// OutageAfter is how long every request may fail with a retryable fault before the run stops as a
	// Graph outage.
	OutageAfter time.Duration
	// Drain is how long in-flight requests may take to finish once the run stops.
	Drain time.Duration

	// Credential provides tokens; nil means graphclient.NewCredential, which also serves as
	// NewCredential.
	Credential    azcore.TokenCredential
	NewCredential func() (azcore.TokenCredential, error)
	// HTTPClient sends the Graph requests; nil means graphclient's own.
	HTTPClient *http.Client
	// LimitMemory sets the Go runtime's soft memory limit for the size of the wave index during the run,
	// unless GOMEMLIMIT is set. The limit applies to the whole process, so only a process that runs
	// nothing but the job should set it, as the command line does.
	LimitMemory bool
	// Version is sent in the User-Agent header.
	Version string

	// Stdout receives the closing summary for people; nil discards it.
	Stdout io.Writer
	// Logger receives the structured log.
	Logger zerolog.Logger

	// CheckpointEvery and ProgressEvery set how often the checkpoint is saved and progress is logged.
	CheckpointEvery time.Duration
	ProgressEvery   time.Duration
	// BackoffBase is the first wait after a fault without Retry-After; it doubles up to BackoffMax.
	BackoffBase time.Duration
	BackoffMax  time.Duration

	// lease contains the timings of the run's leases. Zero fields take defaults, and only tests set them.
	lease leaseOptions
}

// Defaults of Config, which the command line shows in its help.
const (
	DefaultOutDir      = "reclaim-out"
	DefaultRate        = 5.0
	DefaultBurst       = 2
	DefaultWorkers     = 4
	DefaultMaxAttempts = 8
	DefaultOutageAfter = 5 * time.Minute
	DefaultDrain       = 10 * time.Second

	// MinRate and MaxRate bound --rate. The maximum is far above Graph's limit, which the adaptive
	// rate finds by itself, so that a benchmark can measure the client against an unthrottled server.
	MinRate = 0.01
	MaxRate = 100000.0
)

// withDefaults returns cfg with every zero optional field set, or a UsageError naming the first bad value.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Input == "" {
		return cfg, usageErrorf("no input file: give --input FILE, a CSV with app id and device id columns")
	}
	if cfg.OutDir == "" {
		cfg.OutDir = DefaultOutDir
	}
	if cfg.Checkpoint == "" {
		cfg.Checkpoint = filepath.Join(cfg.OutDir, CheckpointFile)
	}
	if cfg.GraphURL == "" {
		cfg.GraphURL = graphclient.DefaultGraphURL
	}
	graphURL, err := graphclient.ParseGraphURL(cfg.GraphURL)
	if err != nil {
		return cfg, &UsageError{Err: err}
	}
	cfg.GraphURL = graphURL.String()
	if cfg.Target == "" {
		cfg.Target = cfg.GraphURL
	}

	// The command line always passes its defaults, so a zero here was given on purpose and is an error.
	// The negated comparison also rejects NaN.
	switch {
	case !(cfg.Rate >= MinRate && cfg.Rate <= MaxRate):
		return cfg, usageErrorf("--rate %g is out of range: give requests per second from %g to %g (Graph allows one app about 5)", cfg.Rate, MinRate, MaxRate)
	case cfg.Burst < 1:
		return cfg, usageErrorf("--burst %d is out of range: give 1 or more", cfg.Burst)
	case cfg.Workers < 1 || cfg.Workers > 256:
		return cfg, usageErrorf("--workers %d is out of range: give 1 to 256", cfg.Workers)
	case cfg.MaxAttempts < 1:
		return cfg, usageErrorf("--max-attempts %d is out of range: give 1 or more", cfg.MaxAttempts)
	case cfg.Timeout <= 0:
		return cfg, usageErrorf("--timeout %v is out of range: give a positive duration such as 30s", cfg.Timeout)
	case cfg.OutageAfter <= 0:
		return cfg, usageErrorf("--outage-after %v is out of range: give a positive duration such as 5m", cfg.OutageAfter)
	case cfg.Deadline < 0:
		return cfg, usageErrorf("--deadline %v is negative: give a positive duration, or 0 for no deadline", cfg.Deadline)
	}
	setDefault(&cfg.Drain, DefaultDrain)
	setDefault(&cfg.CheckpointEvery, 5*time.Second)
	setDefault(&cfg.ProgressEvery, 10*time.Second)
	setDefault(&cfg.BackoffBase, time.Second)
	setDefault(&cfg.BackoffMax, time.Minute)
	if cfg.Stdout == nil {
		cfg.Stdout = io.Discard
	}
	return cfg, nil
}

func setDefault[T comparable](field *T, value T) {
	var zero T
	if *field == zero {
		*field = value
	}
}

func (cfg Config) outcomesPath() string { return filepath.Join(cfg.OutDir, OutcomesFile) }
func (cfg Config) summaryPath() string  { return filepath.Join(cfg.OutDir, SummaryFile) }
