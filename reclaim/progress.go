package reclaim

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"reclaim/report"
)

// maxSaveFailures is how many checkpoint saves in a row may fail before the run stops. The outcome
// lines still record the work done, but a folder that rejects writes is likely to reject those next.
const maxSaveFailures = 3

// tick saves the checkpoint every CheckpointEvery, logs progress every ProgressEvery and watches for an
// outage, until poolDone is closed.
func (j *job) tick(stopCtx context.Context, poolDone <-chan struct{}) {
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	lastSave, lastProgress := time.Now(), time.Now()
	doneAtLastProgress := j.ledger.finished()
	saveFailures := 0

	for {
		select {
		case <-poolDone:
			return
		case now := <-ticker.C:
			if stopCtx.Err() == nil && j.health.outage() {
				j.stop(errOutage)
			}
			if now.Sub(lastSave) >= j.cfg.CheckpointEvery {
				lastSave = now
				if _, err := j.save(false); err != nil {
					saveFailures++
					j.log.Error().Err(err).Int("failures", saveFailures).Msg("saving the checkpoint failed")
					if saveFailures >= maxSaveFailures {
						j.stop(fmt.Errorf("the checkpoint could not be saved %d times in a row: %w", saveFailures, err))
					}
				} else {
					saveFailures = 0
				}
			}
			if now.Sub(lastProgress) >= j.cfg.ProgressEvery {
				done := j.ledger.finished()
				j.logProgress(done, float64(done-doneAtLastProgress)/now.Sub(lastProgress).Seconds())
				lastProgress, doneAtLastProgress = now, done
			}
		}
	}
}

// logStart adds to event the settings of a run or a dry run, and what the reader found in input.
func logStart(event *zerolog.Event, cfg Config, identity InputIdentity, done int64, input *Input) *zerolog.Event {
	columns, format := input.Columns(), input.Format()
	event = event.
		Str("version", cfg.Version).
		Str("input", identity.Path).
		Int("rows", identity.Rows).
		Int64("rows_done", done).
		Str("out_dir", cfg.OutDir).
		Str("target", cfg.Target).
		Float64("rate", cfg.Rate).
		Int("burst", cfg.Burst).
		Int("workers", cfg.Workers).
		Int("max_attempts", cfg.MaxAttempts).
		Stringer("timeout", cfg.Timeout).
		Stringer("outage_after", cfg.OutageAfter).
		Bool("notify_default", cfg.Notify).
		Bool("dry_run", cfg.DryRun).
		Bool("precheck", cfg.Precheck && !cfg.DryRun).
		Str("app_id_column", columns.AppID.Name).
		Str("device_id_column", columns.DeviceID.Name).
		Str("encoding", format.Encoding).
		Str("delimiter", string(format.Delimiter))
	if columns.Notify.Number > 0 {
		event = event.Str("notify_column", columns.Notify.Name)
	}
	if cfg.Deadline > 0 {
		event = event.Stringer("deadline", cfg.Deadline)
	}
	return event
}

func (j *job) logProgress(done int64, rowsPerSecond float64) {
	event := j.log.Info().
		Int64("rows_done", done).
		Int("rows", j.identity.Rows).
		Float64("percent_read", round(100*float64(j.rowsRead.Load())/float64(max(j.identity.Rows, 1)), 1)).
		Float64("rows_per_second", round(rowsPerSecond, 2)).
		Int64("requests", j.base.Requests+j.client.Sent()).
		Int64("throttled", j.base.Throttled+j.throttled.Load()).
		Float64("rate", round(j.throttle.rate(), 2)).
		Int64("reads", j.base.Reads+j.client.Reads()).
		Int64("retries", j.base.Retries+j.retries.Load()).
		Int64("tokens_rejected", j.base.TokensRejected+j.client.RejectedTokens())
	if pending := int64(j.identity.Rows) - done; rowsPerSecond > 0 {
		event = event.Stringer("eta", (time.Duration(float64(pending)/rowsPerSecond) * time.Second).Round(time.Second))
	}
	event.Msg("progress")
}

// noteForm logs, once, that the client moved to another URL form than the one the run started with.
func (j *job) noteForm() {
	form := int32(j.client.Form())
	if previous := j.form.Swap(form); previous != form {
		j.log.Info().Str("url_form", j.client.Form().String()).
			Msg("Graph has revokeDeviceLicense only at this URL form; using it for the rest of the job")
	}
}

func round(x float64, decimals int) float64 {
	scale := math.Pow(10, float64(decimals))
	return math.Round(x*scale) / scale
}

// summaryOf returns the job's figures as a checkpoint records them.
func summaryOf(cp *Checkpoint) report.Summary {
	return report.Summary{
		Rows:           int64(cp.Input.Rows),
		Counts:         cp.Counts,
		Requests:       cp.Requests,
		Throttled:      cp.Throttled,
		Reads:          cp.Reads,
		ReadsThrottled: cp.ReadsThrottled,
		Retries:        cp.Retries,
		Rejected:       cp.TokensRejected,
		Runs:           cp.Runs,
		Elapsed:        time.Duration(cp.ElapsedSeconds * float64(time.Second)),
		Complete:       cp.Complete,
	}
}

func summaryLog(event *zerolog.Event, s report.Summary) *zerolog.Event {
	event = event.Int64("rows", s.Rows)
	for _, status := range report.Statuses {
		event = event.Int64(string(status), s.Counts.Of(status))
	}
	return event.Int64("pending", s.Pending()).
		Int64("requests", s.Requests).
		Int64("throttled", s.Throttled).
		Int64("retries", s.Retries).
		Int64("tokens_rejected", s.Rejected).
		Bool("complete", s.Complete).
		Stringer("elapsed", s.Elapsed.Round(time.Second))
}

// rowLogger logs rows that are not sent, up to maxLoggedRows of each status; the rest are only in
// outcomes.csv. It is safe for concurrent use.
type rowLogger struct {
	logger zerolog.Logger

	mu     sync.Mutex
	logged map[report.Status]int
}

// maxLoggedRows is how many rows of each status are logged one by one.
const maxLoggedRows = 50

func (l *rowLogger) log(row Row, status report.Status, reason string) {
	l.mu.Lock()
	if l.logged == nil {
		l.logged = map[report.Status]int{}
	}
	l.logged[status]++
	n := l.logged[status]
	l.mu.Unlock()

	switch {
	case n <= maxLoggedRows:
		l.logger.Warn().Int(keyRow, row.Index).Int("line", row.Line).Str(keyAppID, row.AppID).Str(keyDeviceID, row.DeviceID).
			Str(keyStatus, string(status)).Str("reason", reason).Msg("row not sent")
	case n == maxLoggedRows+1:
		l.logger.Warn().Str(keyStatus, string(status)).Msgf("more than %d rows are %s; the rest are only in %s", maxLoggedRows, status, OutcomesFile)
	}
}
