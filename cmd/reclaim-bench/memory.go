package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"reclaim/graphclient/graphsim"
	"reclaim/reclaim"
)

// The big waves: a license for one row in memoryLicensedEvery, so that the precheck settles most
// rows without a write and the run ends in seconds, while the licensed rows are revoked for real.
const (
	memorySmallRows     = 1_000_000
	memoryLargeRows     = 4_000_000
	memoryLicensedEvery = 1000
	memorySeed          = 53
	bigWaveRate         = 1000
	bigWaveWorkers      = 32
	// maxPeakSmall is the target: the largest peak resident memory accepted at memorySmallRows.
	maxPeakSmall = 64 << 20
)

// bigWaveArgs are the flags of every run over a big wave, after --input.
var bigWaveArgs = []string{"--rate", strconv.Itoa(bigWaveRate), "--workers", strconv.Itoa(bigWaveWorkers)}

// smallBigWave returns the big wave of memorySmallRows rows (times the scale), writing it on first use.
// It has at least 50,000 rows, so that the last tenth, which the resume scenario leaves pending, holds
// some licensed rows.
func (b *bench) smallBigWave() (*wave, error) {
	if b.bigWave != nil {
		return b.bigWave, nil
	}
	wv, err := b.writeBigWave(b.scaled(memorySmallRows, 50_000))
	if err != nil {
		return nil, err
	}
	b.bigWave = wv
	return wv, nil
}

func (b *bench) writeBigWave(rows int) (*wave, error) {
	wv := &wave{seed: memorySeed, rows: rows, licensed: everyNth(memoryLicensedEvery)}
	b.logf("writing a wave of %s rows", thousands(rows))
	return wv, wv.write(filepath.Join(b.workDir, fmt.Sprintf("wave-%d.csv", rows)))
}

// bigWaveSimulator starts a simulator that holds the licenses of wv, with no limit and no latency.
func bigWaveSimulator(wv *wave, dir string) (*simulator, error) {
	return startSimulator(graphsim.Options{Apps: wv.catalogue(), Seed: memorySeed}, dir)
}

// memoryRun is one complete run over a big wave.
type memoryRun struct {
	wave    *wave
	res     result
	summary map[string]string
}

func (b *bench) runBigWave(ctx context.Context, wv *wave) (memoryRun, error) {
	dir, err := b.dir(fmt.Sprintf("memory-%d", wv.rows))
	if err != nil {
		return memoryRun{}, err
	}
	sim, err := bigWaveSimulator(wv, dir)
	if err != nil {
		return memoryRun{}, err
	}
	defer sim.Close()

	out := filepath.Join(dir, "out")
	res, err := b.runReclaim(ctx, sim, out, reclaim.ExitOK, append([]string{"--input", wv.path}, bigWaveArgs...)...)
	if err != nil {
		return memoryRun{}, err
	}
	summary, err := readSummary(out)
	if err != nil {
		return memoryRun{}, err
	}
	if err := checkBigWave(wv, summary, sim.Stats(), false); err != nil {
		return memoryRun{}, err
	}
	b.logf("memory: %s rows in %s, peak RSS %s", thousands(wv.rows), seconds(res.elapsed), mib(res.peakRSS))
	return memoryRun{wave: wv, res: res, summary: summary}, nil
}

// checkBigWave returns an error unless graphsim removed the license of every licensed row of wv, and
// every row was settled as revoked or not_licensed. After a kill, the rows whose revoke requests were in
// flight get not_licensed when the job resumes, because their licenses are gone by then, so only a job
// that was never killed must have exactly the licensed rows revoked.
func checkBigWave(wv *wave, summary map[string]string, stats graphsim.Stats, killed bool) error {
	licensed := int64(wv.licensedCount())
	revoked, notLicensed := summaryInt(summary, "revoked"), summaryInt(summary, "not_licensed")
	removed := int64(stats.LicensesRemovedTotal)
	switch {
	case removed != licensed:
		return fmt.Errorf("graphsim removed %d licenses, want %d", removed, licensed)
	case revoked+notLicensed != int64(wv.rows):
		return fmt.Errorf("revoked %d + not_licensed %d rows, want all %d rows", revoked, notLicensed, wv.rows)
	case revoked > licensed || (!killed && revoked != licensed):
		return fmt.Errorf("revoked %d rows, want %d", revoked, licensed)
	}
	return nil
}

func runMemory(ctx context.Context, b *bench) (*block, error) {
	if err := b.requirePrecheck("so that unlicensed rows cost no write"); err != nil {
		return nil, err
	}
	small, err := b.smallBigWave()
	if err != nil {
		return nil, err
	}
	smallRun, err := b.runBigWave(ctx, small)
	if err != nil {
		return nil, err
	}
	large, err := b.writeBigWave(b.scaled(memoryLargeRows, 200_000))
	if err != nil {
		return nil, err
	}
	largeRun, err := b.runBigWave(ctx, large)
	if err != nil {
		return nil, err
	}

	growth := float64(largeRun.res.peakRSS-smallRun.res.peakRSS) / float64(large.rows-small.rows)
	blk := &block{
		title: "Peak memory of a real run",
		intro: []string{fmt.Sprintf("The reclaim binary runs as a child process with `run %s` and the license "+
			"precheck on, over waves of distinct rows of %d iOS VPP apps. In graphsim one row in %s holds a "+
			"license, so the precheck settles most rows as not_licensed without a write, the run ends in "+
			"seconds to a minute, and the licensed rows are revoked for real. graphsim has no write limit and no "+
			"latency. Peak memory is the high-water mark of the process's resident memory (VmHWM), polled "+
			"from /proc every 20 ms while it runs.", joinArgs(bigWaveArgs), waveApps, thousands(memoryLicensedEvery))},
		table: table{header: []string{"rows", "licensed rows", "wall time", "peak resident memory", "revoked",
			"not_licensed", "read requests"}},
	}
	for _, run := range []memoryRun{smallRun, largeRun} {
		blk.table.add(thousands(run.wave.rows), thousands(run.wave.licensedCount()), seconds(run.res.elapsed),
			mib(run.res.peakRSS), summaryCount(run.summary, "revoked"), summaryCount(run.summary, "not_licensed"),
			summaryCount(run.summary, "reads"))
	}
	blk.table.add("growth per additional row", "", "", fmt.Sprintf("%.1f bytes", growth), "", "", "")
	blk.targets = []target{{
		goal:   fmt.Sprintf("peak resident memory at most 64 MiB at %s rows", thousands(small.rows)),
		figure: mib(smallRun.res.peakRSS),
		met:    smallRun.res.peakRSS <= maxPeakSmall,
	}}
	if small.rows != memorySmallRows {
		blk.notes = append(blk.notes, fmt.Sprintf("This was a scaled run: the target is set for %s rows.", thousands(memorySmallRows)))
	}
	return blk, nil
}

// joinArgs returns args as they appear on a command line.
func joinArgs(args []string) string { return strings.Join(args, " ") }
