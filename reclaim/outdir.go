package reclaim

import (
	"encoding/json"
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

// lockFileName is the file in the out dir that a run holds locked while it works.
const lockFileName = ".reclaim.lock"

// lockHolder describes the run that holds a lock, for the message another run prints.
type lockHolder struct {
	PID       int       `json:"pid"`
	Host      string    `json:"host"`
	StartedAt time.Time `json:"started_at"`
}

func (h lockHolder) String() string {
	return fmt.Sprintf("process %d on host %s, started %s", h.PID, h.Host, h.StartedAt.Format(time.RFC3339))
}

// runLock is a run's exclusive hold on its out dir and, when it lies elsewhere, on its checkpoint. The
// operating system releases it when the process ends in any way, so a run started right after a crash
// gets it at once.
type runLock struct{ files []*os.File }

// lockRun takes the out dir and the checkpoint for this process. It returns a *BusyError naming the
// run that holds either one; such a run changes nothing. cfg.Checkpoint must be resolved, so that two
// spellings of one checkpoint take one lock.
func lockRun(cfg Config) (*runLock, error) {
	lock := &runLock{}
	if err := lock.take(filepath.Join(cfg.OutDir, lockFileName), "out dir "+cfg.OutDir); err != nil {
		return nil, err
	}
	if err := lock.take(cfg.Checkpoint+".lock", "checkpoint "+cfg.Checkpoint); err != nil {
		lock.release()
		return nil, err
	}
	return lock, nil
}

// take locks the file at path, which guards resource, and records this process in it.
func (l *runLock) take(path, resource string) error {
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return usageErrorf("open lock file: %w; check that the folder of %s is writable", err, resource)
	}
	locked, err := tryLock(file)
	if err != nil {
		file.Close()
		return usageErrorf("lock %s: %w", path, err)
	}
	if !locked {
		holder := "holder not recorded yet"
		var h lockHolder
		if data, err := io.ReadAll(io.LimitReader(file, 4096)); err == nil && json.Unmarshal(data, &h) == nil {
			holder = h.String()
		}
		file.Close()
		return &BusyError{Resource: resource, Holder: holder}
	}

	host, _ := os.Hostname()
	data, _ := json.Marshal(lockHolder{PID: os.Getpid(), Host: host, StartedAt: time.Now().UTC()})
	if err := file.Truncate(0); err == nil {
		_, _ = file.WriteAt(data, 0)
	}
	l.files = append(l.files, file)
	return nil
}

// release gives the locks up. The lock files stay, so that no other run locks a file just unlinked.
func (l *runLock) release() {
	for _, file := range l.files {
		_ = file.Truncate(0)
		_ = file.Close()
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
