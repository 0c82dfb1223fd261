package reclaim

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"reclaim/report"
)

// IndexFile is the file in the out dir of a folder input that lists every wave with its state.
const IndexFile = "index.csv"

// keyWave is the log key of a wave's file name.
const keyWave = "wave"

// maxLoggedIgnored is how many ignored file names of an input folder the log line lists.
const maxLoggedIgnored = 20

// WaveResult is the outcome of a run over an input folder for one wave file.
type WaveResult struct {
	// Name is the wave's file name in the input folder.
	Name  string
	State report.WaveState
	// ExitCode is the exit code of the last run that worked on the wave. It is 0 for a pending wave,
	// which no run has worked on.
	ExitCode int
	// Summary holds the figures of the wave's checkpoint. It is zero when the wave has no checkpoint,
	// and for a dry run.
	Summary report.Summary
	// Err is the error that ended the wave in this run, wrapped with the wave's name, or nil.
	Err error
}

// folderRun is one run over the wave files of an input folder. Each wave is a job of its own, with
// its outputs and checkpoint in <out dir>/<file name>.
type folderRun struct {
	// base is the run's Config with defaults set; Input and OutDir are the resolved folders.
	base    Config
	log     zerolog.Logger
	started time.Time
	waves   []*wave
	// fence, unless nil, returns an error when the run may no longer write index.csv, because the
	// lease on the top out dir may have passed to another run.
	fence func() error
}

// wave is one wave file of the input folder, with its checkpoint and the result of this run.
type wave struct {
	name string
	// cfg is the wave's job: Input is the file, OutDir is <out dir>/<name>.
	cfg Config
	// cp is the wave's checkpoint. It is nil when the wave has none, or when it cannot be read and
	// cpErr contains the reason.
	cp    *Checkpoint
	cpErr error
	// handled is true once this run has worked on the wave or found it unusable, so that its exit code
	// counts for the run. A wave that an earlier run completed is not handled again: its exit code
	// counted once, in the run that completed it, and a CronJob would otherwise fail on every later run.
	handled bool
	// err is the error that ended the wave in this run, or nil.
	err error
	// missing is true for a job in the out dir whose file is no longer in the input folder.
	missing bool
}

// runFolder runs every wave file of the folder cfg.Input in name order, each as its own job, and keeps
// index.csv in the out dir up to date. A wave whose file is unusable or changed stops with its error
// and the other waves go on. An authentication error or a stop ends the run, and the waves it did not
// reach stay as they are for the next run. The error is that of the wave with the most severe exit
// code (see severity), wrapped with its name.
func runFolder(ctx context.Context, cfg Config) (Result, error) {
	f, err := newFolderRun(cfg)
	if err != nil {
		return Result{}, err
	}
	log := f.log

	if err := os.MkdirAll(f.base.OutDir, 0o755); err != nil {
		return Result{}, usageErrorf("create out dir: %w", err)
	}
	// The run holds the top out dir, so that no other run works on the folder or rewrites index.csv
	// meanwhile. Each wave's job takes its own out folder as well.
	lock, err := lockOutDir(f.base)
	if err != nil {
		return Result{}, err
	}
	defer lock.release()
	f.fence = lock.held
	// ctx also ends when another run takes the top lease over, and the run then stops as on SIGTERM.
	ctx, stopWatching := lock.watch(ctx)
	defer stopWatching()

	names, ignored, err := listWaves(f.base.Input)
	if err != nil {
		return Result{}, err
	}
	if len(ignored) > 0 {
		log.Info().Strs("ignored", ignored[:min(len(ignored), maxLoggedIgnored)]).Int("ignored_count", len(ignored)).
			Msg("input folder: ignoring entries that are not waves; a wave is a file whose name ends in .csv and does not start with a dot")
	}
	for _, name := range names {
		f.waves = append(f.waves, f.newWave(name))
	}
	f.addMissingWaves(names)
	log.Info().Str("input", f.base.Input).Str("out_dir", f.base.OutDir).Int("waves", len(names)).
		Bool("dry_run", f.base.DryRun).Msg("folder run started")
	if len(names) == 0 {
		log.Info().Str("input", f.base.Input).Msg("input folder has no waves: nothing to do")
	}

	indexErr := f.work(ctx)
	if err := f.writeIndex(); err != nil && indexErr == nil {
		indexErr = err
	}
	f.writeTable()

	result := f.result()
	runErr := f.worstError()
	if indexErr != nil && ExitCode(runErr) < ExitStopped {
		runErr = indexErr
		if !errors.Is(indexErr, errLeaseLost) {
			runErr = &StopError{Reason: "index.csv could not be written; run again once the out dir can be written", Err: indexErr}
		}
	}
	f.logEnd(result, runErr)
	return result, runErr
}

// newFolderRun checks cfg for a folder input and resolves its folders.
func newFolderRun(cfg Config) (*folderRun, error) {
	switch {
	case cfg.Checkpoint != "":
		return nil, usageErrorf("--checkpoint %s cannot be used with the input folder %s, because each wave keeps its own "+
			"checkpoint in <out-dir>/<file name>/%s; remove --checkpoint (or RECLAIM_CHECKPOINT)", cfg.Checkpoint, cfg.Input, CheckpointFile)
	case cfg.Restart && !cfg.DryRun:
		return nil, usageErrorf("--restart cannot be used with the input folder %s, because it would start every wave over; "+
			"to start one wave over, which sends its rows again, move <out-dir>/<file name> out of the out dir and run "+
			"again without --restart", cfg.Input)
	}
	base, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}

	input, err := filepath.Abs(base.Input)
	if err == nil {
		input, err = filepath.EvalSymlinks(input)
	}
	if err != nil {
		return nil, usageErrorf("input folder %s: %w", base.Input, err)
	}
	out, err := resolvePath(base.OutDir)
	if err != nil {
		return nil, usageErrorf("out dir %s: %w", base.OutDir, err)
	}
	switch {
	case out == input:
		return nil, usageErrorf("--out-dir %s is the input folder itself, where reclaim would mistake its own files for waves; "+
			"give an out dir outside the input folder, such as %s", base.OutDir, input+"-out")
	case isInside(input, out):
		return nil, usageErrorf("--out-dir %s is inside the input folder %s; give an out dir outside the input folder, such as %s",
			base.OutDir, input, input+"-out")
	case isInside(out, input):
		return nil, usageErrorf("the input folder %s is inside --out-dir %s, which contains one folder per wave; "+
			"keep the two apart, such as /data/waves and /data/out", input, base.OutDir)
	}

	base.Input, base.OutDir = input, out
	return &folderRun{base: base, log: base.Logger, started: time.Now()}, nil
}

// resolvePath returns path made absolute, with symbolic links resolved in the part of it that exists.
func resolvePath(path string) (string, error) {
	absolute, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	missing := ""
	for dir := absolute; ; dir = filepath.Dir(dir) {
		if resolved, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(resolved, missing), nil
		}
		if filepath.Dir(dir) == dir {
			return absolute, nil
		}
		missing = filepath.Join(filepath.Base(dir), missing)
	}
}

// isInside reports whether path lies below dir. Both must be clean absolute paths.
func isInside(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// listWaves returns the names of the wave files in dir, in byte order, and the names of the other
// entries. A wave is a regular file, or a symbolic link to one, whose name ends in .csv in any case
// and starts with neither "." nor "~$", the prefix of the owner files Microsoft Office writes beside
// an open document. So an upload written as wave.csv.part becomes a wave only when it is renamed.
func listWaves(dir string) (waves, ignored []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, usageErrorf("read input folder: %w", err)
	}
	// ReadDir returns the entries sorted by name, which is byte order.
	for _, entry := range entries {
		name := entry.Name()
		if isWaveName(name) && isRegularFile(filepath.Join(dir, name), entry) {
			waves = append(waves, name)
		} else {
			ignored = append(ignored, name)
		}
	}
	return waves, ignored, nil
}

func isWaveName(name string) bool {
	return strings.EqualFold(filepath.Ext(name), ".csv") &&
		!strings.HasPrefix(name, ".") && !strings.HasPrefix(name, "~$")
}

func isRegularFile(path string, entry fs.DirEntry) bool {
	if entry.Type().IsRegular() {
		return true
	}
	if entry.Type()&fs.ModeSymlink == 0 {
		return false
	}
	// Kubernetes mounts the files of a ConfigMap or Secret as symbolic links.
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular()
}

// newWave returns the wave of the file name with its checkpoint, as earlier runs left it.
func (f *folderRun) newWave(name string) *wave {
	cfg := f.base
	cfg.Input = filepath.Join(f.base.Input, name)
	cfg.OutDir = filepath.Join(f.base.OutDir, name)
	cfg.Checkpoint = filepath.Join(cfg.OutDir, CheckpointFile)
	cfg.Logger = f.base.Logger.With().Str(keyWave, name).Logger()
	w := &wave{name: name, cfg: cfg}
	if !isIndexName(name) {
		w.loadCheckpoint()
	}
	return w
}

// isIndexName reports whether a wave's out folder would take the place of index.csv. The comparison
// ignores case, because on a case-insensitive file system INDEX.CSV is the same path.
func isIndexName(name string) bool { return strings.EqualFold(name, IndexFile) }

// loadCheckpoint reads the wave's checkpoint into w.cp, or its problem into w.cpErr.
func (w *wave) loadCheckpoint() {
	w.cp, w.cpErr = loadCheckpoint(w.cfg.Checkpoint)
	if errors.Is(w.cpErr, errNoCheckpoint) {
		w.cpErr = nil
	}
}

// work runs the waves in order until one ends the run. It returns an error only when index.csv could
// not be written.
func (f *folderRun) work(ctx context.Context) error {
	for _, w := range f.waves {
		if stop := f.stopBefore(ctx); stop != nil {
			// The wave keeps its state: the next run starts or resumes it.
			w.handled, w.err = true, stop
			return nil
		}
		f.runWave(ctx, w)
		if err := f.writeIndex(); err != nil {
			return err
		}
		if endsRun(w.err) {
			f.log.Warn().Str(keyWave, w.name).Err(w.err).
				Msg("the run stops at this wave; it and the waves after it stay as they are for the next run")
			return nil
		}
	}
	return nil
}

// stopBefore returns the StopError that keeps the next wave from starting, or nil.
func (f *folderRun) stopBefore(ctx context.Context) error {
	if ctx.Err() != nil {
		return stopErrorOf(ctx)
	}
	if f.base.Deadline > 0 && time.Since(f.started) >= f.base.Deadline {
		return &StopError{Reason: errDeadline.Error()}
	}
	return nil
}

// endsRun reports whether a wave's error ends the whole run rather than the wave alone: an
// authentication error, because every wave would meet it, or a stop, because the run must stop.
func endsRun(err error) bool {
	var busy *BusyError
	switch ExitCode(err) {
	case ExitAuth:
		return true
	case ExitStopped:
		return !errors.As(err, &busy)
	}
	return false
}

// runWave works on one wave and records how it ended in w.
func (f *folderRun) runWave(ctx context.Context, w *wave) {
	w.handled = true
	log := w.cfg.Logger
	if w.missing {
		w.checkMissing()
		return
	}
	if isIndexName(w.name) {
		w.err = usageErrorf("the wave file %s has the name of the index that reclaim keeps in the out dir (%s); "+
			"rename the file, such as to index-wave.csv, and the next run picks it up",
			w.cfg.Input, filepath.Join(f.base.OutDir, IndexFile))
		log.Error().Err(w.err).Msg("wave not started; the other waves go on")
		return
	}

	cfg := w.cfg
	if f.base.Deadline > 0 {
		// The deadline counts from the start of the whole run; stopBefore has checked that some is left.
		cfg.Deadline = f.base.Deadline - time.Since(f.started)
	}
	if !cfg.DryRun && w.cp != nil && w.cp.Complete && w.cp.Target == cfg.Target {
		w.err = w.checkComplete()
		if w.err == nil || errors.Is(w.err, ErrRowsFailed) {
			w.handled = false
		}
	} else {
		fmt.Fprintf(cfg.Stdout, "\nwave %s\n", w.name)
		w.err = runJob(ctx, cfg)
		w.loadCheckpoint()
		if ExitCode(w.err) == ExitUsage && !cfg.DryRun {
			w.err = w.explainUsageError()
		}
	}

	var busy *BusyError
	switch code := ExitCode(w.err); {
	case errors.As(w.err, &busy):
		log.Warn().Err(w.err).Msg("wave is busy; the other waves go on, and the next run tries it again")
	case code == ExitUsage:
		log.Error().Err(w.err).Msg("wave stopped with an error; the other waves go on")
	}
}

// checkComplete returns the result of a wave that an earlier run completed, after checking that its
// file still has the content the checkpoint records and that its outcomes.csv matches the checkpoint.
// It sends nothing and writes nothing.
func (w *wave) checkComplete() error {
	change, err := w.change()
	if err != nil {
		return err
	}
	if change != "" {
		return w.changedError(change)
	}
	if err := verifyCompleteJob(w.cfg, w.cp); err != nil {
		return err
	}
	w.cfg.Logger.Info().Int("rows", w.cp.Input.Rows).Int("exit_code", w.cp.ExitCode).
		Msg("wave already complete; nothing to send")
	if w.cp.ExitCode == ExitRowsFailed {
		return ErrRowsFailed
	}
	return nil
}

// change describes how the wave's file differs from the content its checkpoint records, or returns ""
// when it does not, or when the wave has no checkpoint. The error is for a file that cannot be read.
func (w *wave) change() (string, error) {
	if w.cp == nil {
		return "", nil
	}
	size, sum, err := fileDigest(w.cfg.Input)
	if err != nil {
		return "", usageErrorf("read wave %s: %w", w.cfg.Input, err)
	}
	switch {
	case size != w.cp.Input.Size:
		return sizeChange(w.cp.Input.Size, size, false), nil
	case sum != w.cp.Input.SHA256:
		return "its content changed: the SHA-256 differs", nil
	}
	return "", nil
}

// explainUsageError returns the usage error of a wave with the fix that suits a folder input, where
// --restart is not available. A wave whose file changed since its checkpoint was saved gets an error
// of its own, whichever check of runJob found the change.
func (w *wave) explainUsageError() error {
	if w.cp != nil {
		if change, err := w.change(); err == nil && change != "" {
			return w.changedError(change)
		}
	}
	// Only a wave with outputs has a job that --restart would move aside.
	if !fileExists(w.cfg.Checkpoint) && !fileExists(w.cfg.outcomesPath()) {
		return w.err
	}
	return usageErrorf("%w. With an input folder, start the wave over by moving %s out of the out dir rather than with --restart",
		w.err, w.cfg.OutDir)
}

// changedError returns the error for a wave whose file differs from the content its checkpoint records.
func (w *wave) changedError(change string) error {
	return usageErrorf("%s changed after work on it began (%s), so its rows no longer match the job's checkpoint and outcomes; "+
		"put new rows in a file with a new name instead of editing a wave. To resume the wave, restore its content; "+
		"to start it over, which sends every row again, move %s out of the out dir", w.cfg.Input, change, w.cfg.OutDir)
}

// addMissingWaves adds a wave for each folder of the out dir that holds a job but whose file is not
// among names, so that index.csv keeps listing a wave whose file was removed. Waves stay in name order.
func (f *folderRun) addMissingWaves(names []string) {
	entries, err := os.ReadDir(f.base.OutDir)
	if err != nil {
		return
	}
	present := map[string]bool{}
	for _, name := range names {
		present[name] = true
	}
	added := false
	for _, entry := range entries {
		name := entry.Name()
		if !entry.IsDir() || present[name] || !isWaveName(name) ||
			!fileExists(filepath.Join(f.base.OutDir, name, CheckpointFile)) {
			continue
		}
		w := f.newWave(name)
		w.missing = true
		f.waves = append(f.waves, w)
		added = true
	}
	if added {
		slices.SortFunc(f.waves, func(a, b *wave) int { return strings.Compare(a.name, b.name) })
	}
}

// checkMissing records the result of a wave whose file was removed. A complete job needs nothing,
// because its outcomes are kept. A job with rows pending is an error until someone puts the file back
// or moves the job out of the out dir, because its rows would otherwise never be finished.
func (w *wave) checkMissing() {
	log := w.cfg.Logger
	switch {
	case w.cp != nil && w.cp.Complete:
		w.handled = false
		log.Info().Str("out", w.cfg.OutDir).Msg("wave file removed after its job was complete; its outcomes are kept")
	case w.cp != nil:
		w.err = usageErrorf("the wave file %s was removed, but its job in %s has %d of %d rows pending; "+
			"put the file back to resume it, or move %s out of the out dir to drop its pending rows",
			w.cfg.Input, w.cfg.OutDir, int64(w.cp.Input.Rows)-w.cp.Counts.Total(), w.cp.Input.Rows, w.cfg.OutDir)
		log.Error().Err(w.err).Msg("wave file missing; the other waves go on")
	default:
		w.err = w.cpErr
		log.Error().Err(w.err).Msg("wave file missing and its checkpoint cannot be read; the other waves go on")
	}
}
