package reclaim

import (
	"errors"
	"fmt"

	"reclaim/graphclient"
)

// Exit codes of reclaim. A run's error maps to one of them through ExitCode.
const (
	// ExitOK: the job is complete and every row was revoked or a duplicate (in a dry run: planned).
	ExitOK = 0
	// ExitRowsFailed: the job is complete and some rows are failed, not_found or invalid.
	ExitRowsFailed = 1
	// ExitUsage: a usage, configuration or input error, or a checkpoint that does not fit. It is found
	// before anything is sent, with four exceptions found later. These are an input that changes during
	// the run, an action Graph lacks at either URL form, a Graph host that cannot be resolved or whose
	// certificate is not trusted, and outcomes that do not match the checkpoint at the end of the job.
	ExitUsage = 2
	// ExitAuth: an authentication or permission failure. The job can be resumed once it is fixed.
	ExitAuth = 3
	// ExitStopped: stopped early (signal, deadline, Graph outage, unwritable out dir) or another run
	// holds the out dir. Running again resumes.
	ExitStopped = 4
)

// ErrRowsFailed is returned for a complete job in which some rows were not revoked.
var ErrRowsFailed = errors.New("job complete, but some rows were failed, not_found or invalid; see outcomes.csv")

// UsageError is a problem with the command line, the configuration, the input file or the checkpoint,
// found before anything was sent.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usageErrorf(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// StopError is a run that ended before the job was complete, for Reason. The rows without an outcome
// stay pending, and running the same command again resumes them.
type StopError struct {
	Reason string
	Err    error
}

func (e *StopError) Error() string {
	if e.Err != nil {
		return "stopped early: " + e.Reason + ": " + e.Err.Error()
	}
	return "stopped early: " + e.Reason
}

func (e *StopError) Unwrap() error { return e.Err }

// BusyError is a run that found another run holding its out dir or checkpoint. It changed nothing.
type BusyError struct {
	// Resource names what is held, such as "out dir reclaim-out".
	Resource string
	Holder   string
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("%s is in use by another reclaim run (%s); run again once it has ended", e.Resource, e.Holder)
}

// LeaseLost reports whether a run stopped because its lease on the job may have passed to another
// run, which then goes on with the job and reports it.
func LeaseLost(err error) bool { return errors.Is(err, errLeaseLost) }

// ExitCode returns the exit code for the error a run returned.
func ExitCode(err error) int {
	var usage *UsageError
	var auth *graphclient.AuthError
	var stop *StopError
	var busy *BusyError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrRowsFailed):
		return ExitRowsFailed
	case errors.As(err, &usage), errors.Is(err, graphclient.ErrActionUnavailable), errors.Is(err, graphclient.ErrUntrustedAuthority):
		return ExitUsage
	case errors.As(err, &auth), errors.Is(err, graphclient.ErrForbidden):
		return ExitAuth
	case errors.As(err, &stop), errors.As(err, &busy):
		return ExitStopped
	}
	// An error of no known kind comes from the machine (a full disk, a lost volume): the state on disk
	// is consistent, so the job can be resumed once the cause is fixed.
	return ExitStopped
}
