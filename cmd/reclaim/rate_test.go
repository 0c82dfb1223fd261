package main

// End-to-end tests of the adaptive write rate. The simulator enforces a write limit that reclaim does
// not know, and the tests check what the run did (rows, 429 responses, log lines), never how long it
// took.

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"reclaim/graphclient/graphsim"
	"reclaim/reclaim"
)

// rateArgs are the flags of every run in this file. The simulators here have an open catalogue, so
// the harness also turns the license precheck off: these tests are about writes.
var rateArgs = []string{"--workers", "32", "--burst", "5"}

// rateChanges returns the Info lines that log a change of the write rate, in order.
func rateChanges(t *testing.T, r result) []map[string]any {
	t.Helper()
	var changes []map[string]any
	for _, line := range r.logLines(t) {
		message, _ := line["message"].(string)
		if line["requests"] == "write" && strings.HasPrefix(message, "write rate ") {
			changes = append(changes, line)
		}
	}
	return changes
}

// lowered returns the lines of changes that lowered the rate.
func lowered(changes []map[string]any) []map[string]any {
	var lines []map[string]any
	for _, line := range changes {
		if line["message"] == "write rate lowered" {
			lines = append(lines, line)
		}
	}
	return lines
}

// throttledShare returns the share of Graph requests that got 429.
func throttledShare(stats graphsim.Stats) float64 {
	return float64(stats.Throttled) / float64(max(stats.GraphRequests, 1))
}

func TestRateSettlesBelowLimit(t *testing.T) {
	const rate, limitPerSecond = 400, 200
	sim := startSim(t, graphsim.Options{WriteLimit: 2 * limitPerSecond, WriteWindow: 2 * time.Second,
		RetryAfter: graphsim.RetryAfterDecimal, LatencyMin: 5 * time.Millisecond, LatencyMax: 30 * time.Millisecond})
	rows := validWave(31, 1600)
	out := t.TempDir()
	args := append([]string{"--input", writeWave(t, rows), "--out-dir", out, "--rate", strconv.Itoa(rate)}, rateArgs...)

	res := sim.run(t, args...)
	res.wantCode(t, reclaim.ExitOK)
	checkOutcomes(t, out, rows)
	stats := sim.Stats()
	revokedOnce(t, stats, rows)
	// The first window admits a burst at --rate before anything throttles, so a few 429s are expected.
	if share := throttledShare(stats); share > 0.10 {
		t.Errorf("429 share = %.1f%% (%d of %d requests), want at most 10%%", 100*share, stats.Throttled, stats.GraphRequests)
	}

	changes := rateChanges(t, res)
	down := lowered(changes)
	if len(down) == 0 {
		t.Fatalf("no Info line lowered the write rate; rate lines: %v", changes)
	}
	for _, line := range changes {
		if line["level"] != "info" || line["reason"] == "" || line["old_rate"] == nil || line["new_rate"] == nil {
			t.Errorf("rate line %v: want level info, old_rate, new_rate and a reason", line)
		}
	}
	for _, line := range down {
		oldRate, newRate := line["old_rate"].(float64), line["new_rate"].(float64)
		if !(newRate < oldRate) || oldRate > rate {
			t.Errorf("lowering line %v: want new_rate below old_rate, and old_rate at most --rate %d", line, rate)
		}
	}
	// The first window throttles after a burst at --rate, and its Retry-After shows how long it lasts.
	estimate, ok := down[0]["estimated_limit"].(float64)
	if !ok || estimate < 0.8*limitPerSecond || estimate > 1.05*limitPerSecond {
		t.Errorf("first lowering line %v: want an estimated_limit near the limit of %d per second", down[0], limitPerSecond)
	}
	last := changes[len(changes)-1]["new_rate"].(float64)
	t.Logf("%d requests, %d throttled; %d rate lines, last rate %v", stats.GraphRequests, stats.Throttled, len(changes), last)
	if last < 0.5*limitPerSecond || last > 1.1*limitPerSecond {
		t.Errorf("last logged rate = %v, want near the limit of %d per second", last, limitPerSecond)
	}
}

func TestRateNeverAboveCeiling(t *testing.T) {
	// The window admits 30% more than --rate per second. A run that never sends faster than --rate
	// (with its burst, and some slack for the jitter of the latency) is never throttled.
	const rate = 200
	sim := startSim(t, graphsim.Options{WriteLimit: rate * 13 / 10, WriteWindow: time.Second,
		RetryAfter: graphsim.RetryAfterDecimal, LatencyMin: 5 * time.Millisecond, LatencyMax: 30 * time.Millisecond})
	rows := validWave(32, 1000)
	out := t.TempDir()
	args := append([]string{"--input", writeWave(t, rows), "--out-dir", out, "--rate", strconv.Itoa(rate)}, rateArgs...)

	res := sim.run(t, args...)
	res.wantCode(t, reclaim.ExitOK)
	checkOutcomes(t, out, rows)
	stats := sim.Stats()
	revokedOnce(t, stats, rows)
	if stats.Throttled != 0 {
		t.Errorf("429 responses = %d, want 0: reclaim sent faster than --rate %d", stats.Throttled, rate)
	}
	if changes := rateChanges(t, res); len(changes) != 0 {
		t.Errorf("rate changed without throttling: %v", changes)
	}
}

func TestRateFollowsLimitChange(t *testing.T) {
	const rate = 400
	high, low := 2*rate, rate/2
	sim := startSim(t, graphsim.Options{WriteLimit: high, WriteWindow: time.Second,
		RetryAfter: graphsim.RetryAfterDecimal, LatencyMin: 5 * time.Millisecond, LatencyMax: 30 * time.Millisecond})
	rows := validWave(33, 3000)
	out := t.TempDir()
	args := append([]string{"--input", writeWave(t, rows), "--out-dir", out, "--rate", strconv.Itoa(rate)}, rateArgs...)

	// Lower the limit to half of --rate after 800 revokes, and raise it back after 1,600.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type phase struct {
		throttledBefore int
		revoked         int
	}
	phases := make(chan phase, 2)
	go func() {
		defer close(phases)
		for _, step := range []struct{ after, limit int }{{800, low}, {1600, high}} {
			for {
				stats := sim.Stats()
				if stats.ByStatus[204] >= step.after {
					if err := sim.SetWriteLimit(step.limit, time.Second); err != nil {
						t.Error(err)
					}
					phases <- phase{throttledBefore: stats.Throttled, revoked: stats.ByStatus[204]}
					break
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}
	}()

	res := sim.run(t, args...)
	cancel()
	res.wantCode(t, reclaim.ExitOK)
	checkOutcomes(t, out, rows)
	stats := sim.Stats()
	revokedOnce(t, stats, rows)

	var seen []phase
	for p := range phases {
		seen = append(seen, p)
	}
	if len(seen) != 2 {
		t.Fatalf("the limit changed %d times during the run, want 2 (lowered, raised)", len(seen))
	}
	if seen[0].throttledBefore != 0 {
		t.Errorf("429 responses before the limit was lowered = %d, want 0", seen[0].throttledBefore)
	}
	if stats.Throttled == 0 {
		t.Errorf("no 429 response after the limit was lowered to %d per second", low)
	}
	if share := throttledShare(stats); share > 0.15 {
		t.Errorf("429 share = %.1f%% (%d of %d requests), want at most 15%%", 100*share, stats.Throttled, stats.GraphRequests)
	}
	down := lowered(rateChanges(t, res))
	if len(down) == 0 {
		t.Fatalf("no Info line lowered the write rate after the limit was lowered")
	}
	lowest := float64(rate)
	for _, line := range down {
		lowest = min(lowest, line["new_rate"].(float64))
	}
	t.Logf("%d requests, %d throttled; %d lowering lines, lowest rate %v", stats.GraphRequests, stats.Throttled, len(down), lowest)
	if lowest > 0.95*rate {
		t.Errorf("lowest logged rate = %v, want clearly below --rate %d after the limit fell to %d", lowest, rate, low)
	}
}
