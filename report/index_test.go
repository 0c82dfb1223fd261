package report_test

import (
	"bytes"
	"encoding/csv"
	"os"
	"testing"
	"time"

	"reclaim/report"
)

func ExampleWriteIndex() {
	updated := time.Date(2026, 12, 4, 10, 30, 0, 0, time.UTC)
	report.WriteIndex(os.Stdout, []report.IndexLine{
		{File: "a.csv", State: report.WaveComplete, ExitCode: 1, UpdatedAt: updated,
			Summary: &report.Summary{Rows: 3, Counts: report.Counts{Revoked: 2, Invalid: 1}, Requests: 2, Runs: 1, Complete: true}},
		{File: "b.csv", State: report.WaveError, ExitCode: 2, Error: "b.csv: the file is empty; export the rows"},
		{File: "c.csv", State: report.WavePending},
	})
	// Output:
	// file,state,exit_code,rows,revoked,not_licensed,not_found,failed,invalid,duplicate,planned,pending,requests,runs,updated_at,error
	// a.csv,complete,1,3,2,0,0,0,1,0,0,0,2,1,2026-12-04T10:30:00Z,
	// b.csv,error,2,,,,,,,,,,,,,b.csv: the file is empty; export the rows
	// c.csv,pending,,,,,,,,,,,,,,
}

func TestWriteIndexColumns(t *testing.T) {
	var buf bytes.Buffer
	if err := report.WriteIndex(&buf, nil); err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 1 {
		t.Fatalf("WriteIndex(no lines) wrote %d records, want the header alone", len(records))
	}
	header := records[0]
	// The status columns follow file, state, exit_code and rows, in the order of Statuses, so a new status needs a new column.
	for i, status := range report.Statuses {
		if got := header[4+i]; got != string(status) {
			t.Errorf("index column %d = %q, want status %q", 4+i, got, status)
		}
	}
	if got := header[4+len(report.Statuses)]; got != "pending" {
		t.Errorf("column after the statuses = %q, want pending", got)
	}
}

func TestWriteIndexEscapesCells(t *testing.T) {
	var buf bytes.Buffer
	err := report.WriteIndex(&buf, []report.IndexLine{{File: "=cmd.csv", State: report.WaveError, ExitCode: 2,
		Error: "-bad\nline"}})
	if err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	line := records[1]
	if got, want := line[0], "'=cmd.csv"; got != want {
		t.Errorf("file cell = %q, want %q", got, want)
	}
	if got, want := line[len(line)-1], "'-bad line"; got != want {
		t.Errorf("error cell = %q, want %q", got, want)
	}
}

func TestSummaryAdd(t *testing.T) {
	a := report.Summary{Rows: 3, Counts: report.Counts{Revoked: 2, Failed: 1}, Requests: 4, Throttled: 1, Reads: 2,
		ReadsThrottled: 1, Retries: 1, Rejected: 1, Runs: 2, Elapsed: time.Second, Complete: true}
	b := report.Summary{Rows: 5, Counts: report.Counts{Revoked: 1, Duplicate: 1}, Requests: 1, Runs: 1,
		Elapsed: 2 * time.Second, Complete: false}

	sum := report.Summary{Complete: true}
	sum.Add(a)
	if !sum.Complete {
		t.Errorf("sum of one complete job: Complete = false, want true")
	}
	sum.Add(b)
	want := report.Summary{Rows: 8, Counts: report.Counts{Revoked: 3, Failed: 1, Duplicate: 1}, Requests: 5, Throttled: 1,
		Reads: 2, ReadsThrottled: 1, Retries: 1, Rejected: 1, Runs: 2, Elapsed: 3 * time.Second, Complete: false}
	if sum != want {
		t.Errorf("sum = %+v\nwant  %+v", sum, want)
	}
	if got := sum.Pending(); got != 3 {
		t.Errorf("sum.Pending() = %d, want 3", got)
	}

	dry := report.Summary{Complete: true, DryRun: true}
	dry.Add(report.Summary{Complete: true, DryRun: true})
	if !dry.DryRun || !dry.Complete {
		t.Errorf("sum of dry runs = %+v, want DryRun and Complete", dry)
	}
	dry.Add(report.Summary{Complete: true})
	if dry.DryRun {
		t.Errorf("sum with a real run: DryRun = true, want false")
	}
}
