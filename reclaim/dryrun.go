package reclaim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"reclaim/report"
)

// dryRun reads the whole input and writes the outcomes a run would start from into OutDir/dry-run:
// planned for the rows it would send, invalid and duplicate for the others. It needs no credentials,
// sends nothing and leaves the job's own files alone, so that a later real run is not mistaken for
// a finished one.
func dryRun(ctx context.Context, cfg Config, identity InputIdentity, index *waveIndex) error {
	log := cfg.Logger
	started := time.Now()
	input, err := OpenInput(cfg.Input, cfg.Notify)
	if err != nil {
		return &UsageError{Err: err}
	}
	defer input.Close()

	logStart(log.Info(), cfg, identity, 0, input).Msg("dry run started: nothing will be sent")
	if cp, err := loadCheckpoint(cfg.Checkpoint); err == nil && cp.Input.SHA256 == identity.SHA256 {
		log.Info().Int64("rows_done", cp.Counts.Total()).Bool("complete", cp.Complete).
			Msg("the out dir holds this job already; a real run would resume it")
	}

	dir := filepath.Join(cfg.OutDir, DryRunDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return usageErrorf("create dry-run folder: %w", err)
	}
	var counts report.Counts
	var planErr error
	err = writeFileAtomic(filepath.Join(dir, OutcomesFile), func(w io.Writer) error {
		counts, planErr = planRows(ctx, cfg, input, index, identity.Path, w)
		return planErr
	})
	if planErr != nil {
		// A stop or a bad row reads better without the file name that writeFileAtomic adds.
		return planErr
	}
	if err != nil {
		return err
	}

	summary := report.Summary{
		Rows:     int64(identity.Rows),
		Counts:   counts,
		Runs:     1,
		Elapsed:  time.Since(started),
		Complete: true,
		DryRun:   true,
	}
	if err := writeFileAtomic(filepath.Join(dir, SummaryFile), summary.WriteCSV); err != nil {
		return err
	}
	summaryLog(log.Info(), summary).Str("out_dir", dir).Msg("dry run ended")
	if err := summary.WriteText(cfg.Stdout); err != nil {
		return err
	}
	fmt.Fprintf(cfg.Stdout, "  outcomes   %s\n", filepath.Join(dir, OutcomesFile))
	if !counts.AllSucceeded() {
		return ErrRowsFailed
	}
	return nil
}

// planRows writes the dry-run outcome of every row of input to w and returns their counts. index is the
// wave index of the file at path, which input reads again.
func planRows(ctx context.Context, cfg Config, input *Input, index *waveIndex, path string, w io.Writer) (report.Counts, error) {
	var counts report.Counts
	if _, err := io.WriteString(w, report.OutcomesHeader); err != nil {
		return counts, err
	}
	outcomes := report.NewOutcomeWriter(w)
	skipped := &rowLogger{logger: cfg.Logger}
	for {
		if ctx.Err() != nil {
			return counts, &StopError{Reason: errInterrupted.Error()}
		}
		row, err := input.Next()
		if errors.Is(err, io.EOF) {
			return counts, nil
		}
		if err != nil {
			return counts, &UsageError{Err: err}
		}

		duplicate := false
		if row.Invalid == "" {
			var change string
			if _, duplicate, change = index.checkRow(row); change != "" {
				return counts, inputChangedError(path, change)
			}
		}

		outcome := rowOutcome(row, report.Planned, "")
		switch {
		case row.Invalid != "":
			outcome = rowOutcome(row, report.Invalid, row.Invalid)
			skipped.log(row, report.Invalid, row.Invalid)
		case duplicate:
			outcome = rowOutcome(row, report.Duplicate, duplicateReason)
			skipped.log(row, report.Duplicate, duplicateReason)
		}
		if _, err := outcomes.Write(outcome); err != nil {
			return counts, fmt.Errorf("write dry-run outcomes: %w", err)
		}
		counts.Add(outcome.Status)
	}
}
