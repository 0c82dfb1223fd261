package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"reclaim/graphclient/graphsim"
	"reclaim/reclaim"
)

// The throughput wave. At 1x the simulator admits 500 writes per 5 s sliding window, 20 times the rate of
// Intune's 100 writes per 20 s, so that a wave of a few thousand rows takes under a minute.
const (
	waveRate    = 100 // --rate, revoke requests per second
	waveWindow  = 5 * time.Second
	waveWorkers = 64
	waveRows    = 6000
	waveSeed    = 31
	latencyMin  = 50 * time.Millisecond
	latencyMax  = 300 * time.Millisecond
	// The targets: maxThrottledShare is the largest share of 429 responses among all Graph requests, and
	// minRateShare the smallest rate of successful revokes as a share of the lower of the limit and --rate.
	maxThrottledShare = 0.02
	minRateShare      = 0.95
)

// waveFactors are the simulator's write limits as multiples of --rate.
var waveFactors = []float64{0.5, 1, 2}

// waveResult is one run of the throughput wave.
type waveResult struct {
	factor float64
	// limit is the simulator's write limit in writes per second.
	limit   float64
	rows    int
	elapsed time.Duration
	revoked int64
	failed  int64
	// requests and throttled are graphsim's counts of Graph requests and of 429 responses, reads
	// included.
	requests  int
	throttled int
	reads     int
	// firstWrite is the time from the start of the process to graphsim's first response to a write,
	// and writePhase from then to the last response to a write.
	firstWrite time.Duration
	writePhase time.Duration
}

// rowsPerSecond returns the successful revokes per second over the whole run of the process.
func (w *waveResult) rowsPerSecond() float64 { return float64(w.revoked) / w.elapsed.Seconds() }

// writePhaseRate returns the successful revokes per second between the first and the last response to
// a write.
func (w *waveResult) writePhaseRate() float64 {
	return float64(w.revoked) / max(w.writePhase.Seconds(), 0.001)
}

// target returns the lowest rowsPerSecond that meets the goal: 0.95 times the lower of the limit and
// --rate.
func (w *waveResult) target() float64 { return minRateShare * min(w.limit, waveRate) }

func (w *waveResult) throttledShare() float64 {
	return float64(w.throttled) / float64(max(w.requests, 1))
}

// waveOptions returns the simulator options of the throughput wave at factor times --rate.
func waveOptions(wv *wave, factor float64) graphsim.Options {
	return graphsim.Options{
		Apps:        wv.catalogue(),
		WriteLimit:  int(factor * waveRate * waveWindow.Seconds()),
		WriteWindow: waveWindow,
		// Reads have ten times the budget of writes, as in Intune.
		ReadLimit:  int(10 * factor * waveRate * waveWindow.Seconds()),
		ReadWindow: waveWindow,
		RetryAfter: graphsim.RetryAfterRotate,
		LatencyMin: latencyMin,
		LatencyMax: latencyMax,
		Seed:       waveSeed,
	}
}

// throughputWave returns the wave of the throughput scenario, written into the work folder.
func (b *bench) throughputWave() (*wave, error) {
	wv := &wave{seed: waveSeed, rows: b.scaled(waveRows, 50), licensed: everyRow}
	return wv, wv.write(filepath.Join(b.workDir, "throughput-wave.csv"))
}

// runWave runs the reclaim binary over wv against a simulator whose write limit is factor times --rate.
func (b *bench) runWave(ctx context.Context, wv *wave, factor float64) (*waveResult, error) {
	dir, err := b.dir(fmt.Sprintf("wave-%gx", factor))
	if err != nil {
		return nil, err
	}
	opts := waveOptions(wv, factor)
	sim, err := startSimulator(opts, dir)
	if err != nil {
		return nil, err
	}
	defer sim.Close()

	out := filepath.Join(dir, "out")
	res, err := b.runReclaim(ctx, sim, out, reclaim.ExitOK, "--input", wv.path,
		"--rate", strconv.Itoa(waveRate), "--workers", strconv.Itoa(waveWorkers))
	if err != nil {
		return nil, err
	}
	summary, err := readSummary(out)
	if err != nil {
		return nil, err
	}
	stats := sim.Stats()
	_, firstWrite, lastWrite := sim.times.get()
	w := &waveResult{
		factor:     factor,
		limit:      float64(opts.WriteLimit) / waveWindow.Seconds(),
		rows:       wv.rows,
		elapsed:    res.elapsed,
		revoked:    summaryInt(summary, "revoked"),
		failed:     summaryInt(summary, "failed"),
		requests:   stats.GraphRequests,
		throttled:  stats.Throttled + stats.ReadThrottled,
		reads:      stats.ReadRequests,
		firstWrite: firstWrite.Sub(res.started),
		writePhase: lastWrite.Sub(firstWrite),
	}
	if removed := stats.LicensesRemovedTotal; int64(removed) != w.revoked {
		return nil, fmt.Errorf("summary.csv counts %d revoked rows, but graphsim removed %d licenses", w.revoked, removed)
	}
	b.logf("throughput: limit %gx: %d of %d rows revoked in %s, %.1f rows/s (target %.1f), 429 share %.2f%%",
		factor, w.revoked, w.rows, w.elapsed.Round(100*time.Millisecond), w.rowsPerSecond(), w.target(), 100*w.throttledShare())
	return w, nil
}

func runThroughput(ctx context.Context, b *bench) (*block, error) {
	wv, err := b.throughputWave()
	if err != nil {
		return nil, err
	}
	precheck := "the license precheck included"
	if !b.precheck {
		precheck = "without a license precheck, which this binary lacks"
	}
	blk := &block{
		title: "Throughput against a write limit that reclaim is not told",
		intro: []string{fmt.Sprintf("The reclaim binary runs as a child process with `run --rate %d --workers %d` "+
			"and the other flags at their defaults, %s, over %s distinct rows of %d "+
			"iOS VPP apps whose devices all hold a license. It talks over HTTPS to graphsim in the benchmark "+
			"process and gets its token from graphsim's token endpoint with a client secret. graphsim admits "+
			"writes through a sliding window of %s per client, with a limit of 0.5, 1 and 2 times --rate "+
			"(reclaim is not told the limit), gives Retry-After in each of its five forms in turn (one of them "+
			"no header at all), and delays every response by %d to %d ms. The rate that the target applies to "+
			"counts successful revokes over the whole life of the process, start-up and precheck reads "+
			"included. The write-phase rate counts them from graphsim's first response to a write to its last. "+
			"The 429 share is graphsim's count of 429 responses over all Graph requests, reads included.",
			waveRate, waveWorkers, precheck, thousands(wv.rows), waveApps, fmt.Sprintf("%g s", waveWindow.Seconds()),
			latencyMin.Milliseconds(), latencyMax.Milliseconds())},
		table: table{header: []string{"write limit", "wall time", "revoked", "revoked per second",
			"of 0.95 × min(limit, --rate)", "first write after", "write-phase rate", "Graph requests", "reads",
			"429 responses", "429 share"}},
	}

	for _, factor := range waveFactors {
		w, err := b.runWave(ctx, wv, factor)
		if err != nil {
			return nil, fmt.Errorf("wave at %gx: %w", factor, err)
		}
		if factor == 1 {
			b.wave1x = w
		}
		blk.table.add(fmt.Sprintf("%gx: %g/s", factor, w.limit), seconds(w.elapsed),
			fmt.Sprintf("%s of %s", thousands(int(w.revoked)), thousands(w.rows)), fmt.Sprintf("%.1f", w.rowsPerSecond()),
			fmt.Sprintf("%.3f", w.rowsPerSecond()/w.target()), seconds(w.firstWrite), fmt.Sprintf("%.1f", w.writePhaseRate()),
			thousands(w.requests), thousands(w.reads), thousands(w.throttled), percent(w.throttledShare()))
		blk.targets = append(blk.targets,
			target{goal: fmt.Sprintf("limit %gx: at least %.1f revoked rows per second (0.95 × %g)", factor, w.target(), min(w.limit, waveRate)),
				figure: fmt.Sprintf("%.1f", w.rowsPerSecond()), met: w.rowsPerSecond() >= w.target()},
			target{goal: fmt.Sprintf("limit %gx: at most 2%% of requests answered 429", factor),
				figure: percent(w.throttledShare()), met: w.throttledShare() <= maxThrottledShare})
		if w.rowsPerSecond() < w.target() {
			blk.notes = append(blk.notes, w.missedRateReason())
		}
	}
	return blk, nil
}

// missedRateReason returns a paragraph with the figures that explain a missed rate target: the time
// before the first write, and the rate of the write phase against the target and the limit.
func (w *waveResult) missedRateReason() string {
	lead := fmt.Sprintf("At %gx the rate target is missed. The first response to a write came %s after the "+
		"process started, after start-up and %d precheck reads. ", w.factor, seconds(w.firstWrite), w.reads)
	if w.writePhaseRate() >= w.target() {
		return lead + fmt.Sprintf("The write phase alone reached %.1f revokes per second, which meets the target, "+
			"so the time before the first write is what misses it.", w.writePhaseRate())
	}
	return lead + fmt.Sprintf("The write phase alone reached %.1f revokes per second, %.3f of the target, so "+
		"it misses the target too: the adaptive rate averaged below 0.95 × min(limit, --rate) while writing.",
		w.writePhaseRate(), w.writePhaseRate()/w.target())
}

// seconds formats d as seconds with one decimal.
func seconds(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

// percent formats a share as a percentage with two decimals.
func percent(share float64) string { return fmt.Sprintf("%.2f%%", 100*share) }

// thousands formats n with commas between groups of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// mib formats bytes as MiB with one decimal.
func mib(bytes int64) string { return fmt.Sprintf("%.1f MiB", float64(bytes)/(1<<20)) }
