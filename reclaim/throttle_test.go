package reclaim

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestThrottlePauseHoldsEveryWorker(t *testing.T) {
	th := newThrottle(1000, 10)
	const pause = 300 * time.Millisecond
	start := time.Now()
	th.throttled(start, pause)
	th.throttled(start, pause/3) // a shorter pause does not cut the running one

	var wg sync.WaitGroup
	waited := make([]time.Duration, 4)
	for i := range waited {
		wg.Go(func() {
			if err := th.wait(context.Background()); err != nil {
				t.Error(err)
			}
			waited[i] = time.Since(start)
		})
	}
	wg.Wait()
	for i, d := range waited {
		if d < pause {
			t.Errorf("worker %d started after %v, want at least the pause of %v", i, d, pause)
		}
	}
}

func TestThrottleWaitEndsWithContext(t *testing.T) {
	th := newThrottle(1000, 1)
	th.throttled(time.Now(), time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := th.wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wait during a pause = %v, want the context's error", err)
	}
}

// fakeClock hands out increasing times, to drive a rateControl without a real clock.
type fakeClock struct{ now time.Time }

func (c *fakeClock) tick(d time.Duration) time.Time {
	c.now = c.now.Add(d)
	return c.now
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_000_000, 0)} }

// respond records n responses without throttling, one per step, and returns the number of them that
// were worth a log line.
func respond(c *rateControl, clock *fakeClock, n int, step time.Duration) int {
	logged := 0
	for range n {
		if _, logIt := c.succeeded(clock.tick(step)); logIt {
			logged++
		}
	}
	return logged
}

func TestRateControlDecreasesOncePerEpoch(t *testing.T) {
	clock := newFakeClock()
	c := newRateControl(100)
	respond(&c, clock, 5, 10*time.Millisecond)

	beforeFirst := clock.tick(time.Millisecond)
	change, logIt := c.throttled(beforeFirst, clock.tick(100*time.Millisecond), 0)
	if got, want := c.rate, 90.0; got != want {
		t.Fatalf("rate after the first 429 = %v, want %v", got, want)
	}
	if change.old != 100 || change.new != 90 {
		t.Errorf("first change = %v -> %v, want 100 -> 90", change.old, change.new)
	}
	if !logIt {
		t.Errorf("first decrease was not logged")
	}

	// Requests already on their way when the rate dropped: their 429s belong to the same epoch.
	for range 10 {
		if change, logIt := c.throttled(beforeFirst, clock.tick(time.Millisecond), 0); logIt || change.new != change.old {
			t.Fatalf("429 of the same epoch: change = %+v, logged %v; want none", change, logIt)
		}
	}
	if got, want := c.rate, 90.0; got != want {
		t.Fatalf("rate after 429s of the same epoch = %v, want %v", got, want)
	}

	afterFirst := clock.tick(time.Millisecond)
	if _, logIt := c.throttled(afterFirst, clock.tick(50*time.Millisecond), 0); !logIt {
		t.Errorf("429 of the next epoch was not logged")
	}
	if got, want := c.rate, 81.0; math.Abs(got-want) > 1e-9 {
		t.Errorf("rate after the second epoch = %v, want %v", got, want)
	}
}

func TestRateControlFloor(t *testing.T) {
	for _, ceiling := range []float64{0.005, 1, 5, 100_000} {
		clock := newFakeClock()
		c := newRateControl(ceiling)
		for range 300 {
			c.throttled(clock.tick(time.Millisecond), clock.tick(time.Millisecond), time.Second)
		}
		if want := min(rateFloor, ceiling); c.rate != want {
			t.Errorf("ceiling %v: rate after 300 epochs of 429s = %v, want the floor %v", ceiling, c.rate, want)
		}
	}
}

func TestRateControlNeverAboveCeiling(t *testing.T) {
	clock := newFakeClock()
	c := newRateControl(50)
	highest := 0.0
	for epoch := range 5 {
		c.throttled(clock.tick(time.Millisecond), clock.tick(time.Millisecond), 0)
		for range 5000 * (epoch + 1) {
			c.succeeded(clock.tick(time.Millisecond))
			highest = max(highest, c.rate)
		}
	}
	if highest > 50 {
		t.Errorf("highest rate = %v, want at most the ceiling 50", highest)
	}
	if c.rate != 50 {
		t.Errorf("rate after 25,000 responses without 429 = %v, want back at the ceiling 50", c.rate)
	}
}

func TestRateControlCurve(t *testing.T) {
	// Right after a decrease from a peak of 100, far below the ceiling.
	c := rateControl{ceiling: 1000, floor: rateFloor, rate: 90, peak: 100, startShare: 0.9, probe: probeResponses}
	checkpoints := []struct {
		responses int
		want      float64
	}{
		{recoverResponses / 2, 100 * (1 - rateMargin - (1-rateMargin-0.9)/8)},
		{recoverResponses, 100 * (1 - rateMargin)},
		{recoverResponses + probeResponses, 100},
		{recoverResponses + 2*probeResponses, 100 * (1 - rateMargin + 8*rateMargin)},
		{recoverResponses + 4*probeResponses, 100 * (1 - rateMargin + 64*rateMargin)},
	}
	clock := newFakeClock()
	done, previous := 0, c.rate
	for _, cp := range checkpoints {
		for ; done < cp.responses; done++ {
			c.succeeded(clock.tick(time.Millisecond))
			if c.rate < previous {
				t.Fatalf("rate fell from %v to %v after %d responses without 429", previous, c.rate, done+1)
			}
			previous = c.rate
		}
		if math.Abs(c.rate-cp.want) > 1e-6*cp.want {
			t.Errorf("rate after %d responses = %v, want %v", cp.responses, c.rate, cp.want)
		}
	}
}

func TestRateControlPeakDuringRecovery(t *testing.T) {
	clock := newFakeClock()
	c := newRateControl(100)
	c.throttled(clock.tick(time.Millisecond), clock.tick(time.Millisecond), 0)
	respond(&c, clock, recoverResponses/4, time.Millisecond)
	c.throttled(clock.tick(time.Millisecond), clock.tick(time.Millisecond), 0)
	if c.peak != 100 {
		t.Fatalf("peak after the first 429 during the recovery = %v, want 100", c.peak)
	}
	respond(&c, clock, recoverResponses/4, time.Millisecond)
	rateAtThird := c.rate
	c.throttled(clock.tick(time.Millisecond), clock.tick(time.Millisecond), 0)
	respond(&c, clock, recoverResponses, time.Millisecond)

	// The second 429 during the recovery moves the peak halfway from 100 down to the rate it came at.
	peak := (100 + rateAtThird) / 2
	if want := (1 - rateMargin) * peak; math.Abs(c.rate-want) > 1e-9 {
		t.Errorf("rate after a 429 during the recovery and %d responses = %v, want %v", recoverResponses, c.rate, want)
	}
}

func TestRateControlFollowsFallenLimit(t *testing.T) {
	clock := newFakeClock()
	c := newRateControl(100)
	// The limit falls to 40 per second: every rate above it gets a 429 within a few dozen responses.
	for range 200 {
		if c.rate > 40 {
			respond(&c, clock, 20, time.Millisecond)
			c.throttled(clock.tick(time.Millisecond), clock.tick(time.Millisecond), 0)
			continue
		}
		respond(&c, clock, 20, time.Millisecond)
	}
	if c.rate > 40 || c.peak > 45 {
		t.Errorf("rate %v, peak %v after repeated 429s above 40 per second; want both near 40", c.rate, c.peak)
	}
}

func TestRateControlEstimate(t *testing.T) {
	tests := []struct {
		name string
		// The run has 250 responses in 2.5 s, then a 429 whose Retry-After is retryAfter.
		retryAfter time.Duration
		// tighter is the Retry-After of a 429 of the same epoch 50 ms later, zero for none.
		tighter time.Duration
		// throttledAgain gives a 429 to a request started 1 s after the first 429, before the response.
		throttledAgain bool
		// respondedAfter is the time from the first 429 to the response to the first request started
		// after it.
		respondedAfter time.Duration
		wantEstimate   bool
	}{
		{"Retry-After", 2500 * time.Millisecond, 0, false, 3 * time.Second, true},
		{"rounded up, then tighter", 3 * time.Second, 2450 * time.Millisecond, false, 4 * time.Second, true},
		{"no Retry-After, throttled again", 0, 0, true, 2500 * time.Millisecond, true},
		{"no Retry-After, backoff outlasted", 0, 0, false, 2500 * time.Millisecond, false},
		{"limit near the rate", 100 * time.Millisecond, 0, false, 200 * time.Millisecond, false},
		{"limit near the rate, Retry-After rounded up", 500 * time.Millisecond, 0, false, 600 * time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			c := newRateControl(100)
			respond(&c, clock, 250, 10*time.Millisecond)
			sentAt := clock.now
			first := clock.tick(0)
			c.throttled(sentAt, first, tt.retryAfter)
			if tt.tighter > 0 {
				clock.tick(50 * time.Millisecond)
				c.throttled(sentAt, clock.now, tt.tighter)
			}
			if tt.throttledAgain {
				c.started(first.Add(time.Second))
				c.throttled(first.Add(time.Second), first.Add(1100*time.Millisecond), 0)
			}
			c.started(first.Add(tt.respondedAfter - 10*time.Millisecond))
			clock.now = first.Add(tt.respondedAfter)
			c.succeeded(clock.now)

			// The first response came 10 ms after the start of the run, so the window spans 4.99 s.
			if !tt.wantEstimate {
				if c.first.estimate != 0 || c.peak != 100 {
					t.Errorf("estimate %v, peak %v; want no estimate and the peak 100 of the plain decrease", c.first.estimate, c.peak)
				}
				return
			}
			wantEstimate := 250 / (5.0 - 0.01)
			if got := c.first.estimate; math.Abs(got-wantEstimate) > 0.01 {
				t.Errorf("estimate = %v, want %v", got, wantEstimate)
			}
			if want := (1 - rateMargin) * wantEstimate; math.Abs(c.rate-want) > 0.01 {
				t.Errorf("rate = %v, want %v", c.rate, want)
			}
		})
	}
}

func TestRateControlLogsWithoutFlooding(t *testing.T) {
	clock := newFakeClock()
	c := newRateControl(100)
	if n := respond(&c, clock, 1000, time.Millisecond); n != 0 {
		t.Errorf("responses at the ceiling logged %d changes, want 0", n)
	}

	var lines []rateChange
	record := func(change rateChange, logIt bool) {
		if logIt {
			lines = append(lines, change)
		}
	}
	record(c.throttled(clock.tick(time.Millisecond), clock.tick(time.Millisecond), 0))
	for range 50_000 {
		record(c.succeeded(clock.tick(time.Millisecond)))
	}
	record(c.throttled(clock.tick(time.Millisecond), clock.tick(time.Millisecond), 0))

	// The decrease to 90, at most two increases of 10% or more on the way back to the ceiling of 100,
	// the next decrease.
	if len(lines) < 3 || len(lines) > 4 {
		t.Fatalf("logged %d changes, want 3 or 4: %+v", len(lines), lines)
	}
	for i, line := range lines {
		if line.reason == "" {
			t.Errorf("change %d has no reason: %+v", i, line)
		}
		if i > 0 && line.old != lines[i-1].new {
			t.Errorf("change %d starts from %v, want the last logged rate %v", i, line.old, lines[i-1].new)
		}
		if line.new > line.old && line.new != 100 && line.new < 1.1*line.old {
			t.Errorf("change %d = %+v: an increase of less than 10%% below the ceiling was logged", i, line)
		}
	}
	if got := lines[len(lines)-2]; got.new != 100 {
		t.Errorf("last increase = %+v, want the return to the ceiling of 100", got)
	}
	if got := lines[len(lines)-1]; got.old != 100 || got.new != 90 {
		t.Errorf("last change = %+v, want the decrease from 100 to 90", got)
	}
}

func TestThrottleThrottledPausesAndLowers(t *testing.T) {
	th := newThrottle(100, 1)
	sentAt := time.Now()
	if got, want := th.throttled(sentAt, 40*time.Millisecond), 40*time.Millisecond; got != want {
		t.Errorf("throttled with Retry-After returned a pause of %v, want %v", got, want)
	}
	if got, want := th.rate(), 90.0; got != want {
		t.Errorf("rate after a 429 = %v, want %v", got, want)
	}
	th.throttled(sentAt, 10*time.Millisecond)
	if got, want := th.rate(), 90.0; got != want {
		t.Errorf("rate after a second 429 of the same epoch = %v, want %v", got, want)
	}

	start := time.Now()
	if err := th.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 30*time.Millisecond {
		t.Errorf("wait returned after %v, want after the rest of the 40 ms pause", waited)
	}

	// Without Retry-After, the pause is a backoff that doubles with every epoch since the last response.
	th.succeeded()
	for epoch, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		if got := th.throttled(time.Now(), 0); got < want/2 || got > want {
			t.Errorf("epoch %d without Retry-After: pause = %v, want within [%v, %v]", epoch+1, got, want/2, want)
		}
	}
	th.succeeded()
	if got := th.throttled(time.Now(), 0); got > time.Second {
		t.Errorf("pause after a response = %v, want the first backoff again, at most 1s", got)
	}
}

func TestThrottleReserve(t *testing.T) {
	th := newThrottle(10, 2)
	now := time.Now()
	for i := range 2 {
		if _, ok := th.reserve(now); !ok {
			t.Fatalf("start %d of the burst of 2 was rejected", i+1)
		}
	}
	delay, ok := th.reserve(now)
	if ok {
		t.Fatalf("third start at once was allowed, want it rejected after a burst of 2")
	}
	// The bucket earns a token every 100 ms, counted from newThrottle, a moment before now.
	if delay <= 90*time.Millisecond || delay > 100*time.Millisecond {
		t.Errorf("delay before the third start = %v, want just under 100ms at 10 per second", delay)
	}
	if _, ok := th.reserve(now.Add(delay)); !ok {
		t.Errorf("start after the delay of %v was rejected", delay)
	}
}

func TestThrottleLogsChanges(t *testing.T) {
	var buf strings.Builder
	th := newThrottle(100, 1).logChanges(zerolog.New(&buf), "write")
	th.throttled(time.Now(), time.Millisecond)
	for range 1000 {
		th.succeeded()
	}

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("log has %d lines, want 1 for the decrease:\n%s", len(lines), buf.String())
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &fields); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"level": "info", "message": "write rate lowered", "requests": "write",
		"old_rate": 100.0, "new_rate": 90.0, "reason": "429 Too Many Requests"}
	for key, value := range want {
		if fields[key] != value {
			t.Errorf("log field %s = %v, want %v", key, fields[key], value)
		}
	}
}

func TestThrottleConcurrentUse(t *testing.T) {
	th := newThrottle(20_000, 10)
	var wg sync.WaitGroup
	for worker := range 16 {
		wg.Go(func() {
			for i := range 50 {
				if err := th.wait(context.Background()); err != nil {
					t.Error(err)
					return
				}
				sentAt := time.Now()
				if (worker+i)%10 == 0 {
					th.throttled(sentAt, time.Millisecond)
				} else {
					th.succeeded()
				}
			}
		})
	}
	wg.Wait()
	if got := th.rate(); got < rateFloor || got > 20_000 {
		t.Errorf("rate after concurrent use = %v, want within [%v, 20000]", got, rateFloor)
	}
}

func TestBackoff(t *testing.T) {
	base, maxWait := time.Second, time.Minute
	for attempt := 1; attempt <= 40; attempt++ {
		full := maxWait
		if attempt < 7 {
			full = base << (attempt - 1) // 1s, 2s, … 32s; 64s is over the maximum
		}
		for range 50 {
			got := backoff(attempt, base, maxWait)
			if got < full/2 || got > full {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", attempt, got, full/2, full)
			}
		}
	}
}

func TestHealthOutage(t *testing.T) {
	h := &health{outageAfter: 50 * time.Millisecond}
	start := time.Now()
	for range minOutageFaults {
		h.fault()
	}
	if h.outage() {
		t.Fatalf("outage before outageAfter has passed")
	}
	time.Sleep(60 * time.Millisecond)
	if !h.outage() {
		t.Fatalf("no outage after %d faults over %v", minOutageFaults, time.Since(start))
	}
	h.answered()
	if h.outage() || !h.answeredSince(start) {
		t.Errorf("after an answer: outage %v, answeredSince(start) %v; want false, true", h.outage(), h.answeredSince(start))
	}

	few := &health{outageAfter: time.Millisecond}
	few.fault()
	time.Sleep(5 * time.Millisecond)
	if few.outage() {
		t.Errorf("a single fault counts as an outage, want at least %d", minOutageFaults)
	}
}
