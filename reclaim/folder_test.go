package reclaim

import (
	"context"
	"encoding/csv"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"reclaim/graphclient"
	"reclaim/report"
)

// writeFolder creates the files of a folder input in a new folder and returns it.
func writeFolder(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// readIndex returns the lines of index.csv in dir as maps from column to cell, in file order.
func readIndex(t *testing.T, dir string) []map[string]string {
	t.Helper()
	file, err := os.Open(filepath.Join(dir, IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	records, err := csv.NewReader(file).ReadAll()
	if err != nil {
		t.Fatalf("index.csv is not CSV: %v", err)
	}
	var lines []map[string]string
	for _, record := range records[1:] {
		line := map[string]string{}
		for i, column := range records[0] {
			line[column] = record[i]
		}
		lines = append(lines, line)
	}
	return lines
}

func TestListWaves(t *testing.T) {
	dir := writeFolder(t, map[string]string{
		"b.csv":         "",
		"a.CSV":         "",
		"C.csv":         "",
		"wave.Csv":      "",
		".hidden.csv":   "",
		".csv":          "",
		"~$b.csv":       "",
		"wave.csv.part": "",
		"notes.txt":     "",
		"csv":           "",
	})
	if err := os.Mkdir(filepath.Join(dir, "sub.csv"), 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "target.txt")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "link.csv")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "missing"), filepath.Join(dir, "dangling.csv")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "sub.csv"), filepath.Join(dir, "folder-link.csv")); err != nil {
		t.Fatal(err)
	}

	waves, ignored, err := listWaves(dir)
	if err != nil {
		t.Fatal(err)
	}
	wantWaves := []string{"C.csv", "a.CSV", "b.csv", "link.csv", "wave.Csv"}
	if !slices.Equal(waves, wantWaves) {
		t.Errorf("waves = %q, want %q", waves, wantWaves)
	}
	wantIgnored := []string{".csv", ".hidden.csv", "csv", "dangling.csv", "folder-link.csv", "notes.txt", "sub.csv",
		"wave.csv.part", "~$b.csv"}
	if !slices.Equal(ignored, wantIgnored) {
		t.Errorf("ignored = %q, want %q", ignored, wantIgnored)
	}
}

func TestListWavesMissingFolder(t *testing.T) {
	_, _, err := listWaves(filepath.Join(t.TempDir(), "missing"))
	if got := ExitCode(err); got != ExitUsage {
		t.Errorf("listWaves(missing folder) exit code = %d (%v), want %d", got, err, ExitUsage)
	}
}

func TestIsInside(t *testing.T) {
	tests := []struct {
		dir, path string
		want      bool
	}{
		{"/data/in", "/data/in/out", true},
		{"/data/in", "/data/in/a/b", true},
		{"/data/in", "/data/in", false},
		{"/data/in", "/data/inbox", false},
		{"/data/in", "/data", false},
		{"/data/in", "/data/..in", false},
		{"/data/in", "/data/in/..out", true},
	}
	for _, tt := range tests {
		if got := isInside(tt.dir, tt.path); got != tt.want {
			t.Errorf("isInside(%q, %q) = %v, want %v", tt.dir, tt.path, got, tt.want)
		}
	}
}

// folderConfig returns a Config for a folder input whose Graph URL is a closed loopback port, for
// tests that must end before anything is sent.
func folderConfig(input, outDir string) Config {
	return Config{
		Input:       input,
		OutDir:      outDir,
		GraphURL:    "https://127.0.0.1:9/beta",
		Rate:        5,
		Burst:       1,
		Workers:     1,
		MaxAttempts: 1,
		Timeout:     time.Second,
		OutageAfter: time.Minute,
	}
}

func TestRunFolderRejects(t *testing.T) {
	input := writeFolder(t, map[string]string{"a.csv": "appId,deviceId\n" + app1 + "," + dev1 + "\n"})
	other := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(input, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		modify func(*Config)
		// want lists parts of the message: the value and the fix.
		want []string
	}{
		{"checkpoint", func(c *Config) { c.Checkpoint = filepath.Join(other, "cp.json") },
			[]string{"--checkpoint " + filepath.Join(other, "cp.json"), "remove --checkpoint"}},
		{"restart", func(c *Config) { c.Restart = true },
			[]string{"--restart", "move <out-dir>/<file name> out of the out dir"}},
		{"out dir is input", func(c *Config) { c.OutDir = input },
			[]string{"--out-dir " + input + " is the input folder", input + "-out"}},
		{"out dir is input by a link", func(c *Config) { c.OutDir = link },
			[]string{"--out-dir " + link + " is the input folder"}},
		{"out dir inside input", func(c *Config) { c.OutDir = filepath.Join(input, "out", "new") },
			[]string{"is inside the input folder", input + "-out"}},
		{"input inside out dir", func(c *Config) { c.OutDir = filepath.Dir(input) },
			[]string{"the input folder " + input + " is inside --out-dir", "keep the two apart"}},
		{"bad rate", func(c *Config) { c.Rate = 0 }, []string{"--rate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := folderConfig(input, filepath.Join(other, "out"))
			tt.modify(&cfg)
			_, err := Run(context.Background(), cfg)
			if got := ExitCode(err); got != ExitUsage {
				t.Fatalf("Run() exit code = %d (%v), want %d", got, err, ExitUsage)
			}
			for _, part := range tt.want {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("Run() error = %q, want it to contain %q", err, part)
				}
			}
			if _, err := os.Stat(filepath.Join(other, "out")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("out dir exists after a rejected run (stat error %v), want it not created", err)
			}
			if _, err := os.Stat(filepath.Join(input, "out")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("out dir inside the input exists after a rejected run (stat error %v)", err)
			}
		})
	}
}

func TestRunFolderEmpty(t *testing.T) {
	input := writeFolder(t, map[string]string{"notes.txt": "x", "wave.csv.part": "appId,deviceId\n"})
	out := filepath.Join(t.TempDir(), "out")
	result, err := Run(context.Background(), folderConfig(input, out))
	if err != nil {
		t.Fatalf("Run(folder without waves) = %v, want nil", err)
	}
	if result.Waves == nil || len(result.Waves) != 0 {
		t.Errorf("Result.Waves = %#v, want empty and not nil", result.Waves)
	}
	data, err := os.ReadFile(filepath.Join(out, IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(data), "\n"); got != 1 || !strings.HasPrefix(string(data), "file,state,") {
		t.Errorf("index.csv = %q, want the header alone", data)
	}
}

func TestRunFolderWaves(t *testing.T) {
	good := "appId,deviceId\n" + app1 + "," + dev1 + "\n" + app1 + "," + dev2 + "\n"
	mixed := "appId,deviceId\n" + app2 + "," + dev1 + "\nx,y\n"
	input := writeFolder(t, map[string]string{
		"a.csv":     good,
		"b.csv":     "appId,deviceId\n",
		"INDEX.csv": good,
		"c.csv":     mixed,
	})
	cfg, sim := simConfig(t, input)

	result, err := Run(context.Background(), cfg)
	if got := ExitCode(err); got != ExitUsage {
		t.Fatalf("Run() exit code = %d (%v), want %d for the wave without rows", got, err, ExitUsage)
	}
	var usage *UsageError
	if !errors.As(err, &usage) || !strings.HasPrefix(err.Error(), "wave INDEX.csv: ") {
		t.Errorf("Run() error = %v, want a UsageError of the first wave with exit code 2, INDEX.csv", err)
	}

	want := []struct {
		name  string
		state report.WaveState
		code  int
		rows  int64
	}{
		{"INDEX.csv", report.WaveError, ExitUsage, 0},
		{"a.csv", report.WaveComplete, ExitOK, 2},
		{"b.csv", report.WaveError, ExitUsage, 0},
		{"c.csv", report.WaveComplete, ExitRowsFailed, 2},
	}
	if len(result.Waves) != len(want) {
		t.Fatalf("Result.Waves = %+v, want %d waves", result.Waves, len(want))
	}
	for i, w := range want {
		got := result.Waves[i]
		if got.Name != w.name || got.State != w.state || got.ExitCode != w.code || got.Summary.Rows != w.rows {
			t.Errorf("wave %d = %s %s exit %d, %d rows; want %s %s exit %d, %d rows", i, got.Name, got.State,
				got.ExitCode, got.Summary.Rows, w.name, w.state, w.code, w.rows)
		}
	}
	if err := result.Waves[0].Err; err == nil || !strings.Contains(err.Error(), "rename the file") {
		t.Errorf("INDEX.csv error = %v, want it to say to rename the file", err)
	}
	if got := result.Summary; got.Rows != 4 || got.Counts.Revoked != 3 || got.Counts.Invalid != 1 || got.Complete {
		t.Errorf("Result.Summary = %+v, want 4 rows, 3 revoked, 1 invalid, not complete", got)
	}
	if got := len(sim.Stats().RevokeCalls); got != 3 {
		t.Errorf("pairs sent = %d, want 3", got)
	}
	for _, name := range []string{"a.csv", "c.csv"} {
		for _, file := range []string{OutcomesFile, SummaryFile, CheckpointFile} {
			if _, err := os.Stat(filepath.Join(cfg.OutDir, name, file)); err != nil {
				t.Errorf("wave %s: %v", name, err)
			}
		}
	}

	index := readIndex(t, cfg.OutDir)
	if len(index) != 4 {
		t.Fatalf("index.csv has %d lines, want 4", len(index))
	}
	if got := index[1]; got["file"] != "a.csv" || got["state"] != "complete" || got["exit_code"] != "0" ||
		got["rows"] != "2" || got["revoked"] != "2" || got["pending"] != "0" || got["runs"] != "1" || got["updated_at"] == "" {
		t.Errorf("index.csv line of a.csv = %v", got)
	}
	if got := index[2]; got["state"] != "error" || got["exit_code"] != "2" || got["rows"] != "" ||
		!strings.Contains(got["error"], "no data rows") {
		t.Errorf("index.csv line of b.csv = %v, want error, exit 2, no counts and the reason", got)
	}

	// A wave edited after its job completed stops with its own error; the others are checked and
	// send nothing.
	if err := os.WriteFile(filepath.Join(input, "a.csv"), []byte(good+app2+","+dev3+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := sim.Stats().GraphRequests
	result, err = Run(context.Background(), cfg)
	if got := ExitCode(err); got != ExitUsage {
		t.Fatalf("second Run() exit code = %d (%v), want %d", got, err, ExitUsage)
	}
	if got := sim.Stats().GraphRequests - before; got != 0 {
		t.Errorf("second run sent %d Graph requests, want 0", got)
	}
	a := result.Waves[1]
	if a.State != report.WaveError || a.Err == nil || !strings.Contains(a.Err.Error(), "changed after work on it began") ||
		!strings.Contains(a.Err.Error(), "new name") {
		t.Errorf("edited wave = %s %v, want error naming the change and the fix", a.State, a.Err)
	}
	if got := result.Waves[3]; got.State != report.WaveComplete || got.ExitCode != ExitRowsFailed {
		t.Errorf("wave c.csv after the second run = %s exit %d, want complete exit 1", got.State, got.ExitCode)
	}
}

func TestRunFolderResumedWaveChanged(t *testing.T) {
	input := writeFolder(t, map[string]string{
		"a.csv": "appId,deviceId\n" + app1 + "," + dev1 + "\n",
	})
	cfg, sim := simConfig(t, input)

	// The checkpoint of an earlier run that started on another content of a.csv.
	outDir := filepath.Join(cfg.OutDir, "a.csv")
	saveWaveCheckpoint(t, outDir, &Checkpoint{
		Input:         InputIdentity{Path: filepath.Join(input, "a.csv"), Size: 10, SHA256: strings.Repeat("0", 64), Rows: 3},
		Target:        SimulatorTarget,
		URLForm:       "cast",
		OutcomesBytes: int64(len(report.OutcomesHeader)),
	})

	result, err := Run(context.Background(), cfg)
	if got := ExitCode(err); got != ExitUsage {
		t.Fatalf("Run() exit code = %d (%v), want %d", got, err, ExitUsage)
	}
	for _, part := range []string{"wave a.csv: ", "changed after work on it began", "size changed from 10", outDir} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("Run() error = %q, want it to contain %q", err, part)
		}
	}
	if got := result.Waves[0].State; got != report.WaveError {
		t.Errorf("wave state = %s, want error", got)
	}
	if got := sim.Stats().GraphRequests; got != 0 {
		t.Errorf("Graph requests = %d, want 0", got)
	}
}

func TestRunFolderAuthErrorEndsRun(t *testing.T) {
	input := writeFolder(t, map[string]string{
		"a.csv": "appId,deviceId\n" + app1 + "," + dev1 + "\n",
		"b.csv": "appId,deviceId\n" + app1 + "," + dev2 + "\n",
	})
	cfg, _ := simConfig(t, input)
	cfg.Credential = failingCredential{}

	result, err := Run(context.Background(), cfg)
	if got := ExitCode(err); got != ExitAuth {
		t.Fatalf("Run() exit code = %d (%v), want %d", got, err, ExitAuth)
	}
	var auth *graphclient.AuthError
	if !errors.As(err, &auth) || !strings.HasPrefix(err.Error(), "wave a.csv: ") {
		t.Errorf("Run() error = %v, want the AuthError of a.csv", err)
	}
	if got := result.Waves[0].State; got != report.WaveError {
		t.Errorf("a.csv state = %s, want error", got)
	}
	if got := result.Waves[1]; got.State != report.WavePending || got.Err != nil {
		t.Errorf("b.csv = %s (%v), want pending and not handled", got.State, got.Err)
	}
	index := readIndex(t, cfg.OutDir)
	if got := index[1]; got["state"] != "pending" || got["exit_code"] != "" {
		t.Errorf("index.csv line of b.csv = %v, want pending without exit code", got)
	}
}

func TestFolderStopBefore(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name     string
		ctx      context.Context
		deadline time.Duration
		want     string
	}{
		{"running", context.Background(), time.Hour, ""},
		{"no deadline", context.Background(), 0, ""},
		{"deadline passed", context.Background(), time.Millisecond, errDeadline.Error()},
		{"signal", canceled, time.Hour, errInterrupted.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &folderRun{base: Config{Deadline: tt.deadline}, started: time.Now().Add(-time.Second)}
			err := f.stopBefore(tt.ctx)
			if tt.want == "" {
				if err != nil {
					t.Errorf("stopBefore() = %v, want nil", err)
				}
				return
			}
			var stop *StopError
			if !errors.As(err, &stop) || stop.Reason != tt.want {
				t.Errorf("stopBefore() = %v, want a StopError for %q", err, tt.want)
			}
		})
	}
}

func TestFolderWorstError(t *testing.T) {
	busy := &BusyError{Resource: "out dir x", Holder: "process 1"}
	stop := &StopError{Reason: errDeadline.Error()}
	usage := usageErrorf("bad wave")
	tests := []struct {
		name     string
		errs     []error
		handled  []bool
		wantCode int
		wantWave string
	}{
		{"all fine", []error{nil, nil}, []bool{true, true}, ExitOK, ""},
		{"rows failed", []error{nil, ErrRowsFailed}, []bool{true, true}, ExitRowsFailed, "w1"},
		{"first usage error wins a tie", []error{usage, ErrRowsFailed, usage}, []bool{true, true, true}, ExitUsage, "w0"},
		{"usage above busy", []error{busy, usage}, []bool{true, true}, ExitUsage, "w1"},
		{"failed rows above a stop", []error{stop, ErrRowsFailed, nil}, []bool{true, true, false}, ExitRowsFailed, "w1"},
		{"stop above success", []error{nil, stop}, []bool{true, true}, ExitStopped, "w1"},
		{"auth above usage", []error{usage, &graphclient.AuthError{Err: errors.New("no consent")}}, []bool{true, true}, ExitAuth, "w1"},
		{"unhandled waves do not count", []error{nil, usage}, []bool{true, false}, ExitOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &folderRun{}
			for i, err := range tt.errs {
				f.waves = append(f.waves, &wave{name: "w" + string(rune('0'+i)), err: err, handled: tt.handled[i]})
			}
			err := f.worstError()
			if got := ExitCode(err); got != tt.wantCode {
				t.Errorf("worstError() exit code = %d (%v), want %d", got, err, tt.wantCode)
			}
			if tt.wantWave != "" && (err == nil || !strings.HasPrefix(err.Error(), "wave "+tt.wantWave+": ")) {
				t.Errorf("worstError() = %v, want the error of wave %s", err, tt.wantWave)
			}
		})
	}
}

func TestFolderEndsRun(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{ErrRowsFailed, false},
		{usageErrorf("bad file"), false},
		{&BusyError{Resource: "out dir x"}, false},
		{&graphclient.AuthError{Err: errors.New("bad secret")}, true},
		{&StopError{Reason: errDeadline.Error()}, true},
		{errors.New("disk full"), true},
	}
	for _, tt := range tests {
		if got := endsRun(tt.err); got != tt.want {
			t.Errorf("endsRun(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestFolderWriteIndexReplacesFile(t *testing.T) {
	out := t.TempDir()
	path := filepath.Join(out, IndexFile)
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}

	f := &folderRun{base: Config{OutDir: out}}
	f.waves = []*wave{{name: "a.csv"}, {name: "b.csv", handled: true, err: usageErrorf("bad wave")}}
	if err := f.writeIndex(); err != nil {
		t.Fatal(err)
	}

	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// A new file renamed into place, not the old one rewritten, so a reader never sees half of it.
	if os.SameFile(before, after) {
		t.Errorf("index.csv was rewritten in place, want a new file renamed over it")
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("out dir holds %d entries, want index.csv alone and no temporary file", len(entries))
	}
	lines := readIndex(t, out)
	if len(lines) != 2 || lines[0]["state"] != "pending" || lines[1]["state"] != "error" || lines[1]["error"] != "bad wave" {
		t.Errorf("index.csv = %v, want a pending a.csv and b.csv in error", lines)
	}
}

// failingCredential rejects every token request, as Entra does for a wrong client secret.
type failingCredential struct{}

func (failingCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{}, errors.New("invalid client secret provided")
}

func TestRunFolderDamagedCheckpointHint(t *testing.T) {
	input := writeFolder(t, map[string]string{"a.csv": "appId,deviceId\n" + app1 + "," + dev1 + "\n"})
	cfg, sim := simConfig(t, input)
	outDir := filepath.Join(cfg.OutDir, "a.csv")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outDir, CheckpointFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}

	result, err := Run(context.Background(), cfg)
	if got := ExitCode(err); got != ExitUsage {
		t.Fatalf("Run() exit code = %d (%v), want %d", got, err, ExitUsage)
	}
	for _, part := range []string{"is damaged", "moving " + outDir + " out of the out dir rather than with --restart"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("Run() error = %q, want it to contain %q", err, part)
		}
	}
	if got := result.Waves[0].State; got != report.WaveError {
		t.Errorf("wave state = %s, want error", got)
	}
	if got := sim.Stats().GraphRequests; got != 0 {
		t.Errorf("Graph requests = %d, want 0", got)
	}
}

func TestRunFolderRemovedWaves(t *testing.T) {
	input := writeFolder(t, map[string]string{
		"b.csv": "appId,deviceId\n" + app1 + "," + dev1 + "\n",
	})
	cfg, _ := simConfig(t, input)

	// Jobs of two wave files that were removed since: a.csv complete, c.csv with 2 of 3 rows pending.
	for name, complete := range map[string]bool{"a.csv": true, "c.csv": false} {
		cp := &Checkpoint{
			Input:         InputIdentity{Path: filepath.Join(input, name), Size: 10, SHA256: strings.Repeat("0", 64), Rows: 3},
			Target:        SimulatorTarget,
			URLForm:       "cast",
			DoneThrough:   1,
			OutcomesBytes: int64(len(report.OutcomesHeader)) + 100,
			Counts:        report.Counts{Revoked: 1},
			Complete:      complete,
		}
		if complete {
			cp.DoneThrough, cp.Counts = 3, report.Counts{Revoked: 3}
		}
		saveWaveCheckpoint(t, filepath.Join(cfg.OutDir, name), cp)
	}

	result, err := Run(context.Background(), cfg)
	if got := ExitCode(err); got != ExitUsage {
		t.Fatalf("Run() exit code = %d (%v), want %d for the removed wave with pending rows", got, err, ExitUsage)
	}
	for _, part := range []string{"wave c.csv: ", "was removed", "2 of 3 rows pending", "put the file back"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("Run() error = %q, want it to contain %q", err, part)
		}
	}
	var names []string
	for _, w := range result.Waves {
		names = append(names, w.Name+" "+string(w.State))
	}
	if got, want := strings.Join(names, ", "), "a.csv missing, b.csv complete, c.csv missing"; got != want {
		t.Errorf("waves = %q, want %q", got, want)
	}
	index := readIndex(t, cfg.OutDir)
	if len(index) != 3 {
		t.Fatalf("index.csv has %d lines, want 3", len(index))
	}
	if got := index[0]; got["state"] != "missing" || got["pending"] != "0" || !strings.Contains(got["error"], "outcomes are kept") {
		t.Errorf("index.csv line of a.csv = %v, want missing with no pending row and a note", got)
	}
	if got := index[2]; got["state"] != "missing" || got["exit_code"] != "2" || got["pending"] != "2" {
		t.Errorf("index.csv line of c.csv = %v, want missing, exit 2, 2 pending", got)
	}
	if got := result.Summary.Pending(); got != 2 {
		t.Errorf("result pending = %d, want the 2 rows of the removed wave", got)
	}
}

func TestRunFolderUnreadableLease(t *testing.T) {
	input := writeFolder(t, map[string]string{
		"a.csv": "appId,deviceId\n" + app1 + "," + dev1 + "\n",
		"b.csv": "appId,deviceId\n" + app1 + "," + dev2 + "\n",
	})
	cfg, _ := simConfig(t, input)
	// A folder where a.csv's lease file belongs: a run can neither read it nor replace it.
	if err := os.MkdirAll(filepath.Join(cfg.OutDir, "a.csv", leaseFileName), 0o755); err != nil {
		t.Fatal(err)
	}

	result, err := Run(context.Background(), cfg)
	if got := ExitCode(err); got != ExitUsage {
		t.Fatalf("Run() exit code = %d (%v), want %d", got, err, ExitUsage)
	}
	if !strings.Contains(err.Error(), "is not a regular file") || !strings.Contains(err.Error(), "remove it") {
		t.Errorf("Run() error = %q, want it to name the lease path and the fix", err)
	}
	if got := result.Waves[0].State; got != report.WaveError {
		t.Errorf("a.csv state = %s, want error", got)
	}
	if got := result.Waves[1].State; got != report.WaveComplete {
		t.Errorf("b.csv state = %s, want complete: the other waves go on", got)
	}
}

// saveWaveCheckpoint saves cp as the checkpoint of the wave whose out folder is dir, creating dir.
func saveWaveCheckpoint(t *testing.T, dir string, cp *Checkpoint) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := cp.save(filepath.Join(dir, CheckpointFile)); err != nil {
		t.Fatal(err)
	}
}
