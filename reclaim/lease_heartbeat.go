package reclaim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// heartbeat rewrites the lease file every heartbeat interval until release, and marks the lease lost
// when another run's token is there or when no rewrite succeeded within the renew limit. A rewrite
// runs in its own goroutine, so that a volume that hangs cannot keep the loss from being seen.
func (l *lease) heartbeat() {
	defer close(l.done)
	ticker := time.NewTicker(l.opts.heartbeat)
	defer ticker.Stop()

	var renewing chan error
	var renewingFrom time.Time
	failures := 0
	for {
		select {
		case <-l.quit:
			if renewing != nil {
				select {
				case <-renewing:
				case <-time.After(l.opts.heartbeat):
					l.opts.logger.Warn().Str(keyResource, l.resource).Str(keyLease, l.path).
						Msg("a lease rewrite is still hanging at release; the lease file may stay behind")
				}
			}
			return

		case <-ticker.C:
			if age := l.sinceRenewed(); age > l.opts.renewLimit() {
				l.lose(fmt.Sprintf("it could not be renewed for %s", age.Round(time.Second)))
				return
			}
			if renewing == nil {
				result := make(chan error, 1)
				renewing, renewingFrom = result, time.Now()
				record := l.record
				record.Heartbeat = renewingFrom.UTC()
				go func() { result <- l.renew(record) }()
			}

		case err := <-renewing:
			renewing = nil
			var takeover *leaseTakenError
			switch {
			case errors.As(err, &takeover):
				l.lose(takeover.Error())
				return
			case err != nil:
				failures++
				l.opts.logger.Warn().Err(err).Str(keyResource, l.resource).Int("failures", failures).
					Stringer("since_renewed", l.sinceRenewed().Round(time.Second)).Msg("could not renew the lease; trying again at the next heartbeat")
			case l.sinceRenewed() > l.opts.renewLimit():
				// The rewrite landed so late that another run may have judged the lease stale first.
				l.lose(fmt.Sprintf("renewing it took until %s after the last renewal", l.sinceRenewed().Round(time.Second)))
				return
			default:
				failures = 0
				renewed := renewingFrom
				l.renewed.Store(&renewed)
			}
		}
	}
}

// sinceRenewed returns the time since the record now in the lease file was written. It is the larger
// of two readings. The monotonic clock ignores steps of the wall clock, but on Linux it does not
// advance while the machine is suspended. Other runs judge the heartbeat by their wall clocks. So a
// forward step of this host's wall clock counts as time passed, and the run stops rather than risk it.
func (l *lease) sinceRenewed() time.Duration {
	renewed := *l.renewed.Load()
	now := time.Now()
	// Round(0) strips the monotonic reading, so that Sub compares wall clock times.
	return max(now.Sub(renewed), now.Round(0).Sub(renewed.Round(0)))
}

// held returns nil while this run may still write what the lease guards, because the lease is not
// lost and was renewed within the renew limit, so no other run can have judged it stale yet.
// Otherwise it returns an error that wraps errLeaseLost. It is cheap and safe for concurrent use.
//
// NOTE: A check is not atomic with the write after it. A process paused between the two for longer
// than the margin between renewLimit and stale still writes after a takeover. Only a file system
// that rejects writes of the old holder could close that gap.
func (l *lease) held() error {
	select {
	case <-l.lost:
		return l.lostErr
	default:
	}
	if age, limit := l.sinceRenewed(), l.opts.renewLimit(); age > limit {
		return fmt.Errorf("%w on %s: it was last renewed %s ago, longer than the renew limit %s, so another run may have taken it over",
			errLeaseLost, l.resource, age.Round(time.Second), limit)
	}
	return nil
}

// leaseTakenError is a lease file that no longer has this run's token.
type leaseTakenError struct{ holder string }

func (e *leaseTakenError) Error() string { return "another run has the lease now (" + e.holder + ")" }

// renew rewrites the lease file with record unless another run's token is there.
func (l *lease) renew(record leaseRecord) error {
	temp, err := l.writeTemp(record)
	if err != nil {
		return err
	}

	found, err := readLeaseFile(l.path)
	if err != nil {
		os.Remove(temp)
		return err
	}
	holder := parseLeaseRecord(found.data)
	if holder == nil || holder.Token != record.Token {
		os.Remove(temp)
		if found.data == nil {
			return &leaseTakenError{holder: "the lease file was removed"}
		}
		return &leaseTakenError{holder: describeHolder(holder, found, time.Now())}
	}
	if err := os.Rename(temp, l.path); err != nil {
		os.Remove(temp)
		return fmt.Errorf("replace lease %s: %w", l.path, err)
	}
	return nil
}

// lose marks the lease lost for reason and logs it.
func (l *lease) lose(reason string) {
	l.lostErr = fmt.Errorf("%w on %s: %s", errLeaseLost, l.resource, reason)
	l.opts.logger.Error().Str(keyResource, l.resource).Str(keyLease, l.path).Str("reason", reason).
		Msg("lost the lease; stopping as on SIGTERM")
	close(l.lost)
}

// release stops the heartbeat and removes the lease file if it still has our token. It may be called
// more than once.
func (l *lease) release() {
	l.once.Do(func() {
		close(l.quit)
		<-l.done
		select {
		case <-l.lost:
			return
		default:
		}
		found, err := readLeaseFile(l.path)
		if err != nil {
			return
		}
		if holder := parseLeaseRecord(found.data); holder != nil && holder.Token == l.record.Token {
			_ = os.Remove(l.path)
		}
	})
}

// watchLeases returns a context derived from ctx that ends when any of leases is lost, with the loss
// as its cause, and the function that releases its resources.
func watchLeases(ctx context.Context, leases ...*lease) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	for _, l := range leases {
		go func() {
			select {
			case <-l.lost:
				cancel(l.lostErr)
			case <-ctx.Done():
			}
		}()
	}
	return ctx, func() { cancel(nil) }
}

// stopErrorOf returns the StopError of a run whose context ended: interrupted by a signal, unless the
// cause is another one such as a lost lease.
func stopErrorOf(ctx context.Context) *StopError {
	return stopErrorFor(context.Cause(ctx))
}

// stopErrorFor returns the StopError of a run stopped for cause: a signal when cause is nil or a
// cancellation. A lost lease stays in the error chain, so that LeaseLost finds it.
func stopErrorFor(cause error) *StopError {
	switch {
	case cause == nil || errors.Is(cause, context.Canceled):
		return &StopError{Reason: errInterrupted.Error()}
	case errors.Is(cause, errLeaseLost):
		return &StopError{Reason: "another run may hold the job now", Err: cause}
	}
	return &StopError{Reason: cause.Error()}
}
