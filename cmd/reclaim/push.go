package main

import (
	"context"
	"errors"
	"flag"
	"net/url"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"reclaim/reclaim"
	"reclaim/report"
)

// defaultPushgatewayJob is the job label of pushed figures unless --pushgateway-job sets another.
const defaultPushgatewayJob = "reclaim"

// pushFlags are the flags that send a run's figures to a Prometheus Pushgateway.
type pushFlags struct {
	url string
	job string
}

func (p *pushFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.url, "pushgateway-url", "", "root `URL` of a Prometheus Pushgateway that gets the run's figures when the run ends (empty: no push); "+
		"https unless the host is loopback, a private CA is trusted through SSL_CERT_FILE, and user:password@ in the URL is sent as basic authentication")
	fs.StringVar(&p.job, "pushgateway-job", defaultPushgatewayJob, "job label `value` of the pushed figures")
}

// runPusher pushes the figures of one run to a Pushgateway. A nil *runPusher pushes nothing.
type runPusher struct {
	target  report.PushTarget
	started time.Time
}

// newPusher checks the push flags and returns a pusher for the job that reads input, or nil when no
// --pushgateway-url is set. The grouping label input is the base name of input, the same on every run of
// the job, so that each push replaces the one before.
func (p pushFlags) newPusher(input string) (*runPusher, error) {
	if p.url == "" {
		return nil, nil
	}
	// The absolute path gives "." and ".." their folder's name.
	if absolute, err := filepath.Abs(input); err == nil {
		input = absolute
	}
	target := report.PushTarget{URL: p.url, Job: p.job, Grouping: map[string]string{"input": filepath.Base(input)}}
	if err := target.Validate(); err != nil {
		return nil, err
	}
	return &runPusher{target: target, started: time.Now()}, nil
}

// push sends the figures of a run that ended with runErr, and logs a failure at warn without changing
// the exit code. It pushes nothing for a dry run, for a run without --input, and for a run that found
// another run holding the job or the folder, since that other run pushes its own figures. A folder
// run that did its work but found one wave busy does push.
func (p *runPusher) push(ctx context.Context, log zerolog.Logger, cfg reclaim.Config, result reclaim.Result, runErr error) {
	var busy *reclaim.BusyError
	if p == nil || cfg.DryRun || cfg.Input == "" || (errors.As(runErr, &busy) && result.Waves == nil) {
		return
	}

	code := reclaim.ExitCode(runErr)
	ended := time.Now()
	figures := report.Figures{
		Summary:     result.Summary,
		SummaryRead: result.Read,
		Duration:    ended.Sub(p.started),
		ExitCode:    code,
		Complete:    result.Summary.Complete && (code == reclaim.ExitOK || code == reclaim.ExitRowsFailed),
		EndedAt:     ended,
	}

	// The push goes out after a SIGTERM too, which has ended ctx; report.Push bounds its time.
	err := report.Push(context.WithoutCancel(ctx), p.target, figures)
	log = log.With().Str("url", redactedURL(p.target.URL)).Str("job", p.target.Job).
		Str("input", p.target.Grouping["input"]).Logger()
	if err != nil {
		log.Warn().Err(err).Msg("push to the Pushgateway failed; the exit code is unchanged")
		return
	}
	log.Info().Int("exit_code", code).Msg("pushed the run's figures to the Pushgateway")
}

// redactedURL returns raw with its password replaced, as url.URL.Redacted does. raw has passed
// report.ParsePushgatewayURL, so it parses.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Redacted()
}
