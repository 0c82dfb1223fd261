package reclaim

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"reclaim/graphclient/graphsim"
)

// renameOver writes content to a new file next to path and renames it over path, as an editor or an
// uploader replaces a file.
func renameOver(t *testing.T, path, content string) {
	t.Helper()
	temporary := path + ".new"
	if err := os.WriteFile(temporary, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(temporary, path); err != nil {
		t.Fatal(err)
	}
}

// writeAt overwrites the bytes of path at offset with text, in place.
func writeAt(t *testing.T, path string, offset int, text string) {
	t.Helper()
	file, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = file.WriteAt([]byte(text), int64(offset))
	if closeErr := file.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// otherHexDigit returns a hex digit other than c.
func otherHexDigit(c byte) string {
	if c == 'f' {
		return "e"
	}
	return "f"
}

// wantChangedError fails the test unless err is an *InputError about path whose problem contains
// change and whose fix is to put the original file back.
func wantChangedError(t *testing.T, err error, path, change string) {
	t.Helper()
	var inputErr *InputError
	if !errors.As(err, &inputErr) {
		t.Fatalf("error = %v, want an *InputError", err)
	}
	if inputErr.Path != path {
		t.Errorf("InputError.Path = %q, want %q", inputErr.Path, path)
	}
	if !strings.Contains(inputErr.Problem, change) {
		t.Errorf("InputError.Problem = %q, want it to contain %q", inputErr.Problem, change)
	}
	if !strings.Contains(inputErr.Fix, "put the original file back") {
		t.Errorf("InputError.Fix = %q, want it to say to put the original file back", inputErr.Fix)
	}
}

func TestInputStreamNoticesPathChange(t *testing.T) {
	// The file is much larger than the read buffers, so that the reader reads on after the change.
	original := "appId,deviceId\n" + strings.Repeat(app1+","+dev1+"\n", 20000)
	sameSize := strings.Replace(original, dev1, dev2, -1)
	tests := []struct {
		name   string
		change func(t *testing.T, path string)
		// want is part of the problem of the error that Next returns, or "" when Next reads on to io.EOF.
		want string
	}{
		{"renamed over by a longer file", func(t *testing.T, path string) {
			renameOver(t, path, original+app1+","+dev2+"\n")
		}, "changed while reclaim was reading it: the path now names another file, of"},
		{"cut short in place", func(t *testing.T, path string) {
			if err := os.Truncate(path, int64(len(original)/2)); err != nil {
				t.Fatal(err)
			}
		}, "changed while reclaim was reading it: its size changed from"},
		{"removed", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, "changed while reclaim was reading it: the file is no longer at that path"},
		// A file of the same size is left to checkFileAtPath: the stream reads the opened file to its end.
		{"renamed over by a file of the same size", func(t *testing.T, path string) {
			renameOver(t, path, sameSize)
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeInput(t, original)
			summary, err := ScanInput(path)
			if err != nil {
				t.Fatal(err)
			}
			in, err := OpenInput(path, false)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			if _, err := in.Next(); err != nil {
				t.Fatal(err)
			}

			tt.change(t, path)
			rows := 1
			for err == nil {
				if _, err = in.Next(); err == nil {
					rows++
				}
			}

			if tt.want == "" {
				if err != io.EOF {
					t.Fatalf("Next error = %v, want io.EOF", err)
				}
				if rows != summary.Rows || in.SHA256() != summary.SHA256 {
					t.Errorf("read %d rows with SHA-256 %s, want the %d rows and SHA-256 %s of the opened file",
						rows, in.SHA256(), summary.Rows, summary.SHA256)
				}
				return
			}
			wantChangedError(t, err, path, tt.want)
			if rows >= summary.Rows {
				t.Errorf("Next returned %d rows before the error, want fewer than the %d of the file", rows, summary.Rows)
			}
			if _, again := in.Next(); again != err {
				t.Errorf("Next after the error = %v, want the same error %v", again, err)
			}
		})
	}
}

func TestInputCheckFileAtPath(t *testing.T) {
	original := "appId,deviceId\n" + app1 + "," + dev1 + "\n" + app1 + "," + dev2 + "\n"
	const problem = "changed during the run, so the job is not marked complete: "
	tests := []struct {
		name   string
		change func(t *testing.T, path string)
		want   string // part of the problem, or "" for no error
	}{
		{"unchanged", func(t *testing.T, path string) {}, ""},
		{"renamed over by the same content", func(t *testing.T, path string) {
			renameOver(t, path, original)
		}, ""},
		{"edited in place", func(t *testing.T, path string) {
			at := strings.Index(original, dev1)
			writeAt(t, path, at, otherHexDigit(original[at]))
		}, problem + "its content changed: the SHA-256 differs"},
		{"renamed over by other content of the same size", func(t *testing.T, path string) {
			renameOver(t, path, strings.Replace(original, dev1, dev3, 1))
		}, problem + "the path now names another file, with other content"},
		{"renamed over by a longer file", func(t *testing.T, path string) {
			renameOver(t, path, original+app2+","+dev1+"\n")
		}, problem + "the path now names another file, of"},
		{"extended in place", func(t *testing.T, path string) {
			writeAt(t, path, len(original), app2+","+dev1+"\n")
		}, problem + "its size changed from"},
		{"removed", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, problem + "it cannot be opened any more: file not found"},
		{"replaced by a directory", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, problem + "it cannot be opened any more: is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeInput(t, original)
			summary, err := ScanInput(path)
			if err != nil {
				t.Fatal(err)
			}
			in, err := OpenInput(path, false)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()

			tt.change(t, path)
			changed := in.checkFileAtPath(summary.Size, summary.SHA256)
			if tt.want == "" {
				if changed != nil {
					t.Errorf("checkFileAtPath() = %v, want nil", changed)
				}
				return
			}
			if changed == nil {
				t.Fatalf("checkFileAtPath() = nil, want an error that contains %q", tt.want)
			}
			wantChangedError(t, changed, path, tt.want)
		})
	}
}

// waitForOutcomeLines waits until the outcomes.csv of cfg has at least n lines after its header. It
// fails the test if the run, whose error done delivers, ends first.
func waitForOutcomeLines(t *testing.T, cfg Config, n int, done <-chan error) {
	t.Helper()
	for {
		data, _ := os.ReadFile(cfg.outcomesPath())
		if strings.Count(string(data), "\n") > n {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("Run() ended with %v before outcomes.csv had %d lines", err, n)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestRunInputChangedAfterRead(t *testing.T) {
	tests := []struct {
		name string
		// change changes the input, whose content is original, after the first row has its outcome.
		change func(t *testing.T, path, original string)
		// allOutcomes is true when the stream cannot notice the change, so that every row is sent and the
		// check at the end stops the run.
		allOutcomes bool
	}{
		{"renamed over by other content of the same size", func(t *testing.T, path, original string) {
			at := strings.LastIndex(original, "\n") - 1
			renameOver(t, path, original[:at]+otherHexDigit(original[at])+original[at+1:])
		}, true},
		{"edited in place in the row already sent", func(t *testing.T, path, original string) {
			at := strings.Index(original, "\n") + 1 + len(app1) + 1
			writeAt(t, path, at, otherHexDigit(original[at]))
		}, true},
		// The stream may notice this change before the end, if it reads the file again after the rename.
		{"renamed over by a longer file", func(t *testing.T, path, original string) {
			renameOver(t, path, original+app2+","+dev1+"\n")
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			devices := randomGUIDs(rand.New(rand.NewPCG(41, 42)), 4)
			original := "appId,deviceId\n"
			for _, device := range devices {
				original += app1 + "," + device + "\n"
			}
			input := writeInput(t, original)
			cfg, sim := simConfig(t, input)
			// One request per second: the change below comes seconds before the last row is sent.
			cfg.Rate, cfg.Burst, cfg.Workers = 1, 1, 1

			done := make(chan error, 1)
			go func() { _, err := Run(context.Background(), cfg); done <- err }()
			waitForOutcomeLines(t, cfg, 1, done)
			tt.change(t, input, original)

			err := <-done
			if got := ExitCode(err); got != ExitUsage {
				t.Fatalf("Run() error = %v, exit code %d, want %d", err, got, ExitUsage)
			}
			wantChangedError(t, err, input, "changed ")
			cp, err := loadCheckpoint(filepath.Join(cfg.OutDir, CheckpointFile))
			if err != nil {
				t.Fatal(err)
			}
			if cp.Complete {
				t.Errorf("checkpoint Complete = true after the input changed, want false")
			}
			if got := len(readStatuses(t, cfg.outcomesPath())); tt.allOutcomes && got != len(devices) {
				t.Errorf("outcomes.csv has %d rows after the run, want all %d", got, len(devices))
			}

			// With the original file back, the same command completes the job.
			if err := os.WriteFile(input, []byte(original), 0o600); err != nil {
				t.Fatal(err)
			}
			result, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatalf("Run() with the original file back: %v", err)
			}
			if !result.Summary.Complete || result.Summary.Counts.Revoked != int64(len(devices)) {
				t.Errorf("Run() summary = %+v, want complete with %d rows revoked", result.Summary, len(devices))
			}
			data, err := os.ReadFile(cfg.outcomesPath())
			if err != nil {
				t.Fatal(err)
			}
			if got, want := strings.Count(string(data), "\n"), 1+len(devices); got != want {
				t.Errorf("outcomes.csv has %d lines, want %d: the header and one line per row", got, want)
			}
			calls := sim.Stats().RevokeCalls
			for _, device := range devices {
				if n := calls[graphsim.Pair{AppID: app1, DeviceID: device}]; n != 1 {
					t.Errorf("revoke calls for %s/%s = %d, want 1", app1, device, n)
				}
			}
		})
	}
}
