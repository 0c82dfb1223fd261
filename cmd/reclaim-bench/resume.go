package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"reclaim/reclaim"
)

const (
	// resumeDoneShare is the share of rows with an outcome when the first run is stopped.
	resumeDoneShare = 0.9
	// maxFirstRequest is the target: the longest time from the start of the resumed process to its
	// first Graph request.
	maxFirstRequest = 2 * time.Second
)

// resumeSignals are the ways the first run is stopped. SIGTERM lets it drain and save its checkpoint.
// SIGKILL leaves the outcome lines written since the last checkpoint for the resume to read back.
var resumeSignals = []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL}

// resumeRun is a stopped and resumed job.
type resumeRun struct {
	signal syscall.Signal
	// doneAtSignal is the number of outcome lines when the signal was sent, and doneAfterStop when the
	// first process had ended.
	doneAtSignal  int64
	doneAfterStop int64
	resumed       result
	firstRequest  time.Duration
	firstWrite    time.Duration
}

func (b *bench) stopAndResume(ctx context.Context, wv *wave, sig syscall.Signal) (resumeRun, error) {
	dir, err := b.dir("resume-" + sig.String())
	if err != nil {
		return resumeRun{}, err
	}
	sim, err := bigWaveSimulator(wv, dir)
	if err != nil {
		return resumeRun{}, err
	}
	defer sim.Close()
	out := filepath.Join(dir, "out")
	args := append([]string{"--input", wv.path}, bigWaveArgs...)

	first, err := b.startReclaim(ctx, sim, out, args...)
	if err != nil {
		return resumeRun{}, err
	}
	run := resumeRun{signal: sig}
	run.doneAtSignal, err = signalAtRows(ctx, first, int64(resumeDoneShare*float64(wv.rows)), sig)
	stopped := first.wait()
	if err != nil {
		return resumeRun{}, err
	}
	wantCode := reclaim.ExitStopped
	if sig == syscall.SIGKILL {
		wantCode = -int(syscall.SIGKILL)
	}
	if err := stopped.check(wantCode); err != nil {
		return resumeRun{}, fmt.Errorf("first run: %w", err)
	}
	if run.doneAfterStop, err = countOutcomes(out); err != nil {
		return resumeRun{}, err
	}

	sim.times.reset()
	second, err := b.startReclaim(ctx, sim, out, args...)
	if err != nil {
		return resumeRun{}, err
	}
	run.resumed = second.wait()
	if err := run.resumed.check(reclaim.ExitOK); err != nil {
		return resumeRun{}, fmt.Errorf("resumed run: %w", err)
	}
	summary, err := readSummary(out)
	if err != nil {
		return resumeRun{}, err
	}
	if err := checkBigWave(wv, summary, sim.Stats(), sig == syscall.SIGKILL); err != nil {
		return resumeRun{}, err
	}

	firstRequest, firstWrite, _ := sim.times.get()
	if firstRequest.IsZero() || firstWrite.IsZero() {
		return resumeRun{}, fmt.Errorf("the resumed run sent no Graph request or no write; its log is %s", run.resumed.logPath)
	}
	run.firstRequest = firstRequest.Sub(second.started)
	run.firstWrite = firstWrite.Sub(second.started)
	b.logf("resume after %s at %s of %s rows: first request after %s, first write after %s, resumed run %s",
		signalName(sig), thousands(int(run.doneAfterStop)), thousands(wv.rows), run.firstRequest.Round(time.Millisecond),
		run.firstWrite.Round(time.Millisecond), seconds(run.resumed.elapsed))
	return run, nil
}

func runResume(ctx context.Context, b *bench) (*block, error) {
	if err := b.requirePrecheck("for the real run it resumes"); err != nil {
		return nil, err
	}
	wv, err := b.smallBigWave()
	if err != nil {
		return nil, err
	}

	blk := &block{
		title: "Time to the first request when resuming",
		intro: []string{fmt.Sprintf("The job is the %s-row wave of the memory scenario, run by the reclaim binary "+
			"with `run %s` and the precheck on, against graphsim with no limit and no latency. The benchmark "+
			"counts the lines of outcomes.csv as the first run writes them and sends a signal once %.0f%% of the "+
			"rows have an outcome, then starts the same command again. The times run from just before the "+
			"resumed process starts to graphsim's responses to its first Graph request (a precheck read) and "+
			"to its first write, as graphsim logs them into the benchmark process. graphsim has no latency here, "+
			"so a response follows the request's arrival by graphsim's processing time only. Before its first "+
			"request, the resumed run reads the whole input, loads the checkpoint and the outcome lines written "+
			"after it, and gets a token.", thousands(wv.rows), joinArgs(bigWaveArgs), 100*resumeDoneShare)},
		table: table{header: []string{"first run stopped by", "rows done at the signal", "rows done when it ended",
			"to first request", "to first write", "resumed run's wall time", "resumed run's peak memory"}},
	}
	for _, sig := range resumeSignals {
		run, err := b.stopAndResume(ctx, wv, sig)
		if err != nil {
			return nil, fmt.Errorf("after %s: %w", sig, err)
		}
		blk.table.add(signalName(sig), thousands(int(run.doneAtSignal)), thousands(int(run.doneAfterStop)),
			milliseconds(run.firstRequest), milliseconds(run.firstWrite), seconds(run.resumed.elapsed), mib(run.resumed.peakRSS))
		blk.targets = append(blk.targets, target{
			goal:   fmt.Sprintf("after %s, at most 2 s from the start of the resumed process to its first request", signalName(sig)),
			figure: milliseconds(run.firstRequest),
			met:    run.firstRequest <= maxFirstRequest,
		})
	}
	return blk, nil
}

func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGKILL:
		return "SIGKILL"
	}
	return sig.String()
}

func milliseconds(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }
