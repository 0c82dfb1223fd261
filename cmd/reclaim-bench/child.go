package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"reclaim/reclaim"
)

// childTimeout bounds one run of the reclaim binary, so that a hung run cannot hold make bench.
const childTimeout = 10 * time.Minute

// process is a running reclaim binary.
type process struct {
	cmd     *exec.Cmd
	cancel  context.CancelFunc
	started time.Time
	peak    <-chan int64
	// done is closed when the process has ended and been waited for; elapsed is then set.
	done    chan struct{}
	elapsed time.Duration
	// logPath is the file that receives the process's stderr: its JSON log.
	logPath string
	log     *os.File
	outDir  string
}

// result is the exit code, wall time and peak memory of a finished reclaim process.
type result struct {
	// code is the exit code, or minus the signal number for a process ended by a signal.
	code int
	// started is the time just before the process started, and elapsed its wall time from then.
	started time.Time
	elapsed time.Duration
	// peakRSS is the high-water mark of the process's resident memory in bytes.
	peakRSS int64
	logPath string
	outDir  string
}

// startReclaim starts "reclaim run" against sim with args after --graph-url, --out-dir and
// --log-format json. Its stderr goes into a file in outDir's parent folder, and its stdout is dropped.
func (b *bench) startReclaim(ctx context.Context, sim *simulator, outDir string, args ...string) (*process, error) {
	full := append([]string{"run", "--graph-url", sim.GraphURL(), "--out-dir", outDir, "--log-format", "json"}, args...)
	home := filepath.Join(filepath.Dir(outDir), "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, err
	}
	logFile, err := os.CreateTemp(filepath.Dir(outDir), "reclaim-*.log")
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, childTimeout)
	cmd := exec.CommandContext(ctx, b.reclaim, full...)
	cmd.Env = sim.env(home)
	cmd.Stderr = logFile
	p := &process{cmd: cmd, cancel: cancel, logPath: logFile.Name(), log: logFile, outDir: outDir, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		logFile.Close()
		return nil, fmt.Errorf("start reclaim: %w", err)
	}
	p.peak = watchPeakRSS(cmd.Process.Pid)
	go func() {
		cmd.Wait()
		p.elapsed = time.Since(p.started)
		close(p.done)
	}()
	return p, nil
}

// wait waits for the process to end and returns its result.
func (p *process) wait() result {
	<-p.done
	p.cancel()
	p.log.Close()
	return result{code: exitCode(p.cmd.ProcessState), started: p.started, elapsed: p.elapsed, peakRSS: <-p.peak,
		logPath: p.logPath, outDir: p.outDir}
}

// ended reports whether the process has ended.
func (p *process) ended() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process.
func (p *process) signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

func exitCode(state *os.ProcessState) int {
	if status, ok := state.Sys().(syscall.WaitStatus); ok && status.Signaled() {
		return -int(status.Signal())
	}
	return state.ExitCode()
}

// runReclaim runs reclaim to its end and returns an error unless it exits with wantCode.
func (b *bench) runReclaim(ctx context.Context, sim *simulator, outDir string, wantCode int, args ...string) (result, error) {
	p, err := b.startReclaim(ctx, sim, outDir, args...)
	if err != nil {
		return result{}, err
	}
	res := p.wait()
	return res, res.check(wantCode)
}

// check returns an error with the end of the log unless r exited with want.
func (r result) check(want int) error {
	if r.code == want {
		return nil
	}
	return fmt.Errorf("reclaim exit code = %d, want %d; end of its log %s:\n%s", r.code, want, r.logPath, logTail(r.logPath, 8))
}

// logTail returns the last lines of a log file.
func logTail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// watchPeakRSS polls the high-water mark of the resident memory of process pid (VmHWM in
// /proc/PID/status) until the process is gone, then sends the last value in bytes. The rusage of a
// child is no use: it also counts this process's memory, which the child shares between fork and exec.
func watchPeakRSS(pid int) <-chan int64 {
	peak := make(chan int64, 1)
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	go func() {
		var last int64
		for {
			data, err := os.ReadFile(path)
			if err != nil {
				peak <- last
				return
			}
			if value := findField(bufio.NewScanner(bytes.NewReader(data)), "VmHWM"); value != "" {
				last = max(last, int64(parseKiB(value)))
			} else if last > 0 {
				// A zombie has no memory lines: the process has ended.
				peak <- last
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return peak
}

// readSummary returns summary.csv of outDir as metric -> value.
func readSummary(outDir string) (map[string]string, error) {
	data, err := os.ReadFile(filepath.Join(outDir, reclaim.SummaryFile))
	if err != nil {
		return nil, err
	}
	records, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", reclaim.SummaryFile, err)
	}
	summary := map[string]string{}
	for _, record := range records[1:] {
		if len(record) == 2 {
			summary[record[0]] = record[1]
		}
	}
	return summary, nil
}

// summaryInt returns the integer value of metric in summary, or 0 when it is missing.
func summaryInt(summary map[string]string, metric string) int64 {
	n, _ := strconv.ParseInt(summary[metric], 10, 64)
	return n
}

// summaryCount returns the integer value of metric in summary as thousands does.
func summaryCount(summary map[string]string, metric string) string {
	return thousands(int(summaryInt(summary, metric)))
}

// supportsFlag reports whether "BINARY run --help" lists --name.
func supportsFlag(binary, name string) (bool, error) {
	out, err := exec.Command(binary, "run", "--help").Output()
	if err != nil {
		return false, fmt.Errorf("%s run --help: %w", binary, err)
	}
	return bytes.Contains(out, []byte("-"+name+" ")) || bytes.Contains(out, []byte("-"+name+"\n")), nil
}

// requirePrecheck returns an error unless the binary has --precheck, saying what the scenario needs
// it for.
func (b *bench) requirePrecheck(purpose string) error {
	if !b.precheck {
		return fmt.Errorf("%s has no --precheck, which this scenario needs %s; rebuild it with make build", b.binary, purpose)
	}
	return nil
}

// lineWatcher counts the lines of a file that another process appends to, reading only what is new.
type lineWatcher struct {
	path  string
	file  *os.File
	lines int64
	buf   []byte
}

// count reads what was added since the last call and returns the number of complete lines so far. A
// file that does not exist yet has 0 lines.
func (w *lineWatcher) count() (int64, error) {
	if w.file == nil {
		file, err := os.Open(w.path)
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		w.file = file
		w.buf = make([]byte, 1<<20)
	}
	for {
		n, err := w.file.Read(w.buf)
		w.lines += int64(bytes.Count(w.buf[:n], []byte{'\n'}))
		if errors.Is(err, io.EOF) || n == 0 {
			return w.lines, nil
		}
		if err != nil {
			return w.lines, err
		}
	}
}

func (w *lineWatcher) close() {
	if w.file != nil {
		w.file.Close()
	}
}

// signalAtRows sends sig to p once outcomes.csv in its out dir has at least rows outcome lines, and
// returns the number of lines seen at that moment. It returns an error when the process ends first.
func signalAtRows(ctx context.Context, p *process, rows int64, sig os.Signal) (int64, error) {
	watcher := &lineWatcher{path: filepath.Join(p.outDir, reclaim.OutcomesFile)}
	defer watcher.close()
	for {
		lines, err := watcher.count()
		if err != nil {
			return 0, err
		}
		// The first line is the header.
		if done := lines - 1; done >= rows {
			if err := p.signal(sig); err != nil {
				return done, fmt.Errorf("signal reclaim: %w", err)
			}
			return done, nil
		}
		if p.ended() || ctx.Err() != nil {
			return lines - 1, fmt.Errorf("reclaim ended with %d outcome lines, before %d", max(lines-1, 0), rows)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// countOutcomes returns the number of outcome lines in outcomes.csv of outDir, header excluded.
func countOutcomes(outDir string) (int64, error) {
	watcher := &lineWatcher{path: filepath.Join(outDir, reclaim.OutcomesFile)}
	defer watcher.close()
	lines, err := watcher.count()
	return max(lines-1, 0), err
}
