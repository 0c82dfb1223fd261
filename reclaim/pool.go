package reclaim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"reclaim/graphclient"
	"reclaim/report"
)

// feed reads the input and settles what needs no request: finished rows are skipped, invalid and
// duplicate rows get their outcome at once, and the rest go to the workers in input order. It returns
// when the input ends or ctx does, and at once with an input-changed error when a valid row does not
// match the wave index.
func (j *job) feed(ctx context.Context, rows chan<- Row) error {
	defer close(rows)
	last := 0
	for ctx.Err() == nil {
		row, err := j.input.Next()
		if errors.Is(err, io.EOF) {
			return j.checkInputUnchanged(last)
		}
		if err != nil {
			return &UsageError{Err: err}
		}
		if row.Index > j.identity.Rows {
			return j.inputChanged(fmt.Sprintf("it now has more than %d rows", j.identity.Rows))
		}
		last = row.Index
		j.rowsRead.Store(int64(row.Index))

		// Finished rows are checked too, so that an edit is caught before the rows after it are sent.
		if change := j.index.changedRow(row); change != "" {
			return j.inputChanged(change)
		}
		pair, duplicate := 0, false
		if row.Invalid == "" {
			var change string
			if pair, duplicate, change = j.index.checkRow(row); change != "" {
				return j.inputChanged(change)
			}
		}
		if j.ledger.isDone(row.Index) {
			continue
		}
		if err := j.ledger.waitRoom(ctx, row.Index); err != nil {
			return nil
		}

		switch {
		case row.Invalid != "":
			j.skipped.log(row, report.Invalid, row.Invalid)
			err = j.ledger.finish(rowOutcome(row, report.Invalid, row.Invalid))
		case duplicate:
			j.skipped.log(row, report.Duplicate, duplicateReason)
			err = j.ledger.finish(rowOutcome(row, report.Duplicate, duplicateReason))
		default:
			err = j.dispatch(ctx, row, pair, rows)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// dispatch hands a valid new row, whose pair is at position pair in the wave index, to the workers,
// unless the precheck settles it without a request.
func (j *job) dispatch(ctx context.Context, row Row, pair int, rows chan<- Row) error {
	if j.precheck != nil {
		outcome, send, err := j.precheck.decide(ctx, row, pair)
		switch {
		case err != nil:
			return err
		case outcome != nil:
			return j.ledger.finish(*outcome)
		case !send:
			return nil // the run is stopping: the row stays pending
		}
	}
	select {
	case rows <- row:
	case <-ctx.Done():
	}
	return nil
}

// checkInputUnchanged returns an error when the input, read to its end with last as the last row
// number, no longer has the size, row count and content it had at the start.
func (j *job) checkInputUnchanged(last int) error {
	switch {
	case j.input.Offset() != j.identity.Size:
		return j.inputChanged(fmt.Sprintf("its size changed from %d to %d bytes", j.identity.Size, j.input.Offset()))
	case last != j.identity.Rows:
		return j.inputChanged(fmt.Sprintf("it now has %d rows instead of %d", last, j.identity.Rows))
	case j.input.SHA256() != j.identity.SHA256:
		return j.inputChanged("its content changed: the SHA-256 differs")
	}
	return nil
}

func (j *job) inputChanged(problem string) error {
	return inputChangedError(j.identity.Path, problem)
}

// duplicateReason is the error_message of duplicate rows.
const duplicateReason = "an earlier row has the same app id and device id"

func rowOutcome(row Row, status report.Status, message string) report.Outcome {
	return report.Outcome{
		Row:          row.Index,
		AppID:        row.AppID,
		DeviceID:     row.DeviceID,
		Status:       status,
		ErrorMessage: message,
		FinishedAt:   time.Now(),
	}
}

// work revokes the rows it receives until the channel closes or the run stops. A row that cannot be
// settled before the stop is left pending. Only an error that ends the run is returned.
func (j *job) work(stopCtx, requestCtx context.Context, rows <-chan Row) error {
	for {
		var row Row
		var ok bool
		select {
		case <-stopCtx.Done():
			return nil
		case row, ok = <-rows:
			if !ok {
				return nil
			}
		}

		outcome, err := j.revoke(stopCtx, requestCtx, row)
		if err != nil {
			return err
		}
		if outcome == nil {
			continue
		}
		if err := j.ledger.finish(*outcome); err != nil {
			return err
		}
	}
}

// revoke sends the request for row, retrying faults and throttling, and returns its outcome. It
// returns a nil outcome when the run stopped before the row was settled.
func (j *job) revoke(stopCtx, requestCtx context.Context, row Row) (*report.Outcome, error) {
	log := j.log.With().Int(keyRow, row.Index).Str(keyAppID, row.AppID).Str(keyDeviceID, row.DeviceID).Logger()
	firstAttempt := time.Now()
	waitingForGraph := false

	for attempt := 1; ; attempt++ {
		if j.throttle.wait(stopCtx) != nil {
			return nil, nil
		}
		if attempt > 1 {
			j.retries.Add(1)
		}
		sentAt := time.Now()
		result, err := j.client.RevokeDeviceLicense(requestCtx, row.AppID, row.DeviceID, row.Notify)
		j.noteForm()
		if err == nil {
			j.health.answered()
			j.throttle.succeeded()
			outcome := rowOutcome(row, report.Revoked, "")
			outcome.HTTPStatus, outcome.Attempts, outcome.RequestID = result.StatusCode, attempt, result.RequestID
			log.Debug().Int(keyAttempt, attempt).Str(keyRequestID, result.RequestID).Msg("revoked")
			return &outcome, nil
		}

		failure, wait, err := j.classify(err, attempt, sentAt)
		if err != nil {
			return nil, err
		}
		if failure.settled {
			// Graph responded without throttling, so the response counts for the rate as a success does.
			j.health.answered()
			j.throttle.succeeded()
			return j.settle(log, row, failure, attempt), nil
		}
		if failure.stopped {
			return nil, nil
		}

		// A retryable failure. Once its attempts are spent the row fails, but only if Graph has settled
		// some other request since the row's first attempt. Otherwise the fault is Graph's, and the row
		// waits for Graph to recover.
		if attempt >= j.cfg.MaxAttempts {
			if j.health.answeredSince(firstAttempt) {
				return j.settle(log, row, failure, attempt), nil
			}
			if !waitingForGraph {
				waitingForGraph = true
				log.Warn().Int(keyAttempt, attempt).Msg("row has used its attempts, but Graph has settled no request since it started; retrying until Graph recovers or --outage-after passes")
			}
		}
		if j.health.outage() {
			j.stop(errOutage)
			return nil, nil
		}
		failure.log(log.Warn(), attempt).Stringer(keyWait, wait.Round(time.Millisecond)).Msg("retrying")
		if failure.http == http.StatusTooManyRequests {
			// The pause is shared: the throttle holds this worker back with the others.
			continue
		}
		if sleep(stopCtx, wait) != nil {
			return nil, nil
		}
	}
}

// failure is a failed attempt, described for the outcome and the log.
type failure struct {
	status    report.Status
	http      int
	code      string
	message   string
	requestID string
	clientID  string
	// settled is true when Graph's response settles the row, and stopped when the run is stopping.
	settled bool
	stopped bool
}

func (f failure) log(event *zerolog.Event, attempt int) *zerolog.Event {
	event = event.Int(keyAttempt, attempt).Str(keyErrorCode, f.code).Str("error", f.message).
		Str(keyClientRequestID, f.clientID)
	if f.http != 0 {
		event = event.Int(keyHTTPStatus, f.http)
	}
	if f.requestID != "" {
		event = event.Str(keyRequestID, f.requestID)
	}
	return event
}

// classify turns a failed attempt, sent at sentAt, into a failure and the wait before the next attempt,
// or into an error that ends the run. On throttling it pauses the whole pool and lowers the rate, and
// the wait it returns is that pause, for the log.
func (j *job) classify(err error, attempt int, sentAt time.Time) (failure, time.Duration, error) {
	var graphErr *graphclient.Error
	var transportErr *graphclient.TransportError
	var authErr *graphclient.AuthError
	switch {
	case errors.Is(err, graphclient.ErrForbidden), errors.Is(err, graphclient.ErrActionUnavailable),
		errors.Is(err, graphclient.ErrUntrustedAuthority), errors.As(err, &authErr):
		// These end the run. They wrap Graph's response, so they are matched before it.
		return failure{}, 0, err

	case errors.As(err, &graphErr):
		f := failure{status: report.Failed, http: graphErr.StatusCode, code: graphErr.Code,
			message: graphErr.Message, requestID: graphErr.RequestID, clientID: graphErr.ClientRequestID}
		wait := graphErr.RetryAfter
		if wait == 0 {
			wait = backoff(attempt, j.cfg.BackoffBase, j.cfg.BackoffMax)
		}
		switch graphErr.Class() {
		case graphclient.NotFound:
			f.status, f.settled = report.NotFound, true
		case graphclient.Permanent:
			f.settled = true
		case graphclient.Throttled:
			// The limit is per app and tenant, so every worker waits, not only this one.
			j.throttled.Add(1)
			return f, j.throttle.throttled(sentAt, graphErr.RetryAfter), nil
		case graphclient.Transient:
			j.health.fault()
		default:
			return f, 0, fmt.Errorf("unexpected Graph response: %w", graphErr)
		}
		return f, wait, nil

	case errors.As(err, &transportErr) && transportErr.Retryable():
		j.health.fault()
		f := failure{status: report.Failed, code: "connection_failed", message: transportErr.Error(), clientID: transportErr.ClientRequestID}
		if transportErr.Timeout {
			f.code = "timeout"
		}
		return f, backoff(attempt, j.cfg.BackoffBase, j.cfg.BackoffMax), nil

	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return failure{stopped: true}, 0, nil

	case errors.As(err, &transportErr):
		return failure{}, 0, usageErrorf("cannot reach Graph at %s: %w; check --graph-url, the network and the trusted certificates",
			j.cfg.GraphURL, transportErr.Err)
	}
	return failure{}, 0, fmt.Errorf("unexpected error from the Graph client: %w", err)
}

// settle returns the outcome of a row that ends with f, and logs rows that did not succeed.
func (j *job) settle(log zerolog.Logger, row Row, f failure, attempts int) *report.Outcome {
	outcome := rowOutcome(row, f.status, f.message)
	outcome.HTTPStatus, outcome.Attempts = f.http, attempts
	outcome.ErrorCode, outcome.RequestID = f.code, f.requestID
	f.log(log.Warn(), attempts).Str(keyStatus, string(f.status)).Msg("row not revoked")
	return &outcome
}
