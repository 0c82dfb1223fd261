package report

import (
	"io"
	"strconv"
	"time"

	"github.com/gocarina/gocsv"
)

// WaveState is the state of one wave file of an input folder, as index.csv shows it.
type WaveState string

const (
	// WaveComplete: every row has its outcome; exit_code is 0 or 1.
	WaveComplete WaveState = "complete"
	// WaveInProgress: the wave has a checkpoint with rows pending; the next run resumes it.
	WaveInProgress WaveState = "in_progress"
	// WavePending: no run has started the wave yet.
	WavePending WaveState = "pending"
	// WaveError: this run stopped the wave with exit code 2 or 3. The error column gives the reason and
	// the fix.
	WaveError WaveState = "error"
	// WaveBusy: another run holds the wave's out folder; the next run tries again.
	WaveBusy WaveState = "busy"
	// WaveMissing: the wave's out folder has a job, but the input folder no longer has its file. The
	// error column shows whether rows were left pending.
	WaveMissing WaveState = "missing"
	// WavePlanned: a dry run of the wave ended. It appears in a dry run's output, never in index.csv.
	WavePlanned WaveState = "planned"
)

// IndexLine is one line of index.csv: a wave file of the input folder and how far its job has come.
type IndexLine struct {
	// File is the wave's file name in the input folder.
	File  string
	State WaveState
	// ExitCode is the exit code of the last run that worked on the wave. index.csv leaves it empty for
	// a pending wave.
	ExitCode int
	// Summary holds the figures of the wave's checkpoint, or nil when the wave has none, which leaves
	// the count columns empty.
	Summary *Summary
	// UpdatedAt is when the wave's checkpoint was last saved; the zero time leaves the column empty.
	UpdatedAt time.Time
	// Error is the reason the wave stopped and the fix, or empty.
	Error string
}

// indexRecord is the CSV shape of an IndexLine; gocsv reads its tags. It has one column per Status, in
// the order of Statuses.
type indexRecord struct {
	File        cell   `csv:"file"`
	State       string `csv:"state"`
	ExitCode    string `csv:"exit_code"`
	Rows        string `csv:"rows"`
	Revoked     string `csv:"revoked"`
	NotLicensed string `csv:"not_licensed"`
	NotFound    string `csv:"not_found"`
	Failed      string `csv:"failed"`
	Invalid     string `csv:"invalid"`
	Duplicate   string `csv:"duplicate"`
	Planned     string `csv:"planned"`
	Pending     string `csv:"pending"`
	Requests    string `csv:"requests"`
	Runs        string `csv:"runs"`
	UpdatedAt   string `csv:"updated_at"`
	Error       cell   `csv:"error"`
}

// WriteIndex writes lines as index.csv: a header and one line per wave, in the order given. With no
// lines it writes the header alone.
func WriteIndex(w io.Writer, lines []IndexLine) error {
	records := make([]indexRecord, 0, len(lines))
	for _, line := range lines {
		records = append(records, indexRecordOf(line))
	}
	return gocsv.Marshal(records, w)
}

func indexRecordOf(line IndexLine) indexRecord {
	record := indexRecord{
		File:  cell(line.File),
		State: string(line.State),
		Error: cell(line.Error),
	}
	if line.State != WavePending {
		record.ExitCode = strconv.Itoa(line.ExitCode)
	}
	if !line.UpdatedAt.IsZero() {
		record.UpdatedAt = line.UpdatedAt.UTC().Format(time.RFC3339)
	}
	if s := line.Summary; s != nil {
		counts := s.Counts
		record.Rows = itoa(s.Rows)
		record.Revoked = itoa(counts.Revoked)
		record.NotLicensed = itoa(counts.NotLicensed)
		record.NotFound = itoa(counts.NotFound)
		record.Failed = itoa(counts.Failed)
		record.Invalid = itoa(counts.Invalid)
		record.Duplicate = itoa(counts.Duplicate)
		record.Planned = itoa(counts.Planned)
		record.Pending = itoa(s.Pending())
		record.Requests = itoa(s.Requests)
		record.Runs = strconv.Itoa(s.Runs)
	}
	return record
}
