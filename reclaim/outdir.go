package reclaim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"reclaim/report"
)

// runLock is a run's hold on its out dir and, through a second lease, on its checkpoint, which may lie
// outside the out dir and be shared by mistake with another out dir.
type runLock struct{ leases []*lease }

// lockRun takes the leases on the out dir and the checkpoint for this process. It returns a *BusyError
// naming the run that holds either one; such a run changes nothing. cfg.Checkpoint must be resolved,
// so that two spellings of one checkpoint take one lease.
//
// The leases are taken one after the other, so that of two runs started at once on one out dir
// exactly one goes on to the checkpoint. Each costs the settle time.
func lockRun(cfg Config) (*runLock, error) {
	checkpoint := leaseTarget{cfg.Checkpoint + leaseSuffix, "checkpoint " + cfg.Checkpoint}
	return takeLeases(cfg.leaseOptions(), []leaseTarget{outDirLease(cfg.OutDir), checkpoint})
}

// lockOutDir takes the lease on cfg.OutDir alone, as lockRun does for a job's out dir.
func lockOutDir(cfg Config) (*runLock, error) {
	return takeLeases(cfg.leaseOptions(), []leaseTarget{outDirLease(cfg.OutDir)})
}

// leaseTarget is the path of a lease file and the resource it guards, for messages.
type leaseTarget struct{ path, resource string }

func outDirLease(dir string) leaseTarget {
	return leaseTarget{filepath.Join(dir, leaseFileName), "out dir " + dir}
}

// takeLeases takes the leases of targets in order. When one fails, it releases those it took.
func takeLeases(opts leaseOptions, targets []leaseTarget) (*runLock, error) {
	lock := &runLock{}
	for _, target := range targets {
		l, err := takeLease(target.path, target.resource, opts)
		if err != nil {
			lock.release()
			return nil, err
		}
		lock.leases = append(lock.leases, l)
	}
	return lock, nil
}

// watch returns a context derived from ctx that ends when any of the leases is lost, and the function
// that releases its resources.
func (l *runLock) watch(ctx context.Context) (context.Context, context.CancelFunc) {
	return watchLeases(ctx, l.leases...)
}

// held returns a *StopError that wraps errLeaseLost when another run may have taken any of the
// leases over, and nil otherwise. A run calls it right before each write to the files the leases
// guard, and writes nothing once it fails.
func (l *runLock) held() error {
	for _, lease := range l.leases {
		if err := lease.held(); err != nil {
			return &StopError{Reason: "this run writes nothing more, because its lease may have passed to another run", Err: err}
		}
	}
	return nil
}

// release gives the leases up and removes their files.
func (l *runLock) release() {
	for _, lease := range l.leases {
		lease.release()
	}
}

// moveAside moves the outputs of an earlier job into a new folder previous-<UTC time> in the out dir
// and returns that folder, or "" when there was nothing to move.
func moveAside(cfg Config) (string, error) {
	paths := []string{cfg.outcomesPath(), cfg.summaryPath(), cfg.Checkpoint}
	var present []string
	for _, path := range paths {
		if _, err := os.Stat(path); err == nil {
			present = append(present, path)
		}
	}
	if len(present) == 0 {
		return "", nil
	}

	aside := filepath.Join(cfg.OutDir, "previous-"+time.Now().UTC().Format("20060102T150405.000Z"))
	if err := os.Mkdir(aside, 0o755); err != nil {
		return "", fmt.Errorf("restart: %w", err)
	}
	for _, path := range present {
		if err := os.Rename(path, filepath.Join(aside, filepath.Base(path))); err != nil {
			return "", fmt.Errorf("restart: move %s aside: %w", path, err)
		}
	}
	return aside, syncDir(cfg.OutDir)
}

// outcomeLog is outcomes.csv opened for appending.
type outcomeLog struct {
	file *os.File
	// size is the length of the file when it was opened, after a torn last line was cut.
	size int64
	// cut is the length of the torn last line that was cut off, or 0.
	cut int64
}

// openOutcomeLog opens outcomes.csv for the job cp describes. A new file gets the header. An existing
// one must start with the header and be at least as long as cp vouches for. A torn last line, left by
// a crash in the middle of a write, is cut off. The lines after cp.OutcomesBytes go to replay, because
// their rows are finished although cp does not record it.
func openOutcomeLog(path string, cp *Checkpoint, replay func(io.Reader) error) (*outcomeLog, error) {
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open outcomes: %w", err)
	}
	log := &outcomeLog{file: file}
	if err := log.prepare(path, cp, replay); err != nil {
		file.Close()
		return nil, err
	}
	return log, nil
}

func (l *outcomeLog) prepare(path string, cp *Checkpoint, replay func(io.Reader) error) error {
	info, err := l.file.Stat()
	if err != nil {
		return fmt.Errorf("open outcomes: %w", err)
	}
	header := int64(len(report.OutcomesHeader))
	if info.Size() == 0 {
		if cp.OutcomesBytes > header {
			return damagedOutcomes(path, fmt.Sprintf("the file is empty but the checkpoint vouches for %d bytes", cp.OutcomesBytes))
		}
		if _, err := l.file.WriteString(report.OutcomesHeader); err != nil {
			return fmt.Errorf("write outcomes header: %w", err)
		}
		l.size = header
		return l.file.Sync()
	}

	start := make([]byte, header)
	if _, err := l.file.ReadAt(start, 0); err != nil || string(start) != report.OutcomesHeader {
		return damagedOutcomes(path, "it does not start with the outcomes header")
	}
	if info.Size() < cp.OutcomesBytes {
		return damagedOutcomes(path, fmt.Sprintf("it has %d bytes but the checkpoint vouches for %d", info.Size(), cp.OutcomesBytes))
	}

	end, err := lastLineEnd(l.file, cp.OutcomesBytes, info.Size())
	if err != nil {
		return fmt.Errorf("read outcomes: %w", err)
	}
	if end < info.Size() {
		l.cut = info.Size() - end
		if err := l.file.Truncate(end); err != nil {
			return fmt.Errorf("cut torn last line of outcomes: %w", err)
		}
	}
	l.size = end
	if err := replay(io.NewSectionReader(l.file, cp.OutcomesBytes, end-cp.OutcomesBytes)); err != nil {
		if errors.Is(err, report.ErrBadOutcomeLine) {
			return damagedOutcomes(path, err.Error())
		}
		return err
	}
	return nil
}

// lastLineEnd returns the offset just after the last newline in file[from:size], or from when there is
// none. from is a line start.
func lastLineEnd(file *os.File, from, size int64) (int64, error) {
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	for end := size; end > from; {
		start := max(from, end-chunk)
		n, err := file.ReadAt(buf[:end-start], start)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := strings.LastIndexByte(string(buf[:n]), '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return from, nil
}

// check returns an error unless the file has exactly one line for each row from 1 to rows and its
// statuses add up to want. Such a mismatch comes only from editing the files by hand.
func (l *outcomeLog) check(path string, rows int, want report.Counts) error {
	counts, problem, err := l.verify(rows)
	if err != nil {
		return fmt.Errorf("verify %s: %w", path, err)
	}
	if problem == "" && counts != want {
		problem = fmt.Sprintf("its statuses add up to %+v, but the checkpoint counts %+v", counts, want)
	}
	if problem != "" {
		return damagedOutcomes(path, problem)
	}
	return nil
}

// verify reads the whole file and returns its counts by status, and a problem unless it has exactly
// one line for each row from 1 to rows.
func (l *outcomeLog) verify(rows int) (report.Counts, string, error) {
	var counts report.Counts
	seen := make([]uint64, rows/64+1)
	twice := 0
	body := io.NewSectionReader(l.file, int64(len(report.OutcomesHeader)), 1<<62)
	err := report.ScanOutcomes(body, func(row int, status report.Status) error {
		if row > rows {
			return fmt.Errorf("%w: row %d is not in the input", report.ErrBadOutcomeLine, row)
		}
		word, bit := row/64, uint64(1)<<(row%64)
		if seen[word]&bit != 0 {
			twice = row
		}
		seen[word] |= bit
		counts.Add(status)
		return nil
	})
	if errors.Is(err, report.ErrBadOutcomeLine) {
		return counts, err.Error(), nil
	}
	if err != nil {
		return counts, "", err
	}
	if twice != 0 {
		return counts, fmt.Sprintf("row %d has more than one line", twice), nil
	}
	for row := 1; row <= rows; row++ {
		if seen[row/64]&(uint64(1)<<(row%64)) == 0 {
			return counts, fmt.Sprintf("row %d has no line, although the checkpoint marks it finished", row), nil
		}
	}
	return counts, "", nil
}

func damagedOutcomes(path, problem string) error {
	return usageErrorf("%s does not match the checkpoint (%s); restore both from a backup, or run with --restart to move them aside and start over, which sends every row again", path, problem)
}

// fileExists reports whether path names an existing file.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
