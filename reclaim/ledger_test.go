package reclaim

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"reclaim/report"
)

// openTestLedger opens a ledger over outcomes.csv in dir as a run does.
func openTestLedger(t *testing.T, dir string, rows int, cp *Checkpoint) *ledger {
	t.Helper()
	l := newLedger(rows, cp)
	log, err := openOutcomeLog(filepath.Join(dir, OutcomesFile), cp, l.replay)
	if err != nil {
		t.Fatalf("openOutcomeLog: %v", err)
	}
	l.attach(log)
	t.Cleanup(func() { l.close() })
	return l
}

func newCheckpoint(rows int) *Checkpoint {
	return &Checkpoint{Input: InputIdentity{Rows: rows}, OutcomesBytes: int64(len(report.OutcomesHeader))}
}

func TestLedgerAdvancesOverFinishedRows(t *testing.T) {
	l := openTestLedger(t, t.TempDir(), 6, newCheckpoint(6))
	for _, row := range []int{2, 3, 1, 5} {
		if err := l.finish(report.Outcome{Row: row, Status: report.Revoked}); err != nil {
			t.Fatal(err)
		}
	}
	var cp Checkpoint
	l.snapshot(&cp)
	if cp.DoneThrough != 3 || len(cp.DoneAfter) != 1 || cp.DoneAfter[0] != 5 || cp.Counts.Revoked != 4 {
		t.Errorf("snapshot = through %d after %v counts %+v, want through 3 after [5] and 4 revoked", cp.DoneThrough, cp.DoneAfter, cp.Counts)
	}
	if !l.isDone(5) || l.isDone(4) || l.isDone(6) {
		t.Errorf("isDone(5, 4, 6) = %v, %v, %v; want true, false, false", l.isDone(5), l.isDone(4), l.isDone(6))
	}
	if err := l.finish(report.Outcome{Row: 2, Status: report.Revoked}); err == nil {
		t.Errorf("finishing row 2 a second time succeeded, want an error")
	}
}

func TestLedgerWaitRoom(t *testing.T) {
	l := openTestLedger(t, t.TempDir(), ledgerWindow+10, newCheckpoint(ledgerWindow+10))
	if err := l.waitRoom(context.Background(), ledgerWindow); err != nil {
		t.Fatalf("waitRoom within the window: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.waitRoom(ctx, ledgerWindow+2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waitRoom past the window = %v, want it to block until the context ends", err)
	}

	released := make(chan error, 1)
	go func() { released <- l.waitRoom(context.Background(), ledgerWindow+2) }()
	l.finish(report.Outcome{Row: 2, Status: report.Revoked})
	l.finish(report.Outcome{Row: 1, Status: report.Revoked})
	if err := <-released; err != nil {
		t.Errorf("waitRoom after rows 1 and 2 finished = %v, want nil", err)
	}
}

func TestOutcomeLogResume(t *testing.T) {
	dir := t.TempDir()
	cp := newCheckpoint(5)
	first := openTestLedger(t, dir, 5, cp)
	for _, row := range []int{1, 3} {
		first.finish(report.Outcome{Row: row, Status: report.Revoked})
	}
	first.snapshot(cp)
	// Rows 2 and 4 finish after the checkpoint; then the process dies in the middle of a line.
	first.finish(report.Outcome{Row: 2, Status: report.Failed})
	first.finish(report.Outcome{Row: 4, Status: report.Duplicate})
	first.close()
	path := filepath.Join(dir, OutcomesFile)
	appendFile(t, path, "5,app,dev,revo")

	second := openTestLedger(t, dir, 5, cp)
	var got Checkpoint
	second.snapshot(&got)
	if got.DoneThrough != 4 || len(got.DoneAfter) != 0 || got.Counts.Failed != 1 || got.Counts.Duplicate != 1 || got.Counts.Revoked != 2 {
		t.Errorf("after resume: through %d after %v counts %+v; want through 4 with 2 revoked, 1 failed, 1 duplicate",
			got.DoneThrough, got.DoneAfter, got.Counts)
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), "revo\n") || !strings.HasSuffix(string(data), "\n") {
		t.Errorf("torn last line was not cut:\n%s", data)
	}
	if err := second.finish(report.Outcome{Row: 5, Status: report.Revoked}); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(path)
	if lines := strings.Count(string(data), "\n"); lines != 6 {
		t.Errorf("outcomes.csv has %d lines, want header and 5 rows:\n%s", lines, data)
	}
}

func TestOutcomeLogDamaged(t *testing.T) {
	header := report.OutcomesHeader
	line := "1,a,b,revoked,204,1,,,,\n"
	tests := []struct {
		name    string
		content string
		vouched int64
	}{
		{"wrong header", "row,app\n" + line, int64(len(header))},
		{"shorter than vouched", header, int64(len(header) + len(line))},
		{"empty but vouched", "", int64(len(header) + len(line))},
		{"row twice", header + line + line, int64(len(header))},
		{"row past the input", header + "9,a,b,revoked,204,1,,,,\n", int64(len(header))},
		{"garbage line", header + "1,a,b\n", int64(len(header))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, OutcomesFile)
			if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			cp := newCheckpoint(3)
			cp.OutcomesBytes = tt.vouched
			l := newLedger(3, cp)
			_, err := openOutcomeLog(path, cp, l.replay)
			var usage *UsageError
			if !errors.As(err, &usage) || !strings.Contains(err.Error(), "--restart") {
				t.Errorf("openOutcomeLog = %v, want a UsageError naming --restart", err)
			}
		})
	}
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	file, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := file.WriteString(text); err != nil {
		t.Fatal(err)
	}
}
