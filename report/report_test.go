package report_test

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"reclaim/report"
)

func ExampleOutcomeWriter() {
	w := report.NewOutcomeWriter(os.Stdout)
	os.Stdout.WriteString(report.OutcomesHeader)
	finished := time.Date(2026, 12, 4, 10, 30, 0, 0, time.UTC)
	w.Write(report.Outcome{Row: 1, AppID: "4f0c7a8e-2d3b-4c5a-9e6f-7a8b9c0d1e2f", DeviceID: "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
		Status: report.Revoked, HTTPStatus: 204, Attempts: 1, RequestID: "6a1e2b3c-0000-4000-8000-000000000001", FinishedAt: finished})
	w.Write(report.Outcome{Row: 2, AppID: "=HYPERLINK(\"x\")", DeviceID: "", Status: report.Invalid,
		ErrorMessage: "app id \"=HYPERLINK(\"x\")\" is not a GUID", FinishedAt: finished})
	// Output:
	// row,app_id,device_id,status,http_status,attempts,error_code,error_message,request_id,finished_at
	// 1,4f0c7a8e-2d3b-4c5a-9e6f-7a8b9c0d1e2f,0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e,revoked,204,1,,,6a1e2b3c-0000-4000-8000-000000000001,2026-12-04T10:30:00Z
	// 2,"'=HYPERLINK(""x"")",,invalid,,0,,"app id ""=HYPERLINK(""x"")"" is not a GUID",,2026-12-04T10:30:00Z
}

func ExampleSummary_WriteCSV() {
	s := report.Summary{
		Rows:     6,
		Counts:   report.Counts{Revoked: 3, NotLicensed: 1, Failed: 1},
		Requests: 6, Throttled: 1, Reads: 4, ReadsThrottled: 1, Retries: 2, Runs: 2,
		Elapsed: 1500 * time.Millisecond,
	}
	s.WriteCSV(os.Stdout)
	// Output:
	// metric,value
	// rows,6
	// revoked,3
	// not_licensed,1
	// not_found,0
	// failed,1
	// invalid,0
	// duplicate,0
	// planned,0
	// pending,1
	// requests,6
	// throttled,1
	// reads,4
	// reads_throttled,1
	// retries,2
	// tokens_rejected,0
	// runs,2
	// elapsed_seconds,1.5
	// complete,false
}

func TestOutcomeWriterEscapesCells(t *testing.T) {
	tests := []struct {
		message string
		want    string
	}{
		{"=1+1", "'=1+1"},
		{"+cmd", "'+cmd"},
		{"-2", "'-2"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\t=1", "' =1"},
		{"\r=1", "' =1"},
		{"first line\nsecond line", "first line second line"},
		{"bad \xff byte", "bad \uFFFD byte"},
		{"plain text", "plain text"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if _, err := report.NewOutcomeWriter(&buf).Write(report.Outcome{Row: 1, Status: report.Failed, ErrorMessage: tt.message}); err != nil {
			t.Fatalf("Write(%q): %v", tt.message, err)
		}
		line := buf.String()
		if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
			t.Errorf("Write(%q) = %q, want exactly one line", tt.message, line)
		}
		var got string
		err := report.ScanOutcomes(strings.NewReader(line), func(int, report.Status) error { return nil })
		if err != nil {
			t.Errorf("ScanOutcomes(%q): %v", line, err)
		}
		fields := strings.SplitN(line, ",", 9)
		got = strings.Trim(fields[7], "\"")
		if got != tt.want {
			t.Errorf("error_message cell of %q = %q, want %q", tt.message, got, tt.want)
		}
	}
}

func TestScanOutcomesReadsWrittenLines(t *testing.T) {
	var buf bytes.Buffer
	w := report.NewOutcomeWriter(&buf)
	want := []report.Status{report.Revoked, report.Invalid, report.Duplicate, report.Failed, report.NotFound}
	for i, status := range want {
		if _, err := w.Write(report.Outcome{Row: 10 + i, Status: status, AppID: "-x,\"y\"", ErrorMessage: "a,b\nc"}); err != nil {
			t.Fatal(err)
		}
	}

	var rows []int
	var got []report.Status
	err := report.ScanOutcomes(&buf, func(row int, status report.Status) error {
		rows = append(rows, row)
		got = append(got, status)
		return nil
	})
	if err != nil {
		t.Fatalf("ScanOutcomes: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("ScanOutcomes read %d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if rows[i] != 10+i || got[i] != want[i] {
			t.Errorf("line %d = row %d %s, want row %d %s", i+1, rows[i], got[i], 10+i, want[i])
		}
	}
}

func TestScanOutcomesRejectsDamagedLines(t *testing.T) {
	tests := map[string]string{
		"too few fields": "1,a,b,revoked\n",
		"row not number": "x,a,b,revoked,204,1,,,,\n",
		"row zero":       "0,a,b,revoked,204,1,,,,\n",
		"unknown status": "1,a,b,gone,204,1,,,,\n",
		"open quote":     "1,\"a,b,revoked,204,1,,,,\n",
	}
	for name, input := range tests {
		t.Run(name, func(t *testing.T) {
			err := report.ScanOutcomes(strings.NewReader(input), func(int, report.Status) error { return nil })
			if !errors.Is(err, report.ErrBadOutcomeLine) {
				t.Errorf("ScanOutcomes(%q) = %v, want ErrBadOutcomeLine", input, err)
			}
		})
	}
}

func TestCountsAllSucceeded(t *testing.T) {
	tests := []struct {
		counts report.Counts
		want   bool
	}{
		{report.Counts{Revoked: 2, Duplicate: 1}, true},
		{report.Counts{Planned: 4}, true},
		{report.Counts{Revoked: 2, NotFound: 1}, false},
		{report.Counts{Revoked: 2, Failed: 1}, false},
		{report.Counts{Invalid: 1}, false},
	}
	for _, tt := range tests {
		if got := tt.counts.AllSucceeded(); got != tt.want {
			t.Errorf("%+v.AllSucceeded() = %v, want %v", tt.counts, got, tt.want)
		}
	}
}
