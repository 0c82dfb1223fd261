package reclaim

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
)

// throttle paces one kind of request, writes or reads, for the whole run and adapts its rate to
// Graph's throttling. Graph counts requests per app registration and tenant, so one throttle serves
// every worker. A token bucket (rate.Limiter) paces the starts, and a 429 pauses every worker until its
// Retry-After has passed. A rateControl sets the bucket's rate, at most the ceiling given to
// newThrottle. It is safe for concurrent use.
type throttle struct {
	// kind names the requests in log lines: "write" or "read".
	kind string
	log  zerolog.Logger
	// backoffBase and backoffMax bound the pause after a 429 without Retry-After.
	backoffBase, backoffMax time.Duration
	// turn is held by the one worker that waits for the next start, and the others queue for it. The
	// worker takes a token only when the bucket holds one and never reserves one ahead, so a change of
	// rate or a new pause applies to the very next start: a reservation keeps the rate it was made at.
	turn chan struct{}

	mu      sync.Mutex
	control rateControl
	bucket  *rate.Limiter
	// pausedUntil is the end of the pause after the last 429. drain is true until the first start after
	// it, which leaves at most one token in the bucket: a pause is no quiet spell, Graph's window is full.
	pausedUntil time.Time
	drain       bool
}

// newThrottle returns a throttle that starts at ceiling requests per second, never exceeds it, and lets
// burst requests start at once after a quiet spell. It logs nothing until logChanges is called.
func newThrottle(ceiling float64, burst int) *throttle {
	control := newRateControl(ceiling)
	return &throttle{
		kind:        "request",
		log:         zerolog.Nop(),
		backoffBase: time.Second,
		backoffMax:  time.Minute,
		turn:        make(chan struct{}, 1),
		control:     control,
		bucket:      rate.NewLimiter(rate.Limit(control.rate), burst),
	}
}

// logChanges makes t log the changes of its rate to log at Info, with kind ("write" or "read") naming
// the requests, and returns t. Every decrease is logged. An increase is logged once the rate has moved
// by rateLogStep or more since the last logged rate, or when it reaches the ceiling. Call it before the
// throttle is shared.
func (t *throttle) logChanges(log zerolog.Logger, kind string) *throttle {
	t.log, t.kind = log, kind
	return t
}

// wait blocks until a request may start: after any pause, and within the rate. It returns ctx's error
// if ctx ends first.
func (t *throttle) wait(ctx context.Context) error {
	select {
	case t.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-t.turn }()

	for {
		delay, ok := t.reserve(time.Now())
		if ok {
			return nil
		}
		if err := sleep(ctx, delay); err != nil {
			return err
		}
	}
}

// reserve takes a token and returns true if a request may start at now. Otherwise it returns how long
// to wait before asking again: until the pause ends, or until the bucket holds a token at the current
// rate.
func (t *throttle) reserve(now time.Time) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Before(t.pausedUntil) {
		return t.pausedUntil.Sub(now), false
	}
	if t.drain {
		// The bucket earned tokens during the pause; keep one.
		t.drain = false
		if extra := int(t.bucket.TokensAt(now)) - 1; extra > 0 {
			t.bucket.AllowN(now, extra)
		}
	}
	if t.bucket.AllowN(now, 1) {
		t.control.started(now)
		return 0, true
	}
	missing := 1 - t.bucket.TokensAt(now)
	delay := time.Duration(math.Ceil(missing / t.control.rate * float64(time.Second)))
	return max(delay, time.Microsecond), false
}

// applyRate gives the bucket the rate that the control has set. The bucket counts the time before now
// at the old rate.
func (t *throttle) applyRate(now time.Time) {
	if float64(t.bucket.Limit()) != t.control.rate {
		t.bucket.SetLimitAt(now, rate.Limit(t.control.rate))
	}
}

// succeeded records a response that Graph did not throttle: a success, or an error that settles the
// request, such as 404. A server fault or a lost connection is neither a success nor a 429.
func (t *throttle) succeeded() {
	now := time.Now()
	t.mu.Lock()
	change, logIt := t.control.succeeded(now)
	t.applyRate(now)
	t.mu.Unlock()
	if logIt {
		t.logChange(change)
	}
}

// throttled records a 429 for a request started at sentAt, pauses every worker and lowers the rate,
// and returns the pause. retryAfter is the wait that the response requested, or zero if it carried no
// Retry-After. Then the pause is a backoff that doubles with every epoch since the last response. A
// longer pause that is already running is kept.
//
// The rate drops once per epoch: only a 429 for a request started after the last decrease lowers it,
// so the requests that were on their way when the limit was hit lower it only once.
func (t *throttle) throttled(sentAt time.Time, retryAfter time.Duration) time.Duration {
	now := time.Now()
	t.mu.Lock()
	change, logIt := t.control.throttled(sentAt, now, retryAfter)
	t.applyRate(now)
	wait := retryAfter
	if wait <= 0 {
		wait = backoff(max(1, t.control.throttledInRow), t.backoffBase, t.backoffMax)
	}
	t.pauseUntil(now.Add(wait))
	t.mu.Unlock()

	if logIt {
		t.logChange(change)
	}
	return wait
}

// pauseUntil holds every worker back until until, unless a longer pause is running.
func (t *throttle) pauseUntil(until time.Time) {
	if !until.After(t.pausedUntil) {
		return
	}
	t.pausedUntil = until
	t.drain = true
}

// rate returns the current rate in requests per second.
func (t *throttle) rate() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.control.rate
}

// Log keys of rate changes.
const (
	keyRequests       = "requests"
	keyOldRate        = "old_rate"
	keyNewRate        = "new_rate"
	keyReason         = "reason"
	keyEstimatedLimit = "estimated_limit"
)

func (t *throttle) logChange(c rateChange) {
	verb := "raised"
	if c.new < c.old {
		verb = "lowered"
	}
	event := t.log.Info().Str(keyRequests, t.kind).Float64(keyOldRate, round(c.old, 2)).
		Float64(keyNewRate, round(c.new, 2)).Str(keyReason, c.reason)
	if c.estimate > 0 {
		event = event.Float64(keyEstimatedLimit, round(c.estimate, 2))
	}
	event.Msgf("%s rate %s", t.kind, verb)
}

// The rules of rateControl count responses, not seconds, so the behaviour does not depend on the time
// scale: a simulator that compresses Intune's 100 writes per 20 s into a shorter window goes through
// the same rates, only sooner. The values come from runs against graphsim's sliding window at 0.5, 1
// and 2 times --rate with 50-300 ms of latency, and from a model of that window with every
// Retry-After style, for waves of 3,000 to 6,000 rows.
const (
	// rateDecrease multiplies the rate on a 429.
	rateDecrease = 0.9
	// rateMargin is how far below the throttled rate the recovery stops. At the exact limit, a
	// sliding window throttles a share of the requests because their arrival times jitter.
	rateMargin = 0.025
	// recoverResponses is the number of responses over which the rate climbs from the decrease to the
	// plateau rateMargin below the peak: quickly at first, then slowly.
	recoverResponses = 200
	// probeResponses is the number of responses after the recovery over which the rate climbs from the
	// plateau back to the peak. Past it the rate climbs faster and faster, to find a limit that was
	// raised. Each probe that crosses the limit costs a 429 and a pause.
	probeResponses = 3000
	// probeCeilingResponses replaces probeResponses when the peak is the ceiling, because the ceiling was
	// throttled and there is nothing above it to find.
	probeCeilingResponses = 10000
	// probeEstimateResponses replaces probeResponses when the peak is the estimated limit, which is a
	// lower bound.
	probeEstimateResponses = 1000
	// estimateShare is how far below the rate of the first 429 the estimated limit must be to replace
	// the plain decrease. A Retry-After rounded up to whole seconds lowers the estimate, and this keeps
	// such an error from cutting a rate that was nearly right.
	estimateShare = 0.8
	// minEstimateResponses is the number of responses before the first 429 that an estimate needs.
	minEstimateResponses = 20
	// rateFloor is the lowest rate in requests per second, one request every 100 s, and also the
	// lowest --rate.
	rateFloor = 0.01
	// rateLogStep is the relative change since the last logged rate that makes an increase logged.
	rateLogStep = 0.1
)

// rateControl is the adaptive rate of a throttle. Its methods take the time as an argument, so that
// tests can drive it without a clock. It is not safe for concurrent use: the throttle's mutex guards
// it.
//
// The rate starts at the ceiling. A 429 multiplies it by rateDecrease, at most once per epoch, and
// the rate at that moment becomes the peak. During the recovery from the last decrease, the first 429
// leaves the peak alone and each later one moves it halfway down to the rate. Then, with every
// response without throttling, the rate
// follows a cubic curve, as the congestion window of TCP CUBIC (RFC 9438) does: a fast recovery to
// the plateau just under the peak, a slow probe past the peak, then faster and faster. The rate stays
// within [rateFloor, ceiling]. Halving the rate on a 429 and raising it linearly, as TCP Reno does,
// saws between half the limit and the limit, and averages three quarters of it.
//
// The first 429 of a run also yields an estimate of the limit. Graph's limit is a sliding window, so
// the window that throttles first contains every request admitted since the run started, and it
// frees its first slot one window length after the first response. The limit is therefore about the
// number of responses divided by the time from the first response to that free slot. The
// Retry-After of the 429 responses bounds that time from above, and so does the first response to a
// request started after them. If --rate is far above the limit, the estimate sets the rate close to
// the limit at once, where plain decreases would take one window each.
type rateControl struct {
	ceiling, floor float64
	rate           float64
	// peak is the rate of the last throttled epoch, or the estimated limit; zero before any 429.
	peak float64
	// startShare is the rate right after the last decrease, as a share of peak.
	startShare float64
	// probe is the number of responses over which the rate climbs from the plateau to peak.
	probe float64
	// responses counts the responses without throttling since the last decrease.
	responses int
	// decreasedAt is the time of the last decrease. A 429 for a request started before it belongs to
	// the epoch that the decrease ended.
	decreasedAt time.Time
	// throttledInRow counts the epochs since the last response, the current one included.
	throttledInRow int
	// logged is the last rate that was logged.
	logged float64
	first  firstWindow
	// recoveryHits counts the 429s since the recovery from the last decrease began.
	recoveryHits int
}

// firstWindow is the evidence about the limit from the first 429 of a run.
type firstWindow struct {
	// open is true from the first 429 to the first response to a request started after it, and done
	// is true after that.
	open, done bool
	// throttledAgain is true if a request started after the first 429 got a 429 too.
	throttledAgain bool
	// responses is the number of responses before the first 429, and firstResponse the time of the
	// first one.
	responses     int
	firstResponse time.Time
	// rate is the rate when the first 429 came, at throttledAt.
	rate        float64
	throttledAt time.Time
	// startedAfter is the time of the first start after the first 429.
	startedAfter time.Time
	// free is the earliest time by which the window is known to have freed a slot; zero if unknown.
	free time.Time
	// estimate is the last estimated limit that was applied, zero if none.
	estimate float64
}

// rateChange is a change of the rate, with its reason and, if it comes from one, the estimated limit.
type rateChange struct {
	old, new float64
	reason   string
	estimate float64
}

func newRateControl(ceiling float64) rateControl {
	return rateControl{ceiling: ceiling, floor: min(rateFloor, ceiling), rate: ceiling, logged: ceiling}
}

// started records that a request started at now.
func (c *rateControl) started(now time.Time) {
	if c.first.open && c.first.startedAfter.IsZero() && now.After(c.first.throttledAt) {
		c.first.startedAfter = now
	}
}

// succeeded records a response without throttling at now. It returns the change of rate and whether
// to log it.
func (c *rateControl) succeeded(now time.Time) (rateChange, bool) {
	old := c.rate
	c.responses++
	if c.first.firstResponse.IsZero() {
		c.first.firstResponse = now
	}
	if !c.first.open && !c.first.done {
		c.first.responses++
	}

	// The first response to a request started after the first 429 shows that the window has freed a
	// slot. A response to an older request may come first, but it can only raise the estimate, which
	// makes the estimate less likely to be used. Without a Retry-After, the pause before that request
	// was a backoff that the window may have outlasted long before. Only a second 429 shows that the
	// slot freed late.
	if c.first.open && !c.first.startedAfter.IsZero() && now.After(c.first.startedAfter) {
		c.first.open, c.first.done = false, true
		tighter := !c.first.free.IsZero() && now.Before(c.first.free)
		onlyBound := c.first.free.IsZero() && c.first.throttledAgain
		if tighter || onlyBound {
			c.first.free = now
		}
		if change, ok := c.applyEstimate(old); ok {
			logIt := c.noteForLog(&change)
			return change, logIt
		}
	}

	if c.peak == 0 {
		return rateChange{old: old, new: old}, false
	}
	c.rate = c.curve()
	change := rateChange{old: old, new: c.rate, reason: "no 429 since the last decrease"}
	if c.rate == c.ceiling {
		change.reason = "no 429 since the last decrease; back at the ceiling"
	}
	logIt := c.noteForLog(&change)
	return change, logIt
}

// throttled records a 429 at now for a request started at sentAt. retryAfter is the wait that the
// response requested, zero if none. It returns the change of rate and whether to log it.
func (c *rateControl) throttled(sentAt, now time.Time, retryAfter time.Duration) (rateChange, bool) {
	old := c.rate
	if c.first.open && retryAfter > 0 {
		if free := now.Add(retryAfter); c.first.free.IsZero() || free.Before(c.first.free) {
			c.first.free = free
		}
	}
	if !sentAt.After(c.decreasedAt) {
		// The request started before the last decrease, in the epoch that the decrease ended. Its
		// Retry-After may still tighten the estimate.
		if change, ok := c.applyEstimate(old); ok {
			logIt := c.noteForLog(&change)
			return change, logIt
		}
		return rateChange{old: old, new: old}, false
	}

	if c.responses == 0 && !c.decreasedAt.IsZero() {
		c.throttledInRow++
	} else {
		c.throttledInRow = 1
	}
	if c.first.open {
		c.first.throttledAgain = true
	}
	if !c.first.open && !c.first.done {
		c.first.open = true
		c.first.rate, c.first.throttledAt = c.rate, now
		if retryAfter > 0 {
			c.first.free = now.Add(retryAfter)
		}
	}

	// The first 429 during the recovery from the last decrease may come from the same overload,
	// because a sliding window still counts the requests sent before the decrease, so the peak stays.
	// Each further one moves the peak halfway down to the rate, so that after the limit fell in the
	// middle of a run the peak reaches the new limit within a few windows.
	switch {
	case c.peak == 0 || c.responses >= recoverResponses:
		c.peak = c.rate
		c.recoveryHits = 0
	default:
		c.recoveryHits++
		if c.recoveryHits > 1 {
			c.peak = min(c.peak, (c.peak+c.rate)/2)
		}
	}
	c.probe = probeResponses
	if c.peak >= c.ceiling {
		c.probe = probeCeilingResponses
	}
	c.rate = max(c.floor, rateDecrease*c.rate)
	c.startShare = c.rate / c.peak
	c.responses = 0
	c.decreasedAt = now

	change := rateChange{old: old, new: c.rate, reason: "429 Too Many Requests"}
	if estimated, ok := c.applyEstimate(old); ok {
		change = estimated
	}
	logIt := c.noteForLog(&change)
	return change, logIt
}

// applyEstimate sets the rate just below the limit estimated from the first throttled window, if the
// estimate is far enough below the rate of the first 429 and higher than the estimate applied before.
// old is the rate before the caller's change, for the returned change.
func (c *rateControl) applyEstimate(old float64) (rateChange, bool) {
	w := c.first
	if w.free.IsZero() || w.firstResponse.IsZero() || w.responses < minEstimateResponses {
		return rateChange{}, false
	}
	span := w.free.Sub(w.firstResponse).Seconds()
	if span <= 0 {
		return rateChange{}, false
	}
	estimate := float64(w.responses) / span
	if estimate >= estimateShare*w.rate || estimate <= w.estimate {
		return rateChange{}, false
	}

	c.first.estimate = estimate
	c.peak = max(c.floor, estimate)
	c.probe = probeEstimateResponses
	c.rate = max(c.floor, (1-rateMargin)*estimate)
	c.startShare = c.rate / c.peak
	c.responses = 0
	return rateChange{old: old, new: c.rate, estimate: estimate,
		reason: "set just below the limit estimated from the first throttled window"}, true
}

// curve returns the rate after c.responses responses without throttling since the last decrease.
func (c *rateControl) curve() float64 {
	n := float64(c.responses)
	plateau := 1 - rateMargin
	var share float64
	if c.startShare < plateau && n < recoverResponses {
		// Concave: steep right after the decrease, flat at the plateau.
		x := 1 - n/recoverResponses
		share = plateau - (plateau-c.startShare)*x*x*x
	} else {
		// Convex: flat at the plateau, at the peak after c.probe responses, steeper and steeper after.
		if c.startShare < plateau {
			n -= recoverResponses
		}
		x := n / c.probe
		share = plateau + rateMargin*x*x*x
	}
	return min(c.ceiling, max(c.floor, c.peak*share))
}

// noteForLog reports whether change is logged, and remembers its rate if so. A logged increase is
// reported from the last logged rate, so that the logged changes follow on from each other.
func (c *rateControl) noteForLog(change *rateChange) bool {
	switch {
	case change.new == change.old:
		return false
	case change.new < change.old:
	case math.Abs(change.new-c.logged) >= rateLogStep*c.logged,
		change.new == c.ceiling && c.logged != c.ceiling:
		change.old = c.logged
	default:
		return false
	}
	c.logged = change.new
	return true
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
