package reclaim

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// throttle paces every request of a run. Graph counts requests per app registration and tenant, so one
// throttle serves all workers: a token bucket sets the steady rate, and a 429 pauses everyone until
// its Retry-After has passed. It is safe for concurrent use.
type throttle struct {
	limiter *rate.Limiter

	mu          sync.Mutex
	pausedUntil time.Time
}

func newThrottle(perSecond float64, burst int) *throttle {
	return &throttle{limiter: rate.NewLimiter(rate.Limit(perSecond), burst)}
}

// wait blocks until a request may start: after any pause, and within the rate.
func (t *throttle) wait(ctx context.Context) error {
	for {
		if err := sleep(ctx, time.Until(t.resumeAt())); err != nil {
			return err
		}
		if err := t.limiter.Wait(ctx); err != nil {
			return err
		}
		// A 429 may have paused the pool while this worker waited for the limiter.
		if !time.Now().Before(t.resumeAt()) {
			return nil
		}
	}
}

// pause holds every worker back for d from now, unless a longer pause is already running.
func (t *throttle) pause(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if until := time.Now().Add(d); until.After(t.pausedUntil) {
		t.pausedUntil = until
	}
}

func (t *throttle) resumeAt() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pausedUntil
}

// backoff returns the wait before attempt+1 after a fault that came without Retry-After: base doubled
// for every earlier attempt, at most maxWait, with the upper half of it random so that workers that
// failed together do not come back together.
func backoff(attempt int, base, maxWait time.Duration) time.Duration {
	d := maxWait
	if attempt < 32 && base<<(attempt-1) < maxWait {
		d = base << (attempt - 1)
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits for d or until ctx ends, and returns ctx's error in the latter case.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
