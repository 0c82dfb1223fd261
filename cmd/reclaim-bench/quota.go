package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"syscall"

	"reclaim/reclaim"
)

const (
	quotaRows = 3000
	quotaSeed = 59
	// quotaUnlicensedTenths is how many rows in ten hold no license.
	quotaUnlicensedTenths = 3
	// quotaKillShare is the share of rows with an outcome when the first run is killed.
	quotaKillShare = 0.5
	// maxWastedShare is the target: the largest share of writes that reclaim nothing.
	maxWastedShare = 0.02
)

func runQuota(ctx context.Context, b *bench) (*block, error) {
	if err := b.requirePrecheck("to skip unlicensed rows"); err != nil {
		return nil, err
	}
	wv := &wave{seed: quotaSeed, rows: b.scaled(quotaRows, 100), licensed: func(i int) bool { return i%10 >= quotaUnlicensedTenths }}
	if err := wv.write(filepath.Join(b.workDir, "quota-wave.csv")); err != nil {
		return nil, err
	}
	dir, err := b.dir("quota")
	if err != nil {
		return nil, err
	}
	opts := waveOptions(wv, 1)
	// A request cut off by the kill has taken effect, as it would have at a real service.
	opts.ProcessBeforeLatency = true
	sim, err := startSimulator(opts, dir)
	if err != nil {
		return nil, err
	}
	defer sim.Close()

	out := filepath.Join(dir, "out")
	args := []string{"--input", wv.path, "--rate", strconv.Itoa(waveRate), "--workers", strconv.Itoa(waveWorkers)}
	first, err := b.startReclaim(ctx, sim, out, args...)
	if err != nil {
		return nil, err
	}
	doneAtKill, err := signalAtRows(ctx, first, int64(quotaKillShare*float64(wv.rows)), syscall.SIGKILL)
	killed := first.wait()
	if err != nil {
		return nil, err
	}
	if err := killed.check(-int(syscall.SIGKILL)); err != nil {
		return nil, fmt.Errorf("first run: %w", err)
	}
	b.logf("quota: killed the first run at %d of %d rows", doneAtKill, wv.rows)
	resumed, err := b.runReclaim(ctx, sim, out, reclaim.ExitOK, args...)
	if err != nil {
		return nil, fmt.Errorf("resumed run: %w", err)
	}
	summary, err := readSummary(out)
	if err != nil {
		return nil, err
	}

	stats := sim.Stats()
	written := writes(stats)
	if err := checkBigWave(wv, summary, stats, true); err != nil {
		return nil, err
	}
	removed := stats.LicensesRemovedTotal
	// The licenses that the killed run removed without writing the rows' outcomes: the resumed run
	// found them gone.
	cutOff := removed - int(summaryInt(summary, "revoked"))
	repeats := 0
	for _, calls := range stats.RevokeCalls {
		repeats += calls - 1
	}
	wasted := written - removed
	share := float64(wasted) / float64(max(written, 1))
	b.logf("quota: %d writes, %d licenses removed, %.2f%% of writes reclaimed nothing", written, removed, 100*share)

	blk := &block{
		title: "Writes that reclaim nothing",
		intro: []string{fmt.Sprintf("The reclaim binary runs with `run --rate %d --workers %d` and the precheck on "+
			"over %s distinct rows of %d iOS VPP apps, against graphsim set as for the 1x throughput wave "+
			"(write limit %g per second, unknown to reclaim, latency %d to %d ms). In graphsim %d rows in every 10 "+
			"hold no license. The first run is killed with SIGKILL once %.0f%% of the rows have an outcome, and "+
			"graphsim applies each revoke before its latency, so the requests that the kill cuts off have taken "+
			"effect. The same command then finishes the job. The figures are graphsim's counts. Write requests "+
			"are all its Graph requests except the reads, and include the requests that the kill cut off.",
			waveRate, waveWorkers, thousands(wv.rows), waveApps, float64(opts.WriteLimit)/waveWindow.Seconds(),
			latencyMin.Milliseconds(), latencyMax.Milliseconds(), quotaUnlicensedTenths, 100*quotaKillShare)},
		table: table{header: []string{"figure", "value"}},
	}
	blk.table.add("rows with an outcome at the kill", fmt.Sprintf("%s of %s", thousands(int(doneAtKill)), thousands(wv.rows)))
	blk.table.add("wall time of the two runs", fmt.Sprintf("%s + %s", seconds(killed.elapsed), seconds(resumed.elapsed)))
	blk.table.add("rows revoked / not_licensed", fmt.Sprintf("%s / %s", summaryCount(summary, "revoked"), summaryCount(summary, "not_licensed")))
	blk.table.add("licenses removed by requests that the kill cut off (their rows are not_licensed)", thousands(cutOff))
	blk.table.add("write requests", thousands(written))
	blk.table.add("licenses removed", thousands(removed))
	blk.table.add("writes answered 429", thousands(stats.Throttled))
	blk.table.add("writes to a device without a license (graphsim's no-op revokes)", thousands(stats.NoOpRevokesTotal))
	blk.table.add("writes repeated for a pair", thousands(repeats))
	blk.table.add("read requests", thousands(stats.ReadRequests))
	blk.targets = []target{{
		goal:   "at most 2% of write requests reclaim nothing (writes minus licenses removed, over writes)",
		figure: fmt.Sprintf("%s (%s of %s)", percent(share), thousands(wasted), thousands(written)),
		met:    share <= maxWastedShare,
	}}
	return blk, nil
}
