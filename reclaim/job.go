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
)

// Reasons a run stops before the job is complete.
var (
	errInterrupted = errors.New("interrupted by a signal")
	errDeadline    = errors.New("--deadline reached")
	errOutage      = errors.New("Graph outage: every request failed with a server or network fault")
)

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
	// index contains every pair of the input with its first row, and the precheck's licensed bits.
	index *waveIndex
	// precheck reads license holders before revokes; nil with --precheck=false.
	precheck *precheck

	// stop ends the run early for a reason, which becomes the cause of the run's context.
	stop context.CancelCauseFunc
	// fence, unless nil, returns an error when the run may no longer write the job's files, because
	// its lease may have passed to another run. runJob sets it, and run hands it to the ledger.
	fence func() error

	throttled atomic.Int64
	// readsThrottled counts the 429 responses to the precheck's reads.
	readsThrottled atomic.Int64
	retries        atomic.Int64
	// rowsRead is the number of the last row the feed has read.
	rowsRead atomic.Int64
	// form is the URL form last seen in use, as a graphclient.Form.
	form atomic.Int32
	// skipped logs the rows that are not sent.
	skipped *rowLogger

	saveMu sync.Mutex
}

func newJob(cfg Config, identity InputIdentity, index *waveIndex, cp *Checkpoint, client *graphclient.Client) (*job, error) {
	j := &job{
		cfg:      cfg,
		log:      cfg.Logger,
		identity: identity,
		base:     *cp,
		client:   client,
		ledger:   newLedger(identity.Rows, cp),
		throttle: newThrottle(cfg.Rate, cfg.Burst).logChanges(cfg.Logger, "write"),
		health:   &health{outageAfter: cfg.OutageAfter},
		index:    index,
		skipped:  &rowLogger{logger: cfg.Logger},
	}
	j.form.Store(int32(client.Form()))
	log, err := openOutcomeLog(cfg.outcomesPath(), cp, j.ledger.replay)
	if err != nil {
		return nil, err
	}
	j.ledger.attach(log)
	if cfg.Precheck {
		j.precheck = newPrecheck(j, newThrottle(readRateFactor*cfg.Rate, cfg.Burst).logChanges(cfg.Logger, "read"))
	}
	if recovered := j.ledger.finished() - cp.Counts.Total(); recovered > 0 || log.cut > 0 {
		j.log.Info().Int64("rows_recovered", recovered).Int64("torn_bytes_cut", log.cut).
			Msg("resuming: read back the outcome lines written after the last checkpoint")
	}
	return j, nil
}

// run sends the pending rows and saves the state at every stop.
func (j *job) run(ctx context.Context) error {
	defer j.ledger.close()
	j.started = time.Now()
	j.ledger.fence = j.fence

	input, err := OpenInput(j.cfg.Input, j.cfg.Notify)
	if err != nil {
		return &UsageError{Err: err}
	}
	defer input.Close()
	j.input = input

	logStart(j.log.Info(), j.cfg, j.identity, j.ledger.finished(), j.input).
		Str("url_form", j.client.Form().String()).Msg("run started")
	// A first save counts this run in the checkpoint, however soon it ends.
	if _, err := j.save(false); err != nil {
		return err
	}

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
	if j.precheck != nil {
		j.precheck.prefetch(poolCtx)
		defer j.precheck.wait()
	}
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
			j.log.Info().Str("reason", context.Cause(stopCtx).Error()).Stringer("drain", j.cfg.Drain).
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

// finish checks and saves the final state, writes the summary and returns the run's result.
func (j *job) finish(poolErr, stopCause error) error {
	// The job is complete only when the pool ended without an error, every row is finished, and both
	// outcomes.csv and the file at the input's path still match the job.
	mayComplete := poolErr == nil && j.ledger.finished() == int64(j.identity.Rows)
	var verifyErr error
	if mayComplete {
		verifyErr = j.verifyOutcomes()
		if verifyErr == nil {
			if changed := j.input.checkFileAtPath(j.identity.Size, j.identity.SHA256); changed != nil {
				verifyErr = &UsageError{Err: changed}
			}
		}
	}
	cp, saveErr := j.save(mayComplete && verifyErr == nil)
	summary := summaryOf(cp)

	var result error
	switch {
	case poolErr != nil:
		result = poolErr
	case verifyErr != nil:
		result = verifyErr
	case errors.Is(saveErr, errLeaseLost):
		summary.Complete = false
		result = saveErr
	case saveErr != nil:
		summary.Complete = false
		result = &StopError{Reason: "the checkpoint could not be saved; run again once the out dir can be written", Err: saveErr}
	case cp.Complete && cp.ExitCode == ExitRowsFailed:
		result = ErrRowsFailed
	case cp.Complete:
		result = nil
	case stopCause != nil:
		result = stopErrorFor(stopCause)
	default:
		result = &StopError{Reason: "internal error: the input ended with rows pending"}
	}

	event := j.log.Info()
	if !summary.Complete {
		event = j.log.Warn()
	}
	summaryLog(event, summary).Int("exit_code", ExitCode(result)).Msg("run ended")
	if err := summary.WriteText(j.cfg.Stdout); err != nil && result == nil {
		result = err
	}
	return result
}

// verifyOutcomes reads outcomes.csv of a job whose rows are all finished and returns an error unless
// it has exactly one line per input row and its statuses add up to the ledger's counts. A mismatch
// means the checkpoint or outcomes.csv was changed by hand.
func (j *job) verifyOutcomes() error {
	return j.ledger.log.check(j.cfg.outcomesPath(), j.identity.Rows, j.ledger.countsNow())
}

// save writes the checkpoint and summary.csv, after flushing outcomes.csv so that the checkpoint
// vouches only for lines on disk. The job is marked complete when every row is finished and mayComplete
// is true. save returns the checkpoint it saved. When the fence check fails, it writes neither file
// and returns the check's error.
func (j *job) save(mayComplete bool) (*Checkpoint, error) {
	j.saveMu.Lock()
	defer j.saveMu.Unlock()

	cp := j.base
	j.ledger.snapshot(&cp)
	cp.URLForm = j.client.Form().String()
	cp.Requests = j.base.Requests + j.client.Sent()
	cp.Throttled = j.base.Throttled + j.throttled.Load()
	cp.Reads = j.base.Reads + j.client.Reads()
	cp.ReadsThrottled = j.base.ReadsThrottled + j.readsThrottled.Load()
	cp.Retries = j.base.Retries + j.retries.Load()
	cp.TokensRejected = j.base.TokensRejected + j.client.RejectedTokens()
	cp.Runs = j.base.Runs + 1
	cp.ElapsedSeconds = j.base.ElapsedSeconds + time.Since(j.started).Seconds()
	cp.Complete = mayComplete && cp.DoneThrough == j.identity.Rows
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
	if err := j.checkFence(); err != nil {
		return &cp, err
	}
	if err := cp.save(j.cfg.Checkpoint); err != nil {
		return &cp, err
	}
	if err := j.checkFence(); err != nil {
		return &cp, err
	}
	summary := summaryOf(&cp)
	return &cp, writeFileAtomic(j.cfg.summaryPath(), summary.WriteCSV)
}

// checkFence returns the error of the fence check, or nil for a job without one.
func (j *job) checkFence() error {
	if j.fence == nil {
		return nil
	}
	return j.fence()
}
