package reclaim

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"

	"reclaim/report"
)

// state returns the wave's state and the exit code of the last run that worked on it.
func (w *wave) state() (report.WaveState, int) {
	var busy *BusyError
	code := ExitCode(w.err)
	if w.missing {
		if w.err == nil && w.cp != nil {
			return report.WaveMissing, w.cp.ExitCode
		}
		return report.WaveMissing, code
	}
	if w.handled {
		switch {
		case errors.As(w.err, &busy):
			return report.WaveBusy, code
		case code == ExitUsage || code == ExitAuth:
			return report.WaveError, code
		case w.cfg.DryRun && code <= ExitRowsFailed:
			return report.WavePlanned, code
		}
	}
	switch {
	case w.cpErr != nil:
		return report.WaveError, ExitCode(w.cpErr)
	case w.cp == nil:
		return report.WavePending, 0
	case w.cp.Complete:
		return report.WaveComplete, w.cp.ExitCode
	}
	return report.WaveInProgress, w.cp.ExitCode
}

// problem returns the error that index.csv shows for the wave, or nil.
func (w *wave) problem() error {
	switch {
	case w.err != nil && !errors.Is(w.err, ErrRowsFailed):
		return w.err
	case w.cpErr != nil:
		return w.cpErr
	}
	return nil
}

// writeIndex writes index.csv in the out dir atomically, with a line for every wave. A dry run leaves
// it alone, because it changes no wave, and so does a run whose fence check fails: it returns the
// check's error.
func (f *folderRun) writeIndex() error {
	if f.base.DryRun {
		return nil
	}
	if f.fence != nil {
		if err := f.fence(); err != nil {
			return err
		}
	}
	lines := make([]report.IndexLine, 0, len(f.waves))
	for _, w := range f.waves {
		state, code := w.state()
		line := report.IndexLine{File: w.name, State: state, ExitCode: code}
		if w.cp != nil {
			summary := summaryOf(w.cp)
			line.Summary = &summary
			line.UpdatedAt = w.cp.UpdatedAt
		}
		if err := w.problem(); err != nil {
			line.Error = err.Error()
		} else if w.missing {
			line.Error = "the wave file was removed from the input folder after its job was complete; its outcomes are kept"
		}
		lines = append(lines, line)
	}
	return writeFileAtomic(filepath.Join(f.base.OutDir, IndexFile), func(out io.Writer) error {
		return report.WriteIndex(out, lines)
	})
}

// result returns the Result of the run: the waves in name order, and the sum of their figures.
func (f *folderRun) result() Result {
	total := report.Summary{Complete: true}
	waves := []WaveResult{}
	for _, w := range f.waves {
		state, code := w.state()
		entry := WaveResult{Name: w.name, State: state, ExitCode: code}
		if w.cp != nil && !f.base.DryRun {
			entry.Summary = summaryOf(w.cp)
		}
		if w.err != nil {
			entry.Err = fmt.Errorf("wave %s: %w", w.name, w.err)
		}
		if !f.base.DryRun {
			total.Add(entry.Summary)
		}
		waves = append(waves, entry)
	}
	if f.base.DryRun {
		total = report.Summary{}
	}
	return Result{Summary: total, Read: !f.base.DryRun, Waves: waves}
}

// worstError returns the error of the first wave handled in this run with the most severe exit code,
// wrapped with the wave's name, or nil when every wave exited with 0.
func (f *folderRun) worstError() error {
	var worst *wave
	for _, w := range f.waves {
		if w.handled && w.err != nil && (worst == nil || severity(ExitCode(w.err)) > severity(ExitCode(worst.err))) {
			worst = w
		}
	}
	if worst == nil {
		return nil
	}
	return fmt.Errorf("wave %s: %w", worst.name, worst.err)
}

// writeTable writes a table of the waves and their states for people to stdout.
func (f *folderRun) writeTable() {
	if f.fence != nil && f.fence() != nil {
		// Another run may hold the folder now: the states seen here may be out of date.
		return
	}
	out := f.base.Stdout
	fmt.Fprintf(out, "\nwaves in %s\n", f.base.Input)
	if len(f.waves) == 0 {
		fmt.Fprintln(out, "  no waves: a wave is a file whose name ends in .csv")
	}
	table := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, w := range f.waves {
		state, code := w.state()
		exit, rows := "", ""
		if state != report.WavePending {
			exit = fmt.Sprintf("exit %d", code)
		}
		if w.cp != nil {
			summary := summaryOf(w.cp)
			rows = fmt.Sprintf("%d rows, %d pending", summary.Rows, summary.Pending())
		}
		fmt.Fprintf(table, "  %s\t%s\t%s\t%s\n", w.name, state, exit, rows)
	}
	table.Flush()
	if !f.base.DryRun {
		fmt.Fprintf(out, "  index         %s\n", filepath.Join(f.base.OutDir, IndexFile))
	}
}

// logEnd logs the end of the run with the number of waves in each state.
func (f *folderRun) logEnd(result Result, err error) {
	states := map[report.WaveState]int{}
	for _, w := range result.Waves {
		states[w.State]++
	}
	event := f.log.Info()
	if ExitCode(err) > ExitRowsFailed {
		event = f.log.Warn()
	}
	for _, state := range []report.WaveState{report.WaveComplete, report.WaveInProgress, report.WavePending,
		report.WaveError, report.WaveBusy, report.WavePlanned} {
		if states[state] > 0 {
			event = event.Int("waves_"+string(state), states[state])
		}
	}
	event.Int("exit_code", ExitCode(err)).Msg("folder run ended")
}

// severity orders exit codes from the least to the most severe: 0, 4, 1, 2, 3. A result that needs a
// person (failed rows, a bad or changed wave, a credential) wins over a stop that the next run resumes
// by itself, so that a Kubernetes Job fails on it rather than retrying and hiding it.
func severity(code int) int {
	switch code {
	case ExitOK:
		return 0
	case ExitStopped:
		return 1
	case ExitRowsFailed:
		return 2
	case ExitUsage:
		return 3
	}
	return 4
}
