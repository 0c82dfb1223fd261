package reclaim

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"reclaim/graphclient"
	"reclaim/report"
)

// Log keys, the same in every line that carries the value.
const (
	keyRow             = "row"
	keyAppID           = "app_id"
	keyDeviceID        = "device_id"
	keyAttempt         = "attempt"
	keyStatus          = "status"
	keyHTTPStatus      = "http_status"
	keyErrorCode       = "error_code"
	keyWait            = "wait"
	keyRequestID       = "request_id"
	keyClientRequestID = "client_request_id"
)

// Result holds what a run leaves for reports kept outside the out dir, such as a Pushgateway.
type Result struct {
	// Summary holds the figures of the run's job over all the runs that worked on it, as its
	// checkpoint records them. It is zero when the job has no checkpoint, and for a dry run. For an
	// input folder it is the sum over its waves, as report.Summary.Add forms it.
	Summary report.Summary
	// Read is true when Summary was read from the job's checkpoint or, for an input folder, from its
	// waves. It is false when the run ended before that, such as on a bad flag.
	Read bool
	// Waves lists every wave file of an input folder in name order. It is nil for an input file, and
	// empty but not nil for a folder without waves.
	Waves []WaveResult
}

// Run works on the job cfg describes until every row has its outcome or the run must stop, and leaves
// outcomes.csv, summary.csv and the checkpoint in a state that the same command can resume from.
//
// Its error is nil when the job is complete and every row was revoked or a duplicate, ErrRowsFailed
// when it is complete with other outcomes, and otherwise an error whose kind ExitCode maps to an exit
// code. The Result is filled whatever the error.
//
// When cfg.Input is a folder, each of its wave files is a job of its own, as runFolder describes.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if info, err := os.Stat(cfg.Input); err == nil && info.IsDir() {
		return runFolder(ctx, cfg)
	}
	err := runJob(ctx, cfg)
	return resultOf(cfg), err
}

// resultOf reads the Result of the job cfg describes from its checkpoint.
func resultOf(cfg Config) Result {
	cfg, err := cfg.withDefaults()
	if err != nil || cfg.DryRun {
		return Result{}
	}
	if resolved, err := filepath.EvalSymlinks(cfg.Checkpoint); err == nil {
		cfg.Checkpoint = resolved
	}
	cp, err := loadCheckpoint(cfg.Checkpoint)
	if err != nil {
		return Result{}
	}
	return Result{Summary: summaryOf(cp), Read: true}
}

// runJob is Run without its Result.
func runJob(ctx context.Context, cfg Config) (err error) {
	defer func() {
		// A signal that arrives while the run starts up ends whatever step it interrupts.
		if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
			err = &StopError{Reason: errInterrupted.Error()}
		}
	}()
	cfg, err = cfg.withDefaults()
	if err != nil {
		return err
	}
	log := cfg.Logger

	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return usageErrorf("create out dir: %w", err)
	}
	if cfg.Checkpoint, err = resolveCheckpoint(cfg.Checkpoint); err != nil {
		return err
	}
	lock, err := lockRun(cfg)
	if err != nil {
		return err
	}
	defer lock.release()
	// runCtx also ends when another run takes a lease over, and the run then stops as on SIGTERM.
	runCtx, stopWatching := lock.watch(ctx)
	defer stopWatching()

	var reserve func(indexBytes int64)
	if cfg.LimitMemory {
		var memory memoryLimit
		defer memory.restore()
		reserve = memory.reserve
	}
	identity, index, err := identifyInput(cfg.Input, checkpointRows(cfg), reserve)
	if err != nil {
		return err
	}
	if cfg.DryRun {
		return dryRun(runCtx, cfg, identity, index)
	}

	var client *graphclient.Client
	if cfg.Restart {
		// The credentials are checked before anything moves, so that a restart that cannot run leaves
		// the earlier job where it was.
		if client, err = newClient(runCtx, cfg, graphclient.FormCast); err != nil {
			return err
		}
		if err := lock.held(); err != nil {
			return err
		}
		aside, err := moveAside(cfg)
		if err != nil {
			return err
		}
		if aside != "" {
			log.Warn().Str("moved_to", aside).Msg("restart: moved the earlier job's outputs aside; every row will be sent again")
		}
	}

	// Reading the input may take long enough for the lease to pass to another run. The checks before
	// each write keep this run from touching the job's files after that.
	if err := lock.held(); err != nil {
		return err
	}
	cp, err := loadOrStartCheckpoint(cfg, identity)
	if err != nil {
		return err
	}
	if cp.Complete {
		return finishedEarlier(cfg, cp)
	}
	if client == nil {
		form, err := graphclient.ParseForm(cp.URLForm)
		if err != nil {
			return damagedCheckpoint(cfg.Checkpoint, err.Error())
		}
		if client, err = newClient(runCtx, cfg, form); err != nil {
			return err
		}
	}

	// newJob may write the header of outcomes.csv or cut a torn last line off it.
	if err := lock.held(); err != nil {
		return err
	}
	j, err := newJob(cfg, identity, index, cp, client)
	if err != nil {
		return err
	}
	j.fence = lock.held
	return j.run(runCtx)
}

// resolveCheckpoint returns the absolute path of a checkpoint with symbolic links resolved, so that
// every spelling of one checkpoint takes the same lock, and saving it replaces the file rather than a
// link to it.
func resolveCheckpoint(path string) (string, error) {
	absolute, err := filepath.Abs(path)
	if err != nil {
		return "", usageErrorf("checkpoint path %s: %w", path, err)
	}
	if resolved, err := filepath.EvalSymlinks(absolute); err == nil {
		return resolved, nil
	}
	// The checkpoint does not exist yet: resolve its folder, creating it.
	dir := filepath.Dir(absolute)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", usageErrorf("create checkpoint folder: %w", err)
	}
	resolvedDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", usageErrorf("checkpoint folder %s: %w", dir, err)
	}
	return filepath.Join(resolvedDir, filepath.Base(absolute)), nil
}

// identifyInput reads the whole input and indexes its pairs: it must be usable, and its identity ties it
// to a checkpoint. rowsHint and reserve are as for indexInput.
func identifyInput(path string, rowsHint int, reserve func(indexBytes int64)) (InputIdentity, *waveIndex, error) {
	summary, index, err := indexInput(path, rowsHint, reserve)
	if err != nil {
		// Every error here is about the input, and an input-changed error is a UsageError already.
		var usage *UsageError
		if !errors.As(err, &usage) {
			err = &UsageError{Err: err}
		}
		return InputIdentity{}, nil, err
	}
	if summary.Rows == 0 {
		return InputIdentity{}, nil, &UsageError{Err: &InputError{Path: path, Problem: "the file has a header but no data rows",
			Fix: "export the rows to revoke below the header"}}
	}
	absolute, err := filepath.Abs(path)
	if err != nil {
		absolute = path
	}
	return InputIdentity{Path: absolute, Size: summary.Size, SHA256: summary.SHA256, Rows: summary.Rows}, index, nil
}

// checkpointRows returns the number of input rows that the job's checkpoint records, when the input
// has the size it records, and otherwise 0. It is only a hint for sizing the index: whether the
// checkpoint belongs to the input is decided later, from the full identity.
func checkpointRows(cfg Config) int {
	cp, err := loadCheckpoint(cfg.Checkpoint)
	if err != nil {
		return 0
	}
	info, err := os.Stat(cfg.Input)
	if err != nil || info.Size() != cp.Input.Size {
		return 0
	}
	// A row takes at least two bytes, a cell and a line feed, so a larger count comes from a hand-edited
	// checkpoint and would only make the index reserve memory in vain.
	if int64(cp.Input.Rows) > info.Size()/2+1 {
		return 0
	}
	return cp.Input.Rows
}

// loadOrStartCheckpoint returns the checkpoint of the job in the out dir, or saves a new one when the
// out dir holds no job. A checkpoint of another input or another target is an error.
func loadOrStartCheckpoint(cfg Config, identity InputIdentity) (*Checkpoint, error) {
	cp, err := loadCheckpoint(cfg.Checkpoint)
	if errors.Is(err, errNoCheckpoint) {
		if fileExists(cfg.outcomesPath()) {
			return nil, usageErrorf("%s exists but its checkpoint %s does not, so reclaim cannot tell which rows were sent; "+
				"restore the checkpoint, or run with --restart to move the old outputs aside and start over",
				cfg.outcomesPath(), cfg.Checkpoint)
		}
		cp = &Checkpoint{Input: identity, Target: cfg.Target, OutcomesBytes: int64(len(report.OutcomesHeader))}
		// Saved before outcomes.csv is created, so that a crash never leaves outcomes without a checkpoint.
		if err := cp.save(cfg.Checkpoint); err != nil {
			return nil, usageErrorf("%w; check that the checkpoint folder is writable", err)
		}
		return cp, nil
	}
	if err != nil {
		return nil, err
	}

	if cp.Input.SHA256 != identity.SHA256 || cp.Input.Size != identity.Size || cp.Input.Rows != identity.Rows {
		return nil, usageErrorf("checkpoint %s belongs to another input (%s, %d bytes, sha256 %.12s…), "+
			"but %s has %d bytes and sha256 %.12s…; run with --restart to move the old outputs aside and start a new job (which sends every row again), "+
			"or give another --out-dir", cfg.Checkpoint, cp.Input.Path, cp.Input.Size, cp.Input.SHA256,
			identity.Path, identity.Size, identity.SHA256)
	}
	if cp.Target != cfg.Target {
		return nil, usageErrorf("checkpoint %s belongs to a job against %s, not %s; run with --restart to start a new job, "+
			"or give another --out-dir", cfg.Checkpoint, cp.Target, cfg.Target)
	}
	if cp.Input.Path != identity.Path {
		cfg.Logger.Info().Str("recorded", cp.Input.Path).Str("now", identity.Path).
			Msg("input has moved; its content is the same, so the job resumes")
		cp.Input.Path = identity.Path
	}
	return cp, nil
}

// finishedEarlier reports a job that an earlier run completed, after checking that its outcomes.csv
// still has one line per row, and sends nothing.
func finishedEarlier(cfg Config, cp *Checkpoint) error {
	if err := verifyCompleteJob(cfg, cp); err != nil {
		return err
	}
	summary := summaryOf(cp)
	cfg.Logger.Info().Str("input", cp.Input.Path).Int64("rows", summary.Rows).Int("exit_code", cp.ExitCode).
		Msg("job already complete; nothing to send (use --restart to run it again)")
	if err := summary.WriteText(cfg.Stdout); err != nil {
		return err
	}
	if cp.ExitCode == ExitRowsFailed {
		return ErrRowsFailed
	}
	return nil
}

// verifyCompleteJob returns an error unless outcomes.csv of a complete job has exactly one line per
// input row and the statuses the checkpoint counts.
func verifyCompleteJob(cfg Config, cp *Checkpoint) error {
	file, err := os.Open(cfg.outcomesPath())
	if err != nil {
		return damagedOutcomes(cfg.outcomesPath(), "the job is marked complete but the file cannot be read: "+err.Error())
	}
	defer file.Close()
	return (&outcomeLog{file: file}).check(cfg.outcomesPath(), cp.Input.Rows, cp.Counts)
}

// newClient returns the Graph client of a run, after getting a first token: a credential problem ends
// the run before any row is touched.
func newClient(ctx context.Context, cfg Config, form graphclient.Form) (*graphclient.Client, error) {
	credential, newCredential := cfg.Credential, cfg.NewCredential
	if credential == nil {
		var err error
		if credential, err = graphclient.NewCredential(); err != nil {
			return nil, &graphclient.AuthError{Err: err}
		}
		newCredential = graphclient.NewCredential
	}
	graphURL, err := graphclient.ParseGraphURL(cfg.GraphURL)
	if err != nil {
		return nil, &UsageError{Err: err}
	}
	client, err := graphclient.New(graphclient.Options{
		GraphURL:      graphURL,
		Credential:    credential,
		NewCredential: newCredential,
		HTTPClient:    cfg.HTTPClient,
		Timeout:       cfg.Timeout,
		UserAgent:     "reclaim/" + cfg.Version,
		Form:          form,
	})
	if err != nil {
		return nil, err
	}
	if err := client.CheckToken(ctx); err != nil {
		var auth *graphclient.AuthError
		var transport *graphclient.TransportError
		switch {
		case ctx.Err() != nil:
			return nil, stopErrorOf(ctx)
		case errors.As(err, &auth), errors.Is(err, graphclient.ErrUntrustedAuthority):
			return nil, err
		case errors.As(err, &transport):
			// Entra could not be reached or failed on its side: a later run may get through.
			return nil, &StopError{Reason: "the token endpoint could not be reached", Err: err}
		}
		return nil, &graphclient.AuthError{Err: err}
	}
	return client, nil
}
