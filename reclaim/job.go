package reclaim

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"reclaim/graphclient"
	"reclaim/report"
)

// Reasons a run stops before the job is complete.
var (
	errInterrupted = errors.New("interrupted by a signal")
	errDeadline    = errors.New("--deadline reached")
	errOutage      = errors.New("Graph outage: every request failed with a server or network fault")
)

// maxLoggedRows is how many invalid and how many duplicate rows a run logs one by one; the rest are
// only in outcomes.csv.
const maxLoggedRows = 50

// job is one run's work on a job: the input, the Graph client, the worker pool and its shared state.
type job struct {
	cfg      Config
	log      zerolog.Logger
	identity InputIdentity
	// base is the checkpoint at the start of the run, whose counters this run adds to.
	base     Checkpoint
	started  time.Time
	client   *graphclient.Client
	ledger   *ledger
	throttle *throttle
	health   *health
	input    *Input
	pairs    *pairSet

	// stop ends the run early for a reason, which becomes the cause of the run's context.
	stop context.CancelCauseFunc

	throttled  atomic.Int64
	retries    atomic.Int64
	loggedRows [2]atomic.Int64 // invalid, duplicate

	saveMu sync.Mutex
}

func newJob(ctx context.Context, cfg Config, identity InputIdentity, cp *Checkpoint) (*job, error) {
	form, err := graphclient.ParseForm(cp.URLForm)
	if err != nil {
		return nil, damagedCheckpoint(cfg.Checkpoint, err.Error())
	}
	client, err := newClient(ctx, cfg, form)
	if err != nil {
		return nil, err
	}

	j := &job{
		cfg:      cfg,
		log:      cfg.Logger,
		identity: identity,
		base:     *cp,
		client:   client,
		ledger:   newLedger(identity.Rows, cp),
		throttle: newThrottle(cfg.Rate, cfg.Burst),
		health:   &health{outageAfter: cfg.OutageAfter},
		pairs:    newPairSet(),
	}
	log, err := openOutcomeLog(cfg.outcomesPath(), cp, j.ledger.replay)
	if err != nil {
		return nil, err
	}
	j.ledger.attach(log)
	return j, nil
}

// run sends the pending rows and saves the state at every stop.
func (j *job) run(ctx context.Context) error {
	defer j.ledger.close()
	j.started = time.Now()

	input, err := OpenInput(j.cfg.Input, j.cfg.Notify)
	if err != nil {
		return &UsageError{Err: err}
	}
	defer input.Close()
	j.input = input

	startLog(j.log, j.cfg, j.identity, j.ledger.finished()).Str("url_form", j.client.Form().String()).
		Msg("run started")

	// stopCtx ends when rows must no longer start: a signal, the deadline, an outage or a fatal error.
	// Requests already on their way get Drain longer, through requestCtx.
	stopCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	j.stop = stop
	if j.cfg.Deadline > 0 {
		// A timer, not a context deadline: rate.Limiter.Wait fails at once when a context's deadline
		// is nearer than its next token, which would drop rows before the deadline has come.
		deadline := time.AfterFunc(j.cfg.Deadline, func() { stop(errDeadline) })
		defer deadline.Stop()
	}
	requestCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()

	pool, poolCtx := errgroup.WithContext(stopCtx)
	rows := make(chan Row, j.cfg.Workers)
	pool.Go(func() error { return j.feed(poolCtx, rows) })
	for range j.cfg.Workers {
		pool.Go(func() error { return j.work(poolCtx, requestCtx, rows) })
	}

	poolDone := make(chan struct{})
	var tickers sync.WaitGroup
	tickers.Go(func() { j.tick(stopCtx, poolDone) })
	tickers.Go(func() {
		select {
		case <-poolDone:
		case <-stopCtx.Done():
			j.log.Info().Err(context.Cause(stopCtx)).Stringer("drain", j.cfg.Drain).
				Msg("stopping: no new rows, waiting for requests in flight")
			select {
			case <-poolDone:
			case <-time.After(j.cfg.Drain):
				j.log.Warn().Msg("requests still in flight after the drain time; cancelling them, their rows stay pending")
				cancelRequests()
			}
		}
	})

	poolErr := pool.Wait()
	close(poolDone)
	tickers.Wait()

	return j.finish(poolErr, context.Cause(stopCtx))
}

// finish saves the final state, writes the summary and returns the run's result.
func (j *job) finish(poolErr, stopCause error) error {
	cp, saveErr := j.save()
	summary := summaryOf(cp)

	var result error
	switch {
	case poolErr != nil:
		result = poolErr
	case saveErr != nil:
		result = saveErr
	case cp.Complete && cp.ExitCode == ExitRowsFailed:
		result = ErrRowsFailed
	case cp.Complete:
		result = nil
	case errors.Is(stopCause, context.Canceled):
		result = &StopError{Reason: errInterrupted.Error()}
	case stopCause != nil:
		result = &StopError{Reason: stopCause.Error()}
	default:
		result = &StopError{Reason: "internal error: the input ended with rows pending"}
	}

	event := j.log.Info()
	if !cp.Complete {
		event = j.log.Warn()
	}
	summaryLog(event, summary).Str("exit_code", fmt.Sprint(ExitCode(result))).Msg("run ended")
	if err := summary.WriteText(j.cfg.Stdout); err != nil && result == nil {
		result = err
	}
	return result
}

// save writes the checkpoint and summary.csv, after flushing outcomes.csv so that the checkpoint
// vouches only for lines on disk. It returns the checkpoint it saved.
func (j *job) save() (*Checkpoint, error) {
	j.saveMu.Lock()
	defer j.saveMu.Unlock()

	cp := j.base
	j.ledger.snapshot(&cp)
	cp.URLForm = j.client.Form().String()
	cp.Requests = j.base.Requests + j.client.Sent()
	cp.Throttled = j.base.Throttled + j.throttled.Load()
	cp.Retries = j.base.Retries + j.retries.Load()
	cp.Runs = j.base.Runs + 1
	cp.ElapsedSeconds = j.base.ElapsedSeconds + time.Since(j.started).Seconds()
	cp.Complete = cp.DoneThrough == j.identity.Rows
	cp.ExitCode = ExitStopped
	if cp.Complete {
		cp.ExitCode = ExitOK
		if !cp.Counts.AllSucceeded() {
			cp.ExitCode = ExitRowsFailed
		}
	}

	if err := j.ledger.sync(); err != nil {
		return &cp, fmt.Errorf("sync %s: %w", OutcomesFile, err)
	}
	if err := cp.save(j.cfg.Checkpoint); err != nil {
		return &cp, err
	}
	summary := summaryOf(&cp)
	return &cp, writeFileAtomic(j.cfg.summaryPath(), summary.WriteCSV)
}

// tick saves the checkpoint every CheckpointEvery, logs progress every ProgressEvery and watches for an
// outage, until poolDone is closed.
func (j *job) tick(stopCtx context.Context, poolDone <-chan struct{}) {
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	lastSave, lastProgress := time.Now(), time.Now()
	doneAtLastProgress := j.ledger.finished()

	for {
		select {
		case <-poolDone:
			return
		case now := <-ticker.C:
			if stopCtx.Err() == nil && j.health.outage() {
				j.stop(errOutage)
			}
			if now.Sub(lastSave) >= j.cfg.CheckpointEvery {
				if _, err := j.save(); err != nil {
					j.log.Error().Err(err).Msg("saving the checkpoint failed; will try again")
				}
				lastSave = now
			}
			if now.Sub(lastProgress) >= j.cfg.ProgressEvery {
				done := j.ledger.finished()
				j.logProgress(done, float64(done-doneAtLastProgress)/now.Sub(lastProgress).Seconds())
				lastProgress, doneAtLastProgress = now, done
			}
		}
	}
}

func (j *job) logProgress(done int64, rowsPerSecond float64) {
	percentRead := 100.0
	if size := j.input.Size(); size > 0 {
		percentRead = 100 * float64(j.input.Offset()) / float64(size)
	}
	event := j.log.Info().
		Int64("rows_done", done).
		Int("rows", j.identity.Rows).
		Str("percent_read", fmt.Sprintf("%.1f", percentRead)).
		Str("rows_per_second", fmt.Sprintf("%.2f", rowsPerSecond)).
		Int64("requests", j.base.Requests+j.client.Sent()).
		Int64("throttled", j.base.Throttled+j.throttled.Load()).
		Int64("retries", j.base.Retries+j.retries.Load())
	if pending := int64(j.identity.Rows) - done; rowsPerSecond > 0 {
		event = event.Stringer("eta", (time.Duration(float64(pending)/rowsPerSecond) * time.Second).Round(time.Second))
	}
	event.Msg("progress")
}

// summaryOf returns the job's figures as a checkpoint records them.
func summaryOf(cp *Checkpoint) report.Summary {
	return report.Summary{
		Rows:      int64(cp.Input.Rows),
		Counts:    cp.Counts,
		Requests:  cp.Requests,
		Throttled: cp.Throttled,
		Retries:   cp.Retries,
		Runs:      cp.Runs,
		Elapsed:   time.Duration(cp.ElapsedSeconds * float64(time.Second)),
		Complete:  cp.Complete,
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
		Bool("complete", s.Complete).
		Str("elapsed", s.Elapsed.Round(time.Second).String())
}

// logRow logs an invalid or duplicate row, up to maxLoggedRows of each kind.
func (j *job) logRow(row Row, status report.Status, reason string) {
	kind := 0
	if status == report.Duplicate {
		kind = 1
	}
	switch n := j.loggedRows[kind].Add(1); {
	case n <= maxLoggedRows:
		j.log.Warn().Int(keyRow, row.Index).Int("line", row.Line).Str(keyAppID, row.AppID).Str(keyDeviceID, row.DeviceID).
			Str(keyStatus, string(status)).Str("reason", reason).Msg("row not sent")
	case n == maxLoggedRows+1:
		j.log.Warn().Str(keyStatus, string(status)).Msgf("more than %d rows are %s; the rest are only in %s", maxLoggedRows, status, OutcomesFile)
	}
}
