package reclaim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"reclaim/report"
)

const checkpointVersion = 1

// Checkpoint records how far a job has come, so that a later run can finish it.
//
// Resuming means: the rows in DoneThrough and DoneAfter are finished and have their line among the
// first OutcomesBytes bytes of outcomes.csv, and Counts adds those lines up. Complete lines after
// OutcomesBytes were written after the checkpoint and are finished too; a resume reads them back. Every
// other row is pending and is read again from the input, which must still have InputIdentity. Only the
// rows whose request was in flight when a run died can be sent twice.
type Checkpoint struct {
	Version int           `json:"version"`
	Input   InputIdentity `json:"input"`
	// Target is the Graph root the job sends to, or "simulator"; a job is not resumed against another one.
	Target string `json:"target"`
	// URLForm is the URL form of revokeDeviceLicense that the service accepted ("cast" or "uncast").
	URLForm string `json:"url_form,omitempty"`

	// DoneThrough is the highest row number such that it and every row before it are finished.
	DoneThrough int `json:"done_through"`
	// DoneAfter lists the finished rows after DoneThrough, in ascending order.
	DoneAfter []int `json:"done_after"`
	// OutcomesBytes is the length of outcomes.csv, header included, that this checkpoint vouches for.
	OutcomesBytes int64         `json:"outcomes_bytes"`
	Counts        report.Counts `json:"counts"`

	Requests       int64   `json:"requests"`
	Throttled      int64   `json:"throttled"`
	Reads          int64   `json:"reads"`
	ReadsThrottled int64   `json:"reads_throttled"`
	Retries        int64   `json:"retries"`
	TokensRejected int64   `json:"tokens_rejected"`
	Runs           int     `json:"runs"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`

	// Complete is true once every row is finished; ExitCode is then the job's exit code.
	Complete  bool      `json:"complete"`
	ExitCode  int       `json:"exit_code"`
	UpdatedAt time.Time `json:"updated_at"`
}

// InputIdentity names the input file a job belongs to: a checkpoint is only used with the same content.
type InputIdentity struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Rows   int    `json:"rows"`
}

// errNoCheckpoint is returned by loadCheckpoint when the file does not exist.
var errNoCheckpoint = errors.New("no checkpoint")

// loadCheckpoint reads and checks the checkpoint at path. A file that exists but is damaged is an error,
// never the same as no checkpoint, because starting over would send every row again.
func loadCheckpoint(path string) (*Checkpoint, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoCheckpoint
	}
	if err != nil {
		return nil, usageErrorf("read checkpoint: %w", err)
	}

	var cp Checkpoint
	if err := json.Unmarshal(data, &cp); err != nil {
		return nil, damagedCheckpoint(path, err.Error())
	}
	if problem := cp.check(); problem != "" {
		return nil, damagedCheckpoint(path, problem)
	}
	return &cp, nil
}

func damagedCheckpoint(path, problem string) error {
	return usageErrorf("checkpoint %s is damaged (%s); it cannot tell which rows were already sent. "+
		"Restore it from a backup, or run with --restart to move the old outputs aside and start over, "+
		"which sends every row again", path, problem)
}

// check returns what is inconsistent in cp, or "" when nothing is.
func (cp *Checkpoint) check() string {
	switch {
	case cp.Version != checkpointVersion:
		return fmt.Sprintf("version %d, this reclaim reads version %d", cp.Version, checkpointVersion)
	case len(cp.Input.SHA256) != 64 || cp.Input.Size < 0 || cp.Input.Rows < 0:
		return "no input identity"
	case cp.DoneThrough < 0 || cp.DoneThrough > cp.Input.Rows:
		return fmt.Sprintf("done_through %d outside 0..%d", cp.DoneThrough, cp.Input.Rows)
	case cp.OutcomesBytes < int64(len(report.OutcomesHeader)):
		return fmt.Sprintf("outcomes_bytes %d is shorter than the header", cp.OutcomesBytes)
	}
	previous := cp.DoneThrough
	for _, row := range cp.DoneAfter {
		if row <= previous || row > cp.Input.Rows {
			return fmt.Sprintf("done_after has row %d out of order or range", row)
		}
		previous = row
	}
	if finished := int64(cp.DoneThrough + len(cp.DoneAfter)); cp.Counts.Total() != finished {
		return fmt.Sprintf("counts add up to %d rows, but %d rows are marked finished", cp.Counts.Total(), finished)
	}
	if cp.Complete && cp.DoneThrough != cp.Input.Rows {
		return "marked complete with rows pending"
	}
	return ""
}

// save writes cp to path atomically: a temporary file in the same folder, synced, renamed over the old
// checkpoint, and the folder synced, so that a crash leaves either the old or the new checkpoint.
func (cp *Checkpoint) save(path string) error {
	cp.Version = checkpointVersion
	cp.UpdatedAt = time.Now().UTC()
	if cp.DoneAfter == nil {
		cp.DoneAfter = []int{}
	}
	slices.Sort(cp.DoneAfter)
	return writeFileAtomic(path, func(w io.Writer) error {
		encoder := json.NewEncoder(w)
		encoder.SetIndent("", "  ")
		return encoder.Encode(cp)
	})
}

// writeFileAtomic writes a file through write, so that path holds either its old content or all of the
// new one, even after a crash.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once the rename has happened

	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	// CreateTemp makes the file readable by its owner only; the outputs are not secret.
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}
